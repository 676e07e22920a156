"""How `predict` should order its candidates: by summed score, or stage 1's groups first.

For each request the top 5 groups of stage 1 are expanded with their best site lists (as
``ConstraintPredictor.predict`` does). The first candidate's group is compared with the true group
under two orderings: the summed score (group log-probability + site-list log-probability, prior
included; the order before this bench) and stage 1's order of groups (the order `predict` now
uses). Half B of the same 600 random MP `val` crystals as bench_constraint_prior.py (its half A
chose the prior settings); `test` is never read.

    V=bench/experiments/2026-12-constraint-voters   # from the repository root
    python $V/bench_candidate_order.py [--requests elements:formation_energy,formula:band_gap]
    -> constraints_candidate_order.json (beside this script)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from bench_constraint_prior import requests_for

from xtalagent.data import load_records
from xtalagent.eval.benchmarks.paths import dataset_file
from xtalagent.eval.benchmarks.subsets import half
from xtalagent.eval.constraints import sample_records
from xtalagent.finetune.predictor import load_predictor
from xtalagent.finetune.requests import ConstraintRequest
from xtalagent.finetune.wyckoff_solver import feasible_groups

RESULTS = Path(__file__).resolve().parent  # results live beside the script and its README


def first_groups(predictor, req: ConstraintRequest, ctx, k: int = 5) -> tuple[int, int]:
    """(group of the best summed score, stage 1's first group) among the top ``k`` groups."""
    target = req.target()
    groups = predictor.rank_groups(ctx, feasible_groups(target), k, max_atoms=req.max_atoms)
    best_sum = max(
        ((g, score + predictor.rank_site_lists(ctx, target, g, k)[0][1]) for g, score in groups),
        key=lambda pair: pair[1],
    )
    return best_sum[0], groups[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None, help="default: datasets/mp_structures.parquet")
    parser.add_argument("--requests", default="elements:formation_energy,elements:band_gap,formula:band_gap")
    args = parser.parse_args()
    args.dataset = dataset_file(args.dataset)
    import torch

    torch.set_num_threads(1)
    predictor = load_predictor()
    records = [r for r in sample_records(load_records(args.dataset, "val"), 600, 0) if half(r.id) == "B"]
    out: dict = {"what": __doc__.splitlines()[0], "command": shlex.join(["python", *sys.argv]), "results": {}}
    start = time.perf_counter()
    for item in args.requests.split(","):
        pattern, prop = item.split(":")
        summed = stage_one = n = 0
        for record, req, ctx in requests_for(predictor, records, pattern, prop):
            by_sum, by_stage_one = first_groups(predictor, req, ctx)
            summed += by_sum == record.spacegroup
            stage_one += by_stage_one == record.spacegroup
            n += 1
        out["results"][f"{pattern}+{prop}"] = {
            "n_half_B": n,
            "first_candidate_right_by_summed_score": round(summed / max(1, n), 4),
            "first_candidate_right_by_stage_one_order": round(stage_one / max(1, n), 4),
        }
        print(item, json.dumps(out["results"][f"{pattern}+{prop}"]), flush=True)
    out["seconds"] = round(time.perf_counter() - start, 1)
    (RESULTS / "constraints_candidate_order.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
