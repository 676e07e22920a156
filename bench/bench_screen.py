"""Screening-stage benchmarks (issue #5); figures are printed and written to bench/results/.

* ``ehull``: e_hull of MP test-split crystals (rows of ../shared/data/mp/structures.csv.gz with
  split == 'test' and e_above_hull present; a fixed random sample), relaxed with CHGNet from their
  MP structures by the real ``screen()`` pipeline (symmetry-constrained, default settings), vs MP
  ``e_above_hull``. Nothing is fitted: the test split is only scored.
  -> bench/results/screen_ehull.json (bar: MAE <= 0.05 eV/atom)
* ``throughput``: relaxations per minute for 5-20-atom cells (val split, positions rattled by
  0.05 Å and cell strained by 3 % so that every relaxation has work to do), batched FIRE vs CHGNet's
  one-at-a-time ``StructOptimizer`` (both free relaxation, FrechetCellFilter, fmax 0.1).
  -> bench/results/screen_throughput.json (bar: >= 3x)

Run single-threaded (OMP_NUM_THREADS=1): ``python bench/bench_screen.py ehull --n 300``,
``python bench/bench_screen.py throughput``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def _mp(split: set[str]) -> pd.DataFrame:
    from xtalagent import config

    path = config.SHARED_DATA_DIR / "mp" / "structures.csv.gz"
    if not path.is_file():
        raise SystemExit(f"shared data not found: {path}")
    frame = pd.read_csv(path)
    return frame[frame["split"].isin(split)]


def _structure(cif: str):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_str(cif, fmt="cif")


def bench_ehull(n: int, seed: int, out_dir: Path, batch_size: int) -> dict:
    from xtalagent.tools.potentials import limit_threads
    from xtalagent.tools.screen import Candidate, screen

    limit_threads(1)
    frame = _mp({"test"})
    frame = frame[frame["e_above_hull"].notna()].sample(n=n, random_state=seed)
    cands = [
        Candidate(id=r.material_id, source="mp", cif_text=r.cif, structure=_structure(r.cif))
        for r in frame.itertuples()
    ]
    for c in cands:
        from xtalagent.symmetry import detect_spacegroup

        c.requested_spacegroup = detect_spacegroup(c.structure)
    t0 = time.perf_counter()
    report = screen(cands, out_dir, potential="chgnet", batch_size=batch_size, plot=True)
    seconds = time.perf_counter() - t0
    rows = {r["id"]: r for r in report.rows}
    truth = frame.set_index("material_id")
    ok = [i for i, r in rows.items() if r.get("e_hull") is not None]
    pred = np.array([rows[i]["e_hull"] for i in ok])
    ref = truth.loc[ok, "e_above_hull"].to_numpy()
    eform_ok = [i for i in ok if pd.notna(truth.loc[i, "formation_energy_per_atom"])]
    ef_pred = np.array([rows[i]["e_form"] for i in eform_ok])
    ef_ref = truth.loc[eform_ok, "formation_energy_per_atom"].to_numpy()
    result = {
        "what": "e_hull of MP test-split crystals relaxed with CHGNet (symmetry-constrained) vs MP e_above_hull",
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
        "seed": seed,
        "potential": report.provenance,
        "seconds": round(seconds, 1),
        "sizes": {"min_atoms": int(frame["n_sites"].min()), "max_atoms": int(frame["n_sites"].max())},
        "command": f"OMP_NUM_THREADS=1 python bench/bench_screen.py ehull --n {n} --seed {seed}",
    }
    return result


def _throughput_set(n: int, seed: int):
    from pymatgen.io.ase import AseAtomsAdaptor

    frame = _mp({"val"})
    frame = frame[(frame["n_sites"] >= 5) & (frame["n_sites"] <= 20)].sample(n=n, random_state=seed)
    rng = np.random.default_rng(seed)
    atoms = []
    for cif in frame["cif"]:
        a = AseAtomsAdaptor.get_atoms(_structure(cif))
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        a.set_cell(a.cell * 1.03, scale_atoms=True)
        atoms.append(a)
    return atoms, frame["material_id"].tolist()


def bench_throughput(n_batched: int, n_baseline: int, seed: int, batch_size: int) -> dict:
    from chgnet.model import StructOptimizer
    from pymatgen.io.ase import AseAtomsAdaptor
    from xtalagent.tools.potentials import CHGNetPotential, limit_threads
    from xtalagent.tools.relax import relax_batch

    limit_threads(1)
    atoms, ids = _throughput_set(n_batched, seed)
    pot = CHGNetPotential()
    t0 = time.perf_counter()
    batched = relax_batch(atoms, pot, symmetric=False, batch_size=batch_size, fmax=0.1, max_steps=500)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched_sym = relax_batch(atoms, pot, symmetric=True, batch_size=batch_size, fmax=0.1, max_steps=500)
    t_sym = time.perf_counter() - t0

    opt = StructOptimizer(model=pot.model, use_device="cpu")
    base_steps = []
    t0 = time.perf_counter()
    for a in atoms[:n_baseline]:
        res = opt.relax(AseAtomsAdaptor.get_structure(a), fmax=0.1, steps=500, verbose=False)
        base_steps.append(len(res["trajectory"].energies))
    t_base = time.perf_counter() - t0

    per_min = {
        "batched_free": 60 * len(atoms) / t_batched,
        "batched_symmetric": 60 * len(atoms) / t_sym,
        "structoptimizer_one_by_one": 60 * n_baseline / t_base,
    }
    return {
        "what": "relaxations per minute, 5-20-atom MP val cells (rattled 0.05 Å, strained 3 %), 1 thread",
        "n_batched": len(atoms),
        "n_baseline": n_baseline,
        "batch_size": batch_size,
        "relaxations_per_minute": per_min,
        "speedup_free": per_min["batched_free"] / per_min["structoptimizer_one_by_one"],
        "speedup_symmetric": per_min["batched_symmetric"] / per_min["structoptimizer_one_by_one"],
        "bar_speedup": 3.0,
        "mean_steps": {
            "batched_free": float(np.mean([r.steps for r in batched])),
            "batched_symmetric": float(np.mean([r.steps for r in batched_sym])),
            "structoptimizer (first n_baseline)": float(np.mean(base_steps)),
            "batched_free (same first n_baseline)": float(np.mean([r.steps for r in batched[:n_baseline]])),
        },
        "status_batched_free": {s: sum(r.status == s for r in batched) for s in {r.status for r in batched}},
        "seconds": {"batched_free": t_batched, "batched_symmetric": t_sym, "baseline": t_base},
        "load_average": os.getloadavg(),
        "ids": ids,
        "command": "OMP_NUM_THREADS=1 python bench/bench_screen.py throughput "
        f"--n {n_batched} --n-baseline {n_baseline}",
    }


def main() -> None:
    from xtalagent.io import write_json_atomic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["ehull", "throughput"])
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--n-baseline", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default bench/results/screen_*.json)")
    args = parser.parse_args()
    if args.which == "ehull":
        n = args.n or 300
        work = Path("/tmp") / f"bench_screen_ehull_{n}_{args.seed}"
        result = bench_ehull(n, args.seed, work, args.batch_size)
        target = args.out or RESULTS / "screen_ehull.json"
    else:
        result = bench_throughput(args.n or 32, args.n_baseline, args.seed, args.batch_size)
        target = args.out or RESULTS / "screen_throughput.json"
    print(json.dumps({k: v for k, v in result.items() if k not in ("ids", "failures")}, indent=2))
    write_json_atomic(target, result)
    print(f"-> {target}")


if __name__ == "__main__":
    main()
