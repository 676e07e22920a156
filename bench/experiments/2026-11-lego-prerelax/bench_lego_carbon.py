"""LEGO-xtal's own setting on carbon: pre-relax sp2 candidates toward graphite, count who gets there.

Candidates (no trained LEGO-xtal generator here, so two stand-ins):
* ``sacada_wp`` — the space group and Wyckoff combination of each known sp2 carbon of SACADA
  (``shared/data/lego_sp2``, up to ``--max-atoms``) with random lattice and free coordinates
  (pyxtal ``from_random(sites=...)``): the kind of symmetry choice a generator trained on SACADA makes;
* ``random`` — pyxtal ``from_random`` carbon in a fixed list of groups and cell sizes.
Reference: graphite, SO(3) cutoff 2.1 Å, LEGO-xtal's minimiser stages. Criterion (LEGO-xtal
``N_valid_env``): every carbon three-coordinated after pre-relaxation, group kept. The paper reports
15–22 % of valid generated crystals. Positive control: the known SACADA structures themselves.

Run from the repository root:  OMP_NUM_THREADS=1 python bench/experiments/2026-11-lego-prerelax/bench_lego_carbon.py
Writes lego_carbon.json (beside this script).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
import warnings
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

#: Groups for the ``random`` source: the commonest groups of small SACADA sp2 carbons plus graphite's.
RANDOM_GROUPS = (65, 74, 131, 141, 166, 180, 181, 191, 194, 227)
RANDOM_SIZES = (4, 6, 8, 12, 16)


def _sacada_candidates(entries, per_entry: int, rng: random.Random):
    from xtalagent.tools.lego_reference import random_from_entry

    out = []
    for entry, _ in entries:
        for _ in range(per_entry):
            xtal = random_from_entry(entry, rng.randrange(2**31))
            out.append((f"sacada{entry.id}", entry.spacegroup, xtal))
    return out


def _random_candidates(n_per_group: int, rng: random.Random):
    from pyxtal import pyxtal

    out = []
    for spg in RANDOM_GROUPS:
        for _ in range(n_per_group):
            xtal = pyxtal()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    xtal.from_random(3, spg, ["C"], [rng.choice(RANDOM_SIZES)], random_state=rng.randrange(2**31))
            except Exception:
                xtal.valid = False
            out.append((f"random{spg}", spg, xtal if xtal.valid else None))
    return out


def _run(name: str, candidates, env, max_steps, max_evaluations):
    from xtalagent.tools.prerelax import prerelax, summarize

    start = time.perf_counter()
    valid = [(cid, spg, x) for cid, spg, x in candidates if x is not None]
    results = []
    for i, (cid, _spg, xtal) in enumerate(valid):
        results.append(prerelax(xtal, env, max_steps=max_steps, id=f"{cid}-{i}", max_evaluations=max_evaluations))
        if (i + 1) % 5 == 0:
            print(f"  {name}: {i + 1}/{len(valid)} done, {time.perf_counter() - start:.0f} s", flush=True)
    summary = summarize(results)
    per_group: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for r in results:
        if r.failure is None:
            per_group[r.spacegroup_before][0] += 1
            per_group[r.spacegroup_before][1] += int(r.reached)
    return {
        "n_attempted": len(candidates),
        "n_valid_xtal": len(valid),
        **summary,
        "fraction_reached_of_valid": summary["n_reached"] / len(valid) if valid else None,
        "median_seconds": float(sorted(r.seconds for r in results)[len(results) // 2]) if results else None,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "per_group": {str(k): {"n": v[0], "reached": v[1]} for k, v in sorted(per_group.items())},
        "results": [
            r.model_dump(exclude={"cif"}) | {"cif": r.cif if r.reached else ""} for r in results
        ],  # CIFs of successes only, to keep the file small
    }


def calibrate(env, max_atoms: int = 120) -> dict:
    """Descriptor distance to graphite and CN check of the known SACADA sp2 carbons, unrelaxed.

    This is where DISTANCE_THRESHOLD_REL comes from: the distance known sp2 carbons have.
    """
    import numpy as np
    from pymatgen.io.ase import AseAtomsAdaptor
    from pyxtal.lego.util import calculate_S

    from xtalagent.tools.lego_reference import load_sacada, sacada_db
    from xtalagent.tools.prerelax import _site_references, to_pyxtal

    calc = env.calculator()
    rows = []
    for entry, atoms in load_sacada(sacada_db(), max_atoms=max_atoms):
        xtal = to_pyxtal(AseAtomsAdaptor.get_structure(atoms))
        refs = _site_references(xtal, env, calc)
        dist = float(calculate_S(np.array(xtal.get_1d_rep_x(), float), xtal.copy(), refs, calc))
        sp2 = bool(xtal.check_validity({"CN": {"C": [3]}, "cutoff": None, "exclude_ii": False}))
        rows.append(
            {"id": entry.id, "natoms": entry.natoms, "spacegroup": entry.spacegroup, "distance": dist, "sp2": sp2}
        )
    d = np.array([r["distance"] for r in rows])
    thr = env.distance_threshold()
    return {
        "n": len(rows),
        "max_atoms": max_atoms,
        "fraction_three_coordinated": float(np.mean([r["sp2"] for r in rows])),
        "distance_percentiles": {str(q): float(np.percentile(d, q)) for q in (50, 75, 90, 95, 99, 100)},
        "graphite_norm_squared": float(np.mean(np.sum(env.descriptors["C"] ** 2, axis=1))),
        "distance_threshold": thr,
        "fraction_below_threshold": float(np.mean(d <= thr)),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-atoms", type=int, default=16, help="largest SACADA structure used")
    parser.add_argument("--per-entry", type=int, default=1, help="random candidates per SACADA group/Wyckoff set")
    parser.add_argument("--per-group", type=int, default=5, help="random candidates per group (random source)")
    parser.add_argument("--max-steps", type=int, default=None, help="minimiser iterations (default LEGO-xtal's 700)")
    parser.add_argument("--control-steps", type=int, default=70, help="minimiser iterations for known structures")
    parser.add_argument("--max-evaluations", type=int, default=None, help="descriptor evaluations per candidate")
    parser.add_argument("--calibration-only", action="store_true", help="only the known-sp2 distance calibration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "lego_carbon.json")
    args = parser.parse_args()

    import torch  # noqa: F401  (imported by pymatgen extras on some setups; keep it to one thread)

    torch.set_num_threads(1)
    from pymatgen.io.ase import AseAtomsAdaptor

    from xtalagent.tools.lego_reference import load_sacada, sacada_db
    from xtalagent.tools.prerelax import (
        DISTANCE_THRESHOLD_REL,
        LEGO_CARBON_RCUT,
        LEGO_MINIMIZERS,
        MAX_EVALUATIONS,
        build_references,
        lego_available,
        prerelax,
        summarize,
    )

    ok, reason = lego_available()
    if not ok:
        raise SystemExit(reason)
    sacada = sacada_db()
    if not sacada.exists():
        raise SystemExit(f"SACADA database not found at {sacada} (set XTALAGENT_SHARED_DATA)")
    warnings.filterwarnings("ignore")
    rng = random.Random(args.seed)
    budget = args.max_evaluations or MAX_EVALUATIONS
    env = build_references(None, ["C"], rcut=LEGO_CARBON_RCUT)
    if args.calibration_only:
        start = time.perf_counter()
        cal = calibrate(env) | {"rcut": LEGO_CARBON_RCUT, "distance_threshold_rel": DISTANCE_THRESHOLD_REL}
        cal["wall_seconds"] = round(time.perf_counter() - start, 1)
        path = args.out.with_name("lego_sp2_calibration.json")
        path.write_text(json.dumps(cal, indent=1))
        print({k: v for k, v in cal.items() if k != "rows"})
        print(f"wrote {path}")
        return
    entries = load_sacada(sacada, max_atoms=args.max_atoms)
    print(f"{len(entries)} SACADA sp2 carbons with <= {args.max_atoms} atoms", flush=True)

    out: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {
            "reference": "graphite (P6_3/mmc, a=2.46, c=6.70)",
            "rcut": LEGO_CARBON_RCUT,
            "minimizers": args.max_steps or [list(m) for m in LEGO_MINIMIZERS],
            "criterion": "every C three-coordinated (pyxtal check_validity, C-C cutoff 1.872 A) and group kept",
            "distance_threshold": env.distance_threshold(),
            "distance_threshold_rel": DISTANCE_THRESHOLD_REL,
            "seed": args.seed,
            "max_evaluations": budget,
            "control_steps": args.control_steps,
            "max_atoms": args.max_atoms,
            "paper_fraction": "15-22% of valid generated crystals (LEGO-xtal, arXiv:2506.08224)",
        },
    }

    # positive control: the known structures themselves (already DFT/ReaxFF-relaxed sp2 carbons)
    start = time.perf_counter()
    known = []
    for e, a in entries:  # already at the target: a short run is enough to check they stay there
        struct = AseAtomsAdaptor.get_structure(a)
        known.append(prerelax(struct, env, max_steps=args.control_steps, id=f"sacada{e.id}", max_evaluations=budget))
        r = known[-1]
        print(f"  control sacada{e.id} sg{e.spacegroup} {e.natoms} at: {r.reached} {r.seconds:.1f} s", flush=True)
    out["known_sp2_control"] = summarize(known) | {
        "wall_seconds": round(time.perf_counter() - start, 1),
        "distance_before_median": float(sorted(r.distance_before or 0 for r in known)[len(known) // 2]),
    }
    print("control:", {k: v for k, v in out["known_sp2_control"].items() if k != "failures"}, flush=True)

    sources = {
        "sacada_wp": _sacada_candidates(entries, args.per_entry, rng),
        "random": _random_candidates(args.per_group, rng),
    }
    out["sources"] = {}
    for name, cands in sources.items():
        print(f"{name}: {len(cands)} attempted", flush=True)
        out["sources"][name] = _run(name, cands, env, args.max_steps, budget)
        s = out["sources"][name]
        print(
            f"{name}: valid {s['n_valid_xtal']}/{s['n_attempted']}, reached {s['n_reached']} "
            f"({s['fraction_reached_of_valid']:.1%} of valid), median {s['median_seconds']:.2f} s",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
