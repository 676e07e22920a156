"""The screening stage end to end: inputs, failure isolation, outputs, provenance, resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Structure

from xtalagent.errors import InputError
from xtalagent.tools import potentials
from xtalagent.tools.potentials import Evaluation, Potential
from xtalagent.tools.relax import relax_batch
from xtalagent.tools.screen import read_candidates, screen


class _Flat(Potential):
    """Test double: -3 eV/atom, zero forces; NaN when two atoms coincide. Counts evaluations."""

    name, checkpoint, reportable = "flat", "test-double", False

    def __init__(self) -> None:
        self.calls = 0

    def evaluate(self, structures):
        self.calls += 1
        out = []
        for a in structures:
            d = a.get_all_distances(mic=True)[np.triu_indices(len(a), 1)]
            if len(d) and d.min() < 1e-3:
                out.append(Evaluation(float("nan"), np.full((len(a), 3), np.nan), np.zeros(6)))
            else:
                out.append(Evaluation(-3.0 * len(a), np.zeros((len(a), 3)), np.zeros(6)))
        return out


@pytest.fixture()
def cif_dir(fixtures, tmp_path):
    d = tmp_path / "in"
    shutil.copytree(fixtures / "cifs", d)
    shutil.copy(fixtures / "bad" / "broken.cif", d / "zz_broken.cif")
    nacl = Structure.from_file(d / "NaCl.cif")
    nacl.scale_lattice(nacl.volume * 8000)  # atoms 56 Å apart: no neighbours, the potential cannot work
    nacl.to(filename=str(d / "exploding.cif"))
    return d


@pytest.fixture()
def small_hull(tmp_path):
    path = tmp_path / "hull.csv"
    rows = {"NaCl": -2.1, "TiO2": -3.5, "ZnO": -1.8, "MgSiO3": -3.3, "MgO": -3.0, "SiO2": -3.1}
    pd.DataFrame({"formula": list(rows), "e_form": list(rows.values())}).to_csv(path, index=False)
    return path


def test_read_candidates_folder_and_index(cif_dir, tmp_path):
    cands = read_candidates(cif_dir)
    assert [c.id for c in cands][:2] == ["NaCl", "exploding"]
    broken = next(c for c in cands if c.id == "zz_broken")
    assert broken.error and broken.structure is None
    assert next(c for c in cands if c.id == "rutile_TiO2").requested_spacegroup == 136

    (tmp_path / "index.jsonl").write_text(json.dumps({"cif_path": "in/NaCl.cif", "spacegroup": 221}) + "\n")
    (c,) = read_candidates(tmp_path / "index.jsonl")
    assert c.requested_spacegroup == 221 and c.structure is not None
    pd.DataFrame({"cif_path": ["in/NaCl.cif", "in/NaCl.cif"]}).to_csv(tmp_path / "index.csv", index=False)
    assert [c.id for c in read_candidates(tmp_path / "index.csv")] == ["NaCl", "NaCl_2"]
    pd.DataFrame({"path": ["in/NaCl.cif"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match="cif_path"):
        read_candidates(tmp_path / "bad.csv")
    with pytest.raises(InputError, match="does not exist"):
        read_candidates(tmp_path / "nothing")


def test_relax_batch_isolates_failures(fixtures):
    from ase.io import read

    good = [read(fixtures / "cifs" / f"{n}.cif") for n in ("NaCl", "wurtzite_ZnO")]
    bad = good[0].copy()
    bad.positions[1] = bad.positions[0]
    results = relax_batch([good[0], bad, good[1]], _Flat(), batch_size=2, symmetric=False)
    assert [r.status for r in results] == ["converged", "failed", "converged"]
    assert "NaN" in results[1].failure
    # symmetry-constrained mode: spglib refuses the cell already, recorded the same way
    results = relax_batch([bad, good[1]], _Flat(), batch_size=2)
    assert [r.status for r in results] == ["failed", "converged"] and "setup failed" in results[0].failure


def test_screen_resume_after_interrupt(cif_dir, tmp_path, small_hull):
    out = tmp_path / "out"
    seen = []

    def stop_after_two(row):
        seen.append(row["id"])
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        screen(cif_dir, out, potential=_Flat(), hull_table=small_hull, progress=stop_after_two, batch_size=2)
    assert len(list((out / "cache").glob("*.json"))) == 2
    pot = _Flat()
    report = screen(cif_dir, out, potential=pot, hull_table=small_hull, batch_size=2)
    assert report.n_cached == 2 and report.n_relaxed == 4
    assert len(report.rows) == 6
    again = screen(cif_dir, out, potential=(pot2 := _Flat()), hull_table=small_hull)
    assert again.n_cached == 6 and pot2.calls == 0
    changed = screen(cif_dir, out, potential=_Flat(), hull_table=small_hull, symmetric=False)
    assert changed.n_cached == 0  # other settings: recomputed


@pytest.mark.slow
def test_screen_chgnet_end_to_end(cif_dir, tmp_path, small_hull):
    potentials.limit_threads(1)
    out = tmp_path / "out"
    report = screen(cif_dir, out, potential="chgnet", hull_table=small_hull, max_steps=60, fmax=0.15)
    rows = {r["id"]: r for r in report.rows}
    assert rows["exploding"]["status"] == "failed" and "isolated" in rows["exploding"]["failure"]
    assert rows["zz_broken"]["status"] == "failed" and "unreadable CIF" in rows["zz_broken"]["failure"]
    for cid, group in [("NaCl", 225), ("rutile_TiO2", 136), ("wurtzite_ZnO", 186)]:
        row = rows[cid]
        assert row["status"] == "converged", row
        assert row["final_spacegroup"] == group and row["symmetry_kept"]
        assert (row["potential"], row["checkpoint"]) == ("chgnet", potentials.CHGNET_MODEL)
        assert row["valid_structure"] and row["valid_composition"]
        assert -5 < row["e_form"] < 0 and abs(row["e_hull"]) < 0.3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["provenance"]["potential"] == "chgnet"
    assert summary["provenance"]["checkpoint"] == potentials.CHGNET_MODEL
    assert summary["symmetry_kept_by_crystal_system"]["cubic"] == {"n": 1, "kept": 1, "fraction_kept": 1.0}
    table = pd.read_csv(out / "summary.csv")
    assert len(table) == 6 and {"potential", "checkpoint", "e_hull", "failure"} <= set(table.columns)
    assert (table.dropna(subset=["energy_eV"])["potential"] == "chgnet").all()
    assert (out / "ehull.png").read_bytes()[:4] == b"\x89PNG"
    ranked = sorted((out / "cifs").glob("*.cif"))
    assert ranked[0].name.startswith("0001_")
    nacl_cif = next(p for p in ranked if p.name.endswith("_NaCl.cif"))
    assert "Fm-3m" in nacl_cif.read_text()  # written with symmetry
    from xtalagent.symmetry import detect_spacegroup

    assert detect_spacegroup(Structure.from_file(nacl_cif)) == 225


def test_screen_reports_prerelaxation_per_structure(tmp_path, small_hull):
    """With a LEGO pre-relaxation hook, every row says whether the target environment was reached."""
    from pyxtal import pyxtal

    from xtalagent.tools.prerelax import graphite, structure_hook

    folder = tmp_path / "carbon"
    folder.mkdir()
    for spg, n, seed in [(191, 2, 0), (194, 4, 1)]:
        xtal = pyxtal()
        xtal.from_random(3, spg, ["C"], [n], random_state=seed)
        xtal.to_pymatgen().to(filename=str(folder / f"C_{spg}.cif"))
    hook = structure_hook(graphite(), max_steps=40)
    report = screen(folder, tmp_path / "out", potential=_Flat(), hull_table=small_hull, prerelax=hook, plot=False)
    for row in report.rows:
        assert isinstance(row["prerelax_reached"], bool) and isinstance(row["prerelax_used"], bool)
    table = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert {"prerelax_reached", "prerelax_used"} <= set(table.columns) and table["prerelax_reached"].notna().all()
