"""Batched sampling speed of the structure generator: structures per second.

Run from the repository root after `python bench/bench_data_build.py`:

    python bench/bench_sampling_speed.py --n 64 --threads 2 --steps 1000 200

Takes ``--n`` random MP `val` constraints (true group and sites, cells of at most 20 atoms, the
size a design request asks for) and times ``generate`` (batched denoising, checks, retries) once
per step count. Writes bench/results/sampling_speed.json.
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
from xtalagent.structure_gen.samplers import DIFFUSION_TEMPERATURE, DiffusionSampler, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("datasets/mp_structures.parquet"))
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--max-atoms", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, nargs="+", default=[1000, 200])
    parser.add_argument("--out", type=Path, default=Path("bench/results/sampling_speed.json"))
    args = parser.parse_args()
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
        "runs": [],
    }
    for steps in args.steps:
        sampler = DiffusionSampler(seed=0, steps=steps)
        start = time.perf_counter()
        results = generate(constraints, n=1, sampler=sampler)
        seconds = time.perf_counter() - start
        ok = sum(r.ok for r in results)
        run = {
            "steps": steps,
            "seconds": round(seconds, 1),
            "returned": ok,
            "structures_per_second": round(ok / seconds, 3),
            "attempts_per_returned": round(sum(r.attempts for r in results) / max(ok, 1), 2),
        }
        report["runs"].append(run)
        print(json.dumps(run), flush=True)
    report["command"] = "python bench/bench_sampling_speed.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items()
    )
    write_json_atomic(args.out, report)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
