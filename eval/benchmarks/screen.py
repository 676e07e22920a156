"""Screening-stage benchmarks (issue #5); figures are printed and written to bench/results/.

* ``ehull``: e_hull of MP-20 crystals (rows of ../shared/data/mp/structures.csv.gz with source
  mp20, the given split and e_above_hull present; a fixed random sample), relaxed with CHGNet from
  their MP structures by the real ``screen()`` pipeline (symmetry-constrained, default settings),
  vs MP ``e_above_hull``. Nothing is fitted: the test split is only scored (``--split val`` runs the
  same on the validation split). Per-crystal rows go to ``*.details.json`` with the error split into
  (our e_form - MP e_form) - (our reference hull - MP's hull) at the crystal's composition, plus a
  *diagnostic* e_hull against the Matbench table as published (legacy MP corrections; the shipped
  table is re-expressed in MP2020, see xtalagent.tools.mp2020).
  -> bench/results/screen_ehull.json (bar: MAE <= 0.05 eV/atom)
* ``throughput``: relaxations per minute for 5-20-atom cells (val split, positions rattled by
  0.05 Å and cell strained by 3 % so that every relaxation has work to do). Baseline: CHGNet's
  one-at-a-time ``StructOptimizer`` (ASE FIRE, FrechetCellFilter, fmax 0.1, 500 steps, its
  ``CHGNetCalculator``), with the same torch thread count as ours. Variants of ours: the default
  (``relax_batch``: BFGS, batched, one-backward-pass forces and stress), the same in the
  symmetry-constrained mode, FIRE with the fast potential, and FIRE with CHGNet's own
  ``predict_graph`` (the previous implementation). All free-cell variants use the same filter and
  convergence check as the baseline. The cells are run in chunks of ``--batch-size``; every chunk
  runs every variant back to back (order rotated per chunk) so that all see the same machine load.
  Wall and CPU seconds are both recorded; final energies are compared with the baseline's.
  -> bench/results/screen_throughput.json (bar: >= 3x)

* ``check-table``: the Matbench hull table (as published and re-expressed in MP2020) against MP-20
  ground-state formation energies. -> bench/results/screen_hull_table_check.json

Run with one thread: ``xtalagent bench screen ehull --n 300``, ``xtalagent bench screen throughput --n 32``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pymatgen.core import Composition

from xtalagent.eval.benchmarks.paths import MP_TABLE, results_dir, shared_file
from xtalagent.eval.benchmarks.results import DEFAULT_VARIANT, result_name, write_result
from xtalagent.eval.benchmarks.subsets import read_mp_table, seeded_rows
from xtalagent.tools.mp2020 import anion
from xtalagent.tools.settings import RelaxSettings

Which = Literal["ehull", "throughput", "check-table"]
WHICH: tuple[str, ...] = ("ehull", "throughput", "check-table")
#: The Matbench formation-energy table inside the shared data (the hull before MP2020 re-expression).
MATBENCH_E_FORM = "matbench/mp_e_form.csv.gz"


def _mp(split: set[str], table: Path) -> pd.DataFrame:
    return read_mp_table(table, split)


def _structure(cif: str):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_str(cif, fmt="cif")


def bench_ehull(
    n: int, seed: int, out_dir: Path, batch_size: int, split: str = "test", *, table: Path, matbench: Path
) -> tuple[dict, dict]:
    from xtalagent.symmetry import detect_spacegroup
    from xtalagent.tools.hull import ReferenceHull
    from xtalagent.tools.potentials import limit_threads
    from xtalagent.tools.screen import StructureCandidate, screen

    limit_threads(1)
    frame = _mp({split}, table)
    frame = seeded_rows(frame[(frame["source"] == "mp20") & frame["e_above_hull"].notna()], n, seed)
    cands = [
        StructureCandidate(id=r.material_id, source="mp", cif_text=r.cif, structure=_structure(r.cif))
        for r in frame.itertuples()
    ]
    for c in cands:
        assert c.structure is not None  # parsed above
        c.requested_spacegroup = detect_spacegroup(c.structure)
    load0 = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    report = screen(cands, out_dir, potential="chgnet", batch_size=batch_size, plot=True)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = {r["id"]: r for r in report.rows}
    truth = frame.set_index("material_id")
    ok = [i for i, r in rows.items() if r.get("e_hull") is not None]
    pred = np.array([rows[i]["e_hull"] for i in ok])
    ref = truth.loc[ok, "e_above_hull"].to_numpy()
    eform_ok = [i for i in ok if pd.notna(truth.loc[i, "formation_energy_per_atom"])]
    ef_pred = np.array([rows[i]["e_form"] for i in eform_ok])
    ef_ref = truth.loc[eform_ok, "formation_energy_per_atom"].to_numpy()

    # --- per crystal: where does the error come from? -------------------------------------------
    default_hull = ReferenceHull.default()
    legacy_hull = ReferenceHull(_legacy_table(matbench), name="matbench mp_e_form, legacy MP corrections")
    details = []
    for i in ok:
        r, t = rows[i], truth.loc[i]
        comp = Composition(r["formula"])
        hull_at = default_hull.hull_energy(comp)
        mp_hull_at = float(t["formation_energy_per_atom"] - t["e_above_hull"])
        details.append(
            {
                "id": i,
                "formula": r["formula"],
                "natoms": r.get("natoms"),
                "anion": anion(comp),
                "status": r.get("status"),
                "steps": r.get("steps"),
                "symmetry_kept": r.get("symmetry_kept"),
                "e_form": r["e_form"],
                "e_hull": r["e_hull"],
                "mp_e_form": float(t["formation_energy_per_atom"]),
                "mp_e_above_hull": float(t["e_above_hull"]),
                "reference_hull_e_form": hull_at,  # our hull (shipped MP2020 table) at this composition
                "mp_hull_e_form": mp_hull_at,  # MP's hull at this composition: e_form - e_above_hull
                "e_form_error": r["e_form"] - float(t["formation_energy_per_atom"]),
                "hull_offset": hull_at - mp_hull_at,  # e_hull error = e_form_error - hull_offset
                "e_hull_error": r["e_hull"] - float(t["e_above_hull"]),
                "e_hull_vs_legacy_table": legacy_hull.e_above_hull(comp, r["e_form"]),
            }
        )
    det = pd.DataFrame(details)
    alt = det["e_hull_vs_legacy_table"].to_numpy()
    offset_big = det["hull_offset"].abs() > 0.1
    by_anion = (
        det.assign(abs_err=det["e_hull_error"].abs(), abs_off=det["hull_offset"].abs())
        .groupby("anion")
        .agg(n=("id", "size"), mae_e_hull=("abs_err", "mean"), mean_abs_hull_offset=("abs_off", "mean"))
        .sort_values("n", ascending=False)
    )
    result = {
        "what": f"e_hull of MP-20 {split}-split crystals relaxed with CHGNet (symmetry-constrained) vs MP e_above_hull",
        "split": split,
        "n_requested": n,
        "n_scored": len(ok),
        "n_failed": report.n_failed,
        "failures": {i: r.get("failure") for i, r in rows.items() if r.get("e_hull") is None},
        "n_unconverged": sum(r.get("status") == "unconverged" for r in rows.values()),
        "mae_e_hull": float(np.mean(np.abs(pred - ref))),
        "mae_e_hull_clipped_at_0": float(np.mean(np.abs(np.clip(pred, 0, None) - ref))),
        "median_ae_e_hull": float(np.median(np.abs(pred - ref))),
        "mae_e_form_vs_mp": float(np.mean(np.abs(ef_pred - ef_ref))) if len(eform_ok) else None,
        "n_e_form": len(eform_ok),
        "stable_classification_accuracy_0.1": float(np.mean((pred <= 0.1) == (ref <= 0.1))),
        "bar_mae_e_hull": 0.05,
        "n_negative_e_hull": int((pred < 0).sum()),
        "error_sources": {
            "note": "e_hull error = (e_form - MP e_form) - (reference hull - MP hull) at the composition",
            "mae_e_form_error": float(det["e_form_error"].abs().mean()),
            "mae_hull_offset": float(det["hull_offset"].abs().mean()),
            "n_hull_offset_above_0.1": int(offset_big.sum()),
            "share_of_abs_e_hull_error_from_them": float(
                det.loc[offset_big, "e_hull_error"].abs().sum() / det["e_hull_error"].abs().sum()
            ),
            "mae_e_hull_without_them": float(det.loc[~offset_big, "e_hull_error"].abs().mean()),
            "by_most_electronegative_element": {
                k: {c: round(float(v), 4) for c, v in row.items()} for k, row in by_anion.head(15).iterrows()
            },
        },
        "diagnostic_legacy_table": {
            "note": "same e_form, e_hull against the Matbench table as published (legacy MP corrections), "
            "what screen() used before the MP2020 table shipped",
            "mae_e_hull": float(np.mean(np.abs(alt - det["mp_e_above_hull"]))),
            "mae_e_hull_clipped_at_0": float(np.mean(np.abs(np.clip(alt, 0, None) - det["mp_e_above_hull"]))),
            "median_ae_e_hull": float(np.median(np.abs(alt - det["mp_e_above_hull"]))),
            "n_negative_e_hull": int((alt < 0).sum()),
        },
        "optimizer": RelaxSettings.optimizer,
        "seed": seed,
        "potential": report.provenance,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "load_average_start_end": [load0, os.getloadavg()],
        "sizes": {"min_atoms": int(frame["n_sites"].min()), "max_atoms": int(frame["n_sites"].max())},
    }
    return result, {"rows": details}


def _legacy_table(matbench: Path) -> pd.DataFrame:
    """The hull table as Matbench publishes it (legacy MP corrections): what screen() used before."""
    from xtalagent.tools.hull import legacy_table

    return legacy_table(matbench)


def check_mp2020_table(splits: set[str], *, table: Path, matbench: Path) -> dict:
    """Matbench table (legacy and the shipped MP2020 version) vs MP-20 formation energies of ground states."""
    from xtalagent.tools.hull import HULL_TABLE_FILE

    frame = _mp(splits, table)
    frame = frame[(frame["source"] == "mp20") & (frame["e_above_hull"] == 0)]
    raw = _legacy_table(matbench).set_index("formula")["e_form"]
    conv = pd.read_csv(HULL_TABLE_FILE, keep_default_na=False).set_index("formula")["e_form"]
    frame = frame[frame["formula"].isin(raw.index)]
    mp = frame["formation_energy_per_atom"].to_numpy()
    d_raw = raw.reindex(frame["formula"]).to_numpy() - mp
    d_conv = conv.reindex(frame["formula"]).to_numpy() - mp
    return {
        "what": "Matbench mp_e_form (lowest per formula) minus MP-20 formation energy, MP-20 ground states",
        "splits": sorted(splits),
        "n": len(frame),
        "mae_raw_table": float(np.abs(d_raw).mean()),
        "mae_mp2020_table": float(np.abs(d_conv).mean()),
        "fraction_above_0.1_raw": float((np.abs(d_raw) > 0.1).mean()),
        "fraction_above_0.1_mp2020": float((np.abs(d_conv) > 0.1).mean()),
    }


def _throughput_set(n: int, seed: int, table: Path):
    from pymatgen.io.ase import AseAtomsAdaptor

    frame = _mp({"val"}, table)
    frame = seeded_rows(frame[(frame["n_sites"] >= 5) & (frame["n_sites"] <= 20)], n, seed)
    rng = np.random.default_rng(seed)
    atoms = []
    for cif in frame["cif"]:
        a = AseAtomsAdaptor.get_atoms(_structure(cif))
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        a.set_cell(a.cell * 1.03, scale_atoms=True)
        atoms.append(a)
    return atoms, frame["material_id"].tolist()


def _baseline_relax(opt, atoms_list) -> list[dict]:
    """CHGNet's StructOptimizer, one structure at a time (its defaults: FIRE, FrechetCellFilter)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    out = []
    for a in atoms_list:
        res = opt.relax(AseAtomsAdaptor.get_structure(a), fmax=0.1, steps=500, verbose=False)
        traj = res["trajectory"]
        # the observer records the start, every step, and the end once more: steps = records - 2
        steps = len(traj.energies) - 2
        out.append({"steps": steps, "energy_per_atom": float(traj.energies[-1]) / len(a), "converged": steps < 500})
    return out


def bench_throughput(n: int, seed: int, batch_size: int, threads: int = 1, *, table: Path) -> dict:
    import torch
    from chgnet.model import StructOptimizer

    from xtalagent.tools import relax
    from xtalagent.tools.potentials import CHGNetPotential, limit_threads

    limit_threads(threads)
    atoms, ids = _throughput_set(n, seed, table)
    fast = CHGNetPotential()
    slow = CHGNetPotential(model=fast.model, fast=False)
    with contextlib.redirect_stdout(io.StringIO()):
        baseline = StructOptimizer(model=fast.model, use_device="cpu")

    def ours(potential, **kw):
        def run(chunk):
            res = relax.relax_batch(chunk, potential, batch_size=batch_size, fmax=0.1, max_steps=500, **kw)
            return [
                {"steps": r.steps, "energy_per_atom": r.energy_per_atom, "converged": r.status == "converged"}
                for r in res
            ]

        return run

    variants = {
        "structoptimizer": lambda chunk: _baseline_relax(baseline, chunk),
        "batched": ours(fast, symmetric=False),  # the default relax_batch (BFGS)
        "batched_symmetric": ours(fast, symmetric=True),
        "batched_fire": ours(fast, symmetric=False, optimizer="FIRE"),
        "batched_fire_predict_graph": ours(slow, symmetric=False, optimizer="FIRE"),
    }
    # warm-up outside the clock (first-call costs of torch and the graph converter, both paths)
    variants["batched_fire"](atoms[:1])
    _baseline_relax(baseline, atoms[:1])

    wall = dict.fromkeys(variants, 0.0)
    cpu = dict.fromkeys(variants, 0.0)
    per: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}  # relaxation rows per variant
    loads = [os.getloadavg()]
    names = list(variants)
    for k, i0 in enumerate(range(0, len(atoms), batch_size)):
        chunk = atoms[i0 : i0 + batch_size]
        for name in names[k % len(names) :] + names[: k % len(names)]:  # rotate the order per chunk
            t0, c0 = time.perf_counter(), time.process_time()
            per[name].extend(variants[name](chunk))
            wall[name] += time.perf_counter() - t0
            cpu[name] += time.process_time() - c0
        loads.append(os.getloadavg())

    base = np.array([r["energy_per_atom"] for r in per["structoptimizer"]])
    summary = {}
    for name in variants:
        e = np.array([r["energy_per_atom"] for r in per[name]])
        summary[name] = {
            "relaxations_per_minute": 60 * len(atoms) / wall[name],
            "relaxations_per_cpu_minute": 60 * len(atoms) / cpu[name],
            "wall_seconds": round(wall[name], 2),
            "cpu_seconds": round(cpu[name], 2),
            "mean_steps": float(np.mean([r["steps"] for r in per[name]])),
            "converged": int(sum(r["converged"] for r in per[name])),
            "mean_abs_dE_vs_baseline_meV_per_atom": float(1e3 * np.mean(np.abs(e - base))),
            "max_abs_dE_vs_baseline_meV_per_atom": float(1e3 * np.max(np.abs(e - base))),
            "mean_dE_vs_baseline_meV_per_atom": float(1e3 * np.mean(e - base)),
        }
    ref = summary["structoptimizer"]
    speed = {
        name: {
            "wall": v["relaxations_per_minute"] / ref["relaxations_per_minute"],
            "cpu": v["relaxations_per_cpu_minute"] / ref["relaxations_per_cpu_minute"],
        }
        for name, v in summary.items()
        if name != "structoptimizer"
    }
    return {
        "what": "relaxations per minute, 5-20-atom MP val cells (rattled 0.05 Å, strained 3 %); "
        "baseline = CHGNet StructOptimizer (FIRE, FrechetCellFilter, fmax 0.1, 500 steps) one at a time",
        "n": len(atoms),
        "natoms": [len(a) for a in atoms],
        "batch_size": batch_size,
        "torch_threads_all_variants": torch.get_num_threads(),
        "default_optimizer": RelaxSettings.optimizer,
        "speedup_vs_structoptimizer": speed,
        "speedup": speed["batched"]["wall"],
        "bar_speedup": 3.0,
        "variants": summary,
        # FIRE variants follow the baseline's trajectory; the fast-gradient one only up to float32
        # rounding of forces (~1e-5 eV/Å), which can shift a long FIRE run by a step or two
        "fire_structures_with_baseline_step_count": {
            name: sum(a["steps"] == b["steps"] for a, b in zip(per[name], per["structoptimizer"]))
            for name in ("batched_fire", "batched_fire_predict_graph")
        },
        "per_structure": {name: per[name] for name in variants},
        "load_average_per_chunk": loads,
        "ids": ids,
    }


def run_screen(
    which: Which,
    *,
    n: int | None = None,
    split: Literal["test", "val"] = "test",
    seed: int = 0,
    batch_size: int = 16,
    threads: int = 1,
    mp_table: Path | None = None,
    shared: Path | None = None,
    output: Path | None = None,
    results: Path | None = None,
    variant: str = DEFAULT_VARIANT,
    run: dict[str, Any],
) -> tuple[dict[str, Any], Path]:
    """Run one screening benchmark; return the result and the JSON path (per-crystal rows beside it)."""

    table = shared_file(MP_TABLE, shared=shared, file=mp_table)
    details = None
    folder = results_dir(results)
    if which == "ehull":
        n = n or 300
        matbench = shared_file(MATBENCH_E_FORM, shared=shared)  # the legacy-table diagnostic
        # a fresh work folder per optimiser: screen()'s cache key does not include the optimiser
        work = Path(tempfile.gettempdir()) / f"bench_screen_ehull_{split}_{n}_{seed}_{RelaxSettings.optimizer.lower()}"
        result, details = bench_ehull(n, seed, work, batch_size, split, table=table, matbench=matbench)
        stem = "screen_ehull" if split == "test" else f"screen_ehull_{split}"
    elif which == "check-table":
        result = check_mp2020_table({"train", "val"}, table=table, matbench=shared_file(MATBENCH_E_FORM, shared=shared))
        stem = "screen_hull_table_check"
    elif which == "throughput":
        result = bench_throughput(n or 32, seed, batch_size, threads, table=table)
        stem = "screen_throughput"
    else:
        raise ValueError(f"unknown screening benchmark {which!r}")
    target = output or folder / f"{result_name(stem, variant)}.json"
    write_result(target, result, run=run)
    if details is not None:
        write_result(target.with_suffix(".details.json"), details, run=run)
    return result, target
