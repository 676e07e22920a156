"""Does descriptor pre-relaxation earn its place before ML relaxation? With/without on the same candidates.

The structure generator (issue #4) is not ready, so candidates are pyxtal random carbon crystals
that use the space group and Wyckoff combination of small known sp2 carbons (SACADA, as in
bench_lego_carbon.py) with random lattice and free coordinates. Each candidate is relaxed with
CHGNet (StructOptimizer, FIRE, cell relaxed, fmax 0.1 eV/Å) twice: directly, and after
pre-relaxation toward graphite (LEGO-xtal settings). Reported per arm: CHGNet steps, fraction
converged, fraction valid (converged, shortest distance and volume per atom in the
config ranges), final energy per atom, fraction within 0.5 eV/atom of CHGNet graphite (the
paper's energy window), fraction still sp2 (every C three-coordinated within 1.872 Å), wall time.

Run from the repository root:  OMP_NUM_THREADS=1 python bench/experiments/2026-11-lego-prerelax/bench_prerelax_effect.py
Writes prerelax_effect.json (beside this script).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

FMAX = 0.1  # eV/Å
#: C–C bond cutoff (Å) of pyxtal's tolerance matrix, as in the pre-relaxation criterion.
CC_BOND = 1.872
ENERGY_WINDOW = 0.5  # eV/atom above graphite, LEGO-xtal's window


def _is_sp2(structure) -> bool:
    return all(len(structure.get_neighbors(site, CC_BOND)) == 3 for site in structure)


def _relax(optimizer, structure, steps: int) -> dict:
    import numpy as np

    from xtalagent import config
    from xtalagent.symmetry import detect_spacegroup

    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = optimizer.relax(structure, fmax=FMAX, steps=steps, relax_cell=True, verbose=False)
    except Exception as exc:  # a candidate CHGNet cannot handle: record it
        return {"failure": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - start}
    final, traj = out["final_structure"], out["trajectory"]
    n = len(final)
    fmax_final = float(np.linalg.norm(traj.forces[-1], axis=1).max())
    dm = final.distance_matrix
    dmin = float(dm[np.triu_indices(n, 1)].min()) if n > 1 else float(min(final.lattice.abc))
    vpa = final.volume / n
    lo, hi = config.VOLUME_PER_ATOM_RANGE
    # ASE calls the observer once before the first step and after every step; CHGNet adds one more
    n_steps = len(traj.energies) - 2
    converged = n_steps < steps  # FIRE stopped on its own (cell-filter forces below fmax)
    return {
        "steps": n_steps,
        "converged": bool(converged),
        "fmax_final": fmax_final,
        "energy_per_atom": float(traj.energies[-1]) / n,
        "min_distance": dmin,
        "volume_per_atom": vpa,
        "valid": bool(converged and dmin >= config.MIN_INTERATOMIC_DISTANCE and lo <= vpa <= hi),
        "sp2": _is_sp2(final),
        "spacegroup_after": detect_spacegroup(final),
        "seconds": time.perf_counter() - start,
    }


def _arm_summary(rows: list[dict], e_graphite: float) -> dict:
    ok = [r for r in rows if "failure" not in r]
    valid = [r for r in ok if r["valid"]]

    def med(key, items):
        return statistics.median(r[key] for r in items) if items else None

    return {
        "n": len(rows),
        "n_failed": len(rows) - len(ok),
        "steps_median": med("steps", ok),
        "steps_mean": statistics.fmean(r["steps"] for r in ok) if ok else None,
        "fraction_converged": sum(r["converged"] for r in ok) / len(rows),
        "fraction_valid": len(valid) / len(rows),
        "energy_per_atom_median_valid": med("energy_per_atom", valid),
        "energy_above_graphite_median_valid": (med("energy_per_atom", valid) - e_graphite) if valid else None,
        "fraction_within_window": sum(r["energy_per_atom"] - e_graphite <= ENERGY_WINDOW for r in valid) / len(rows),
        "fraction_sp2_after": sum(r["sp2"] for r in valid) / len(rows),
        "seconds_total": sum(r["seconds"] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=8, help="number of candidates")
    parser.add_argument("--max-atoms", type=int, default=12, help="largest SACADA template used")
    parser.add_argument("--steps", type=int, default=200, help="CHGNet relaxation step limit")
    parser.add_argument("--prerelax-evaluations", type=int, default=1500, help="descriptor evaluation budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "prerelax_effect.json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    from chgnet.model import StructOptimizer
    from pymatgen.core import Structure

    from xtalagent.tools.lego_reference import load_sacada, random_from_entry, sacada_db
    from xtalagent.tools.prerelax import (
        LEGO_CARBON_RCUT,
        build_references,
        graphite,
        lego_available,
        prerelax,
    )

    ok, reason = lego_available()
    if not ok:
        raise SystemExit(reason)
    sacada = sacada_db()
    if not sacada.exists():
        raise SystemExit(f"SACADA database not found at {sacada} (set XTALAGENT_SHARED_DATA)")
    rng = random.Random(args.seed)
    templates = [e for e, _ in load_sacada(sacada, max_atoms=args.max_atoms)]
    env = build_references(None, ["C"], rcut=LEGO_CARBON_RCUT)
    optimizer = StructOptimizer(optimizer_class="FIRE")

    graphite_relaxed = _relax(optimizer, graphite().to_pymatgen(), 500)
    e_graphite = graphite_relaxed["energy_per_atom"]
    print(f"CHGNet graphite: {e_graphite:.3f} eV/atom", flush=True)

    candidates = []
    while len(candidates) < args.n:
        entry = (
            templates[len(candidates) % len(templates)] if len(candidates) < len(templates) else rng.choice(templates)
        )
        xtal = random_from_entry(entry, rng.randrange(2**31))
        if xtal is not None:
            candidates.append((f"sacada{entry.id}", xtal))

    rows = []
    for i, (cid, xtal) in enumerate(candidates):
        raw = xtal.to_pymatgen()
        without = _relax(optimizer, raw, args.steps)
        pre = prerelax(xtal, env, id=f"{cid}-{i}", max_evaluations=args.prerelax_evaluations)
        if pre.failure is None:
            start_b = Structure.from_str(pre.cif, fmt="cif")
        else:  # pre-relaxation failed: the pipeline would go on with the raw candidate
            start_b = raw
        with_pre = _relax(optimizer, start_b, args.steps)
        with_pre["seconds"] += pre.seconds
        row = {
            "id": pre.id,
            "spacegroup": int(xtal.group.number),
            "natoms": len(raw),
            "prerelax": pre.model_dump(exclude={"cif"}),
            "without": without,
            "with": with_pre,
        }
        rows.append(row)
        print(
            f"{i + 1}/{len(candidates)} {cid} sg{row['spacegroup']}: without {without.get('steps')} steps "
            f"E={without.get('energy_per_atom', float('nan')):.3f}; with {with_pre.get('steps')} steps "
            f"E={with_pre.get('energy_per_atom', float('nan')):.3f} (reached={pre.reached})",
            flush=True,
        )

    out = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch_threads": 1},
        "settings": {
            "candidates": "pyxtal from_random carbon with SACADA sp2 space group + Wyckoff sets (no generator yet)",
            "max_atoms": args.max_atoms,
            "chgnet": "StructOptimizer(FIRE), relax_cell=True, fmax=0.1; converged = stopped before the step limit",
            "steps_limit": args.steps,
            "prerelax": "graphite reference, rcut 2.1, LEGO-xtal minimisers; on failure the raw candidate is used",
            "prerelax_max_evaluations": args.prerelax_evaluations,
            "seed": args.seed,
        },
        "chgnet_graphite_energy_per_atom": e_graphite,
        "without_prerelax": _arm_summary([r["without"] for r in rows], e_graphite),
        "with_prerelax": _arm_summary([r["with"] for r in rows], e_graphite),
        "prerelax_reached": sum(r["prerelax"]["reached"] for r in rows),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=float))
    for arm in ("without_prerelax", "with_prerelax"):
        print(arm, json.dumps(out[arm]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
