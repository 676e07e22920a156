"""Batched sampling speed of the structure generator, beside its match rate: the quality/speed trade-off.

Run from the repository root after `python bench/bench_data_build.py`:

    python bench/bench_sampling_speed.py --n 64 --threads 2 --steps 1000 200 100 50 --prototypes 0 1 \
        --val-reports bench/results/structure_levers

Takes ``--n`` random MP `val` constraints (true group and sites, cells of at most 20 atoms, the
size a design request asks for) and times ``generate`` (batched denoising, checks, retries) once
per step count, with the general MP checkpoint. The machine may be shared: each run records the
load average before and after, and the process CPU seconds beside the wall seconds, so
``structures_per_cpu_second`` stays comparable when other jobs compete for the cores. Writes
bench/results/sampling_speed.json; with ``--val-reports DIR`` (CSP reports
``csp_val<n>_s<steps>_t05_diffusion.json`` from ``bench_csp.py``; ``--reuse`` times nothing) also
bench/results/structure_speed_tradeoff.json: one row per step count with match@1 on `val` and
structures per second.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from xtalagent.io import write_json_atomic
from xtalagent.structure_gen.evaluate import select_records
from xtalagent.structure_gen.samplers import CHECKPOINT_DIR, DIFFUSION_TEMPERATURE, generate, make_sampler

TRADEOFF_OUT = Path("bench/results/structure_speed_tradeoff.json")


def time_generate(constraints: list, steps: int, prototypes: int = 0) -> dict:
    """Wall and CPU seconds of one batched ``generate`` call (one structure per constraint); with
    ``prototypes``, known train prototypes first (``make_sampler``), the model for the rest."""
    sampler = make_sampler(
        "diffusion", checkpoint=CHECKPOINT_DIR / "mp_20.pt", seed=0, steps=steps, prototypes=prototypes, variant="eval"
    )
    if prototypes:
        sampler.library.templates(constraints[0])  # load the known crystals before the clock starts
    load_before = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    results = generate(constraints, n=1, sampler=sampler)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ok = sum(r.ok for r in results)
    return {
        "steps": steps,
        "prototypes": prototypes,
        "from_prototypes": sum(r.ok and r.prototype is not None for r in results),
        "seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "returned": ok,
        "structures_per_second": round(ok / wall, 3),
        "structures_per_cpu_second": round(ok / cpu, 3),
        "attempts_per_returned": round(sum(r.attempts for r in results) / max(ok, 1), 2),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def tradeoff(runs: list[dict], reports: Path) -> list[dict]:
    """(steps, match@1 on val ± s.e., RMSE, structures/s) for every step count with a val report."""
    rows = []
    for run in runs:
        tag = f"_p{run['prototypes']}" if run.get("prototypes") else ""
        found = sorted(reports.glob(f"csp_val*_s{run['steps']}_t05{tag}_diffusion.json"))
        if not found:
            continue
        # the run on the most crystals (val100 over val50)
        path = max(found, key=lambda p: json.loads(p.read_text())["n_crystals"])
        report = json.loads(path.read_text())
        res = report["results"]["diffusion"]
        rows.append(
            {
                "steps": run["steps"],
                "prototypes": run.get("prototypes", 0),
                "val_match_at_1": res["match_rate_at_1"],
                "val_match_at_1_stderr": res["match_rate_at_1_stderr"],
                "val_rmse_at_1": res["rmse_at_1"],
                "val_crystals": res["n_crystals"],
                "structures_per_second": run["structures_per_second"],
                "structures_per_cpu_second": run["structures_per_cpu_second"],
                "val_report": str(path),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("datasets/mp_structures.parquet"))
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--max-atoms", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, nargs="+", default=[1000, 200])
    parser.add_argument(
        "--prototypes", type=int, nargs="+", default=[0], help="prototypes per constraint (each with every --steps)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/sampling_speed.json"))
    parser.add_argument("--val-reports", type=Path, default=None, help="folder of val CSP reports per step count")
    parser.add_argument(
        "--reuse", action="store_true", help="time nothing: build the trade-off table from the existing --out report"
    )
    args = parser.parse_args()
    if args.reuse:
        if not args.val_reports:
            parser.error("--reuse needs --val-reports")
        write_tradeoff(json.loads(args.out.read_text()), args)
        return
    torch.set_num_threads(args.threads)
    records = select_records(args.dataset, "val", args.n, seed=0, max_atoms=args.max_atoms)
    constraints = [r.constraint() for r in records]
    report = {
        "n_constraints": len(constraints),
        "mean_atoms": sum(r.natoms for r in records) / len(records),
        "torch_threads": args.threads,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "temperature": DIFFUSION_TEMPERATURE,
        "checkpoint": "mp_20.pt",
        "runs": [],
    }
    for prototypes in args.prototypes:
        for steps in args.steps:
            run = time_generate(constraints, steps, prototypes)
            report["runs"].append(run)
            print(json.dumps(run), flush=True)
    report["command"] = "python bench/bench_sampling_speed.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items()
        if v is not None
    )
    write_json_atomic(args.out, report)
    print(f"-> {args.out}")
    if args.val_reports:
        write_tradeoff(report, args)


def write_tradeoff(report: dict, args: argparse.Namespace) -> None:
    rows = tradeoff(report["runs"], args.val_reports)
    write_json_atomic(
        TRADEOFF_OUT,
        {
            "note": "match@1: seeded MP val crystals (val_crystals), true constraints, one sample, temperature "
            "0.5, mp_20.pt; speed: batched generate on the constraints of the speed run (cells of at most "
            f"{report.get('max_atoms', args.max_atoms)} atoms), {report['torch_threads']} torch thread(s) on a "
            "shared machine (load averages in the speed report); structures_per_cpu_second is the "
            "load-independent figure",
            "speed_report": str(args.out),
            "rows": rows,
        },
    )
    print(f"-> {TRADEOFF_OUT}")


if __name__ == "__main__":
    main()
