"""Benchmark the constraint generator on the MP `val` split (never `train`).

Run from the repository root after `python bench/bench_data_build.py`; each part can run alone
(they are independent processes, so two cores can run two parts at once):

    python bench/bench_constraints.py latency [--patterns elements]   # formula + band gap by default
    python bench/bench_constraints.py full --properties band_gap          # whole split
    python bench/bench_constraints.py full --properties formation_energy  # whole split
    python bench/bench_constraints.py patterns --subset 100               # all patterns x properties
    python bench/bench_constraints.py full --patterns elements --properties formation_energy,none --subset 300
    python bench/bench_constraints.py full --properties band_gap --split test --subset 1960  # final check

`--split test` is for the final report of a finished model only: every choice (weights, settings,
recipes) is made on `val`, so `test` tells how those choices hold on crystals nothing was tuned on.
MP test holds 7,342 crystals, 3.7 times val; `--subset 1960` (a seeded random sample) keeps a run
as long as one on val.

`full`: full-formula requests (or `--patterns`) for every val crystal that has the property (or a
random `--subset`): space-group accuracy (top-1, top-5, frequent+other), Wyckoff accuracy given
the group, validity and composition consistency of the decoded top-1 candidate, both baselines.
`patterns`: a random subset, patterns formula / elements / composition x band gap / formation
energy / none, top-5 candidates decoded and checked.
`latency`: median ms per request (top-1 and top-5) and requests/s, one request after another.
Each part writes bench/results/constraints_<part>*.json (+ confusion-matrix PNGs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from xtalagent.data import load_records
from xtalagent.eval.constraints import request_for, sample_records
from xtalagent.eval.constraints_report import run_constraint_eval
from xtalagent.finetune.predictor import load_predictor

RESULTS = Path("bench/results")


def latency(dataset: Path, model: Path | None, n: int = 40, pattern: str = "formula") -> dict:
    records = sample_records(load_records(dataset, "val"), 200, seed=1)
    requests = [r for r in (request_for(rec, pattern, "band_gap") for rec in records) if r][:n]
    predictor = load_predictor(model)
    predictor.predict(requests[0], top_k=1)  # warm-up
    import torch

    out: dict = {
        "pattern": pattern,
        "n_requests": len(requests),
        "load_average": os.getloadavg(),
        "torch_threads": torch.get_num_threads(),
    }
    for k in (1, 5):
        times = []
        for request in requests:
            start = time.perf_counter()
            predictor.predict(request, top_k=k)
            times.append(time.perf_counter() - start)
        out[f"top{k}"] = {
            "median_ms": round(1000 * statistics.median(times), 1),
            "p90_ms": round(1000 * sorted(times)[int(0.9 * len(times)) - 1], 1),
            "requests_per_s": round(len(times) / sum(times), 2),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["latency", "full", "patterns"])
    parser.add_argument("--dataset", type=Path, default=Path("datasets/mp_structures.parquet"))
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--properties", default="band_gap")
    parser.add_argument("--subset", type=int, default=None, help="val crystals (full: all; patterns: 100)")
    parser.add_argument("--patterns", default="formula", help="full: comma-separated request patterns; latency: one")
    parser.add_argument("--tag", default="", help="suffix of the results folder, e.g. for a candidate model")
    parser.add_argument("--no-prior", action="store_true", help="stage 1 from the language model alone")
    parser.add_argument("--split", choices=["val", "test"], default="val", help="full: test only for a final report")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.part == "latency":
        pattern = args.patterns.split(",")[0]
        result = latency(args.dataset, args.model, pattern=pattern)
        target = RESULTS / f"constraints_latency{'' if pattern == 'formula' else '_' + pattern}{args.tag}.json"
    elif args.part == "full":
        props, patterns = args.properties.split(","), args.patterns.split(",")
        prefix = "" if patterns == ["formula"] else "_".join(patterns) + "_"
        size = f"_{args.subset}" if args.subset else ""
        split = "" if args.split == "val" else f"_{args.split}"
        out = RESULTS / f"constraints_full_{prefix}{'_'.join(props)}{size}{split}{args.tag}"
        result = run_constraint_eval(
            args.dataset,
            args.split,
            out,
            limit=args.subset,
            patterns=patterns,
            properties=props,
            top_k=5,
            model=args.model,
            decode_k=1,
            use_prior=not args.no_prior,
        )
        target = out / "constraints_eval.json"
    else:
        out = RESULTS / f"constraints_patterns{args.tag}"
        result = run_constraint_eval(
            args.dataset,
            "val",
            out,
            limit=args.subset or 100,
            patterns=["formula", "elements", "composition"],
            properties=["band_gap", "formation_energy", "none"],
            top_k=5,
            model=args.model,
            use_prior=not args.no_prior,
        )
        target = out / "constraints_eval.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result.get("results", result), indent=1))
    print(f"-> {target}")


if __name__ == "__main__":
    main()
