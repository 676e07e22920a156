"""Screening on a local Ray instance with 2 CPUs: same rows as serial, dead workers recovered,
a structure that keeps killing its worker reported as failed, resume from the cache, and the CLI."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from xtalagent.agent.cli import main
from xtalagent.tools.distributed import RayOptions, connect
from xtalagent.tools.potentials import Evaluation, Potential, limit_threads
from xtalagent.tools.screen import screen


class _KillsItsWorker(Potential):
    """Test double: -3 eV/atom and zero forces, but the worker process evaluating a structure that
    contains ``element`` dies (``os._exit``) — every time, or only until ``marker`` exists."""

    name, checkpoint, reportable = "flat", "test-double", False

    def __init__(self, element: str, marker: Path | None = None) -> None:
        self.element, self.marker = element, marker

    def evaluate(self, structures):
        for atoms in structures:
            if self.element in atoms.get_chemical_symbols():
                if self.marker is None:
                    os._exit(1)
                if not self.marker.exists():
                    self.marker.write_text(str(os.getpid()))
                    os._exit(1)
        return [Evaluation(-3.0 * len(a), np.zeros((len(a), 3)), np.zeros(6)) for a in structures]


@pytest.fixture(scope="module")
def local_ray():
    """A private 2-CPU Ray instance for this module (never a cluster another process started)."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    # the workers unpickle this module's test double: ship it by value (tests/ is not importable there)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    connect(RayOptions(address="local", num_cpus=2))
    yield ray
    ray.shutdown()


@pytest.fixture()
def cif_dir(fixtures, tmp_path):
    d = tmp_path / "in"
    shutil.copytree(fixtures / "cifs", d)
    shutil.copy(fixtures / "bad" / "broken.cif", d / "zz_broken.cif")  # a failed row, made on a worker too
    return d


def _essentials(rows):
    keys = ("id", "status", "rank", "final_spacegroup", "symmetry_kept", "steps", "potential", "checkpoint", "failure")
    return [{k: r.get(k) for k in keys} for r in rows]


def test_ray_gives_the_serial_rows_and_ranking(local_ray, cif_dir, tmp_path):
    limit_threads(1)
    common = dict(potential="chgnet", max_steps=25, fmax=0.15, plot=False)
    serial = screen(cif_dir, tmp_path / "serial", **common)
    # chunks of 2 on 2 workers: two tasks, each worker loads CHGNet itself from the potential's name
    on_ray = screen(cif_dir, tmp_path / "ray", ray=RayOptions(chunk_size=2), **common)
    assert _essentials(on_ray.rows) == _essentials(serial.rows)
    assert on_ray.provenance == serial.provenance and on_ray.provenance["potential"] == "chgnet"
    run = on_ray.extra["ray"]
    assert (run["workers"], run["chunks"], run["chunks_failed"]) == (2, 3, 0) and run["worker_processes"] in (1, 2)
    assert 0 < run["setup_seconds"] < run["worker_seconds"] and "ray" not in serial.extra
    for a, b in zip(serial.rows, on_ray.rows):
        if a.get("energy_eV") is not None:
            assert b["energy_eV"] == pytest.approx(a["energy_eV"], abs=1e-4)
            assert b["e_hull"] == pytest.approx(a["e_hull"], abs=1e-5)
    assert [r["status"] for r in on_ray.rows] == ["converged", "converged", "unconverged", "converged", "failed"]
    assert "unreadable CIF" in next(r for r in on_ray.rows if r["id"] == "zz_broken")["failure"]
    # resume: the cache written as rows came back is the source of truth, with or without Ray
    again = screen(cif_dir, tmp_path / "ray", **common)
    assert again.n_cached == 5 and _essentials(again.rows) == _essentials(serial.rows)


def test_screen_with_ray_through_the_cli(local_ray, cif_dir, tmp_path, capsys):
    out = tmp_path / "screened"
    args = ["screen", str(cif_dir), "-o", str(out), "--potential", "chgnet", "--max-steps", "5", "--no-band-gap"]
    assert main([*args, "--ray"]) == 0  # uses the Ray instance this process is connected to
    assert "screened 5 candidates (0 from cache, 1 failed)" in capsys.readouterr().out
    assert main([*args, "--ray-address", "local"]) == 0
    assert "screened 5 candidates (5 from cache" in capsys.readouterr().out


def test_a_killed_worker_is_retried(local_ray, cif_dir, tmp_path):
    marker = tmp_path / "killed-once"
    pot = _KillsItsWorker("Zn", marker=marker)
    report = screen(cif_dir, tmp_path / "out", potential=pot, stability=False, plot=False, ray=RayOptions(chunk_size=5))
    assert marker.exists()  # a worker died on the first attempt
    assert int(marker.read_text()) != os.getpid()  # ... and it was a worker, not this process
    assert [r["status"] for r in report.rows] == ["converged"] * 4 + ["failed"]
    assert report.rows[-1]["id"] == "zz_broken"


def test_a_structure_that_kills_its_worker_twice_is_reported(local_ray, cif_dir, tmp_path):
    pot = _KillsItsWorker("Zn")  # always
    out = tmp_path / "out"
    report = screen(cif_dir, out, potential=pot, stability=False, plot=False, ray=RayOptions(chunk_size=2))
    rows = {r["id"]: r for r in report.rows}
    assert report.extra["ray"]["chunks"] == 5 and report.extra["ray"]["chunks_failed"] == 2  # 3 chunks + 2 single
    assert rows["wurtzite_ZnO"]["status"] == "failed"
    assert "failed twice on Ray workers" in rows["wurtzite_ZnO"]["failure"]
    # its chunk neighbour was split off and screened alone
    assert [rows[c]["status"] for c in ("NaCl", "rutile_TiO2", "triclinic_P1")] == ["converged"] * 3
    assert (out / "cache" / "wurtzite_ZnO.json").is_file()  # reported once, not retried on resume
    assert screen(cif_dir, out, potential=pot, stability=False, plot=False, ray="local").n_cached == 5


def test_ray_flag_without_ray_installed_names_the_extra(cif_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = main(["screen", str(cif_dir), "-o", str(tmp_path / "o"), "--ray"])
    err = capsys.readouterr().err
    assert code == 1 and "install the 'ray' extra" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    code = main(["design", "a stable TiO2 compound", "-o", str(tmp_path / "d"), "--ray-address", "auto"])
    assert code == 1 and "install the 'ray' extra" in capsys.readouterr().err and not (tmp_path / "d").exists()


def test_where_a_design_relaxes_does_not_change_its_cache_key():
    from xtalagent.agent.design_records import DesignSettings
    from xtalagent.agent.request import DesignRequest

    request = DesignRequest(formula="TiO2")
    assert DesignSettings(ray_address="local").key(request) == DesignSettings().key(request)
