"""Re-weigh the stage-1 voters of elements-only requests together with the ratio vote, on half A of MP `val`.

The prior's and the composition classifier's weights for elements-only requests were chosen
(bench_constraint_prior.py) before the ratio vote existed. This reads the per-request rows cached
by bench_ratio_vote.py (language model + prior + classifier as shipped, and the ratio rankings),
recomputes the prior's and the classifier's votes alone (cheap: no language model), and searches
a grid of (prior scale, classifier weight, ratio-vote weight, number of voting ratios) on half A,
pooled over the properties; space-group top-1 is reported on half B, which played no part in the
choice, and on the whole split. `test` is never read.

    V=bench/experiments/2026-12-constraint-voters   # from the repository root
    python $V/bench_ratio_vote.py ...   # fills runs/ratio-vote-cache-neighbours first
    python $V/bench_elements_weights.py -> constraints_elements_weights.json (beside this script)
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
from pathlib import Path

import numpy as np
from bench_ratio_vote import CANDIDATES, PROPERTIES, by_half, vote
from rich.progress import track

from xtalagent.data import load_records
from xtalagent.eval.benchmarks.paths import dataset_file
from xtalagent.eval.benchmarks.row_cache import cached_rows
from xtalagent.eval.constraints import request_for
from xtalagent.finetune.predictor import load_predictor
from xtalagent.finetune.requests import ConstraintRequest
from xtalagent.io import atomic_path

RESULTS = Path(__file__).resolve().parent  # results live beside the script and its README
PRIOR_SCALES = (0.0, 0.5, 1.0, 1.5, 2.0)
CLASSIFIER_WEIGHTS = (0.0, 0.75, 1.5, 2.25, 3.0, 4.5)
VOTE_WEIGHTS = (0.0, 1.0, 1.5, 2.0, 3.0, 4.0)


def add_parts(predictor, val, prop: str, rows: list[dict]) -> None:
    """Split each row's shipped score into language model, prior and classifier (weight 1)."""
    requests = [r for r in (request_for(record, "elements", prop) for record in val) if r is not None]
    if len(requests) != len(rows):
        raise SystemExit(f"{prop}: {len(requests)} requests but {len(rows)} cached rows (another dataset?)")
    shipped = predictor.weights.classifier_weight("elements")
    for request, row in track(list(zip(requests, rows)), description=f"parts, elements + {prop}"):
        ctx = predictor.context(ConstraintRequest.model_validate(request))
        groups = [int(g) for g in row["groups"]]
        args = (ctx.pattern, ctx.elements, ctx.counts, groups, ctx.band_gap, ctx.formation_energy)
        prior = predictor.prior.bonus(*args)
        classifier = predictor.classifier.bonus(*args, weight=1.0)
        row["prior"] = np.array([prior[g] for g in groups])
        row["classifier"] = np.array([classifier[g] for g in groups])
        row["lm"] = row["base"] - row["prior"] - shipped * row["classifier"]


def accuracy(rows: list[dict], setting: tuple) -> float:
    prior, classifier, weight, n = setting
    right = 0
    for r in rows:
        score = r["lm"] + prior * r["prior"] + classifier * r["classifier"] + weight * r["votes"][n]
        right += int(r["groups"][np.argmax(score)]) == r["truth"]
    return right / max(1, len(rows))


def missing_cache(cache: Path, prop: str):
    """The rows come from bench_ratio_vote.py's cache only: say so instead of recomputing them here."""

    def fail():
        raise SystemExit(f"{cache / (prop + '.json.gz')} not found: run bench_ratio_vote.py first (it fills the cache)")

    return fail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None, help="default: datasets/mp_structures.parquet")
    parser.add_argument("--cache", type=Path, default=Path("runs/ratio-vote-cache-neighbours"))
    args = parser.parse_args()
    args.dataset = dataset_file(args.dataset)
    import torch

    torch.set_num_threads(1)
    predictor = load_predictor()
    val = load_records(args.dataset, "val")
    rows = {prop: cached_rows(args.cache / f"{prop}.json.gz", missing_cache(args.cache, prop)) for prop in PROPERTIES}
    for prop, rs in rows.items():
        add_parts(predictor, val, prop, rs)
        for r in rs:
            r["votes"] = {n: vote(r, n) for n in CANDIDATES}
    shipped = (
        1.0,
        predictor.weights.classifier_weight("elements"),
        predictor.weights.ratio_weight,
        predictor.weights.ratio_candidates,
    )
    tune = [r for rs in rows.values() for r in rs if r["half"] == "A"]
    grid = list(itertools.product(PRIOR_SCALES, CLASSIFIER_WEIGHTS, VOTE_WEIGHTS, CANDIDATES))
    scores = {s: accuracy(tune, s) for s in track(grid, description="grid on half A")}
    # ties go to the shipped setting, then to smaller weights
    chosen = max(scores, key=lambda s: (round(scores[s], 6), s == shipped, -sum(s)))
    names = ("prior_scale", "classifier_weight", "ratio_weight", "ratio_candidates")
    out: dict = {
        "what": __doc__.splitlines()[0],
        "command": shlex.join(["python", *sys.argv]),
        "shipped": dict(zip(names, shipped)),
        "chosen_on_half_A": dict(zip(names, chosen)),
        "half_A_pooled": {"shipped": round(scores[shipped], 4), "chosen": round(scores[chosen], 4)},
        "properties": {},
    }
    for prop, rs in rows.items():
        report = {}
        for name, sel in by_half(rs):
            report[name] = {
                "n": len(sel),
                "top1_shipped": round(accuracy(sel, shipped), 4),
                "top1_chosen": round(accuracy(sel, chosen), 4),
            }
        out["properties"][prop] = report
        print(prop, json.dumps(report), flush=True)
    print("chosen", out["chosen_on_half_A"], "half A pooled", out["half_A_pooled"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    with atomic_path(RESULTS / "constraints_elements_weights.json") as tmp:
        tmp.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
