"""Choose the ratio classifier's stage-1 weight for elements-only requests on half A of MP `val`.

For every val crystal and property shown (band gap, formation energy, none), the elements-only
request is ranked by the shipped predictor twice over its feasible groups: without the ratio vote
(language model + neighbour prior + composition classifier, as shipped) and the vote itself
(``ConstraintPredictor.ratio_bonus`` at weight 1: the likeliest ratios ranked as ratio requests,
finetune/ratio_classifier.py). The weight (``config.CONSTRAINT_RATIO_WEIGHT``) is chosen on half A
(the halves of bench_constraint_prior.py, pooled over the properties) and space-group top-1 is
reported on half B, which played no part in the choice, and on the whole split. Beside it: how
often the ratio classifier's first (and first three) ratios are the crystal's. `test` is never read.

Per-request rows are cached in --cache (one file per property), so the properties can be computed
in parallel processes and reported together:

    python bench/bench_ratio_vote.py --properties none &
    python bench/bench_ratio_vote.py --properties band_gap,formation_energy; wait
    python bench/bench_ratio_vote.py   -> bench/results/constraints_ratio_vote.json
"""

from __future__ import annotations

import argparse
import json
import pickle
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from bench_constraint_prior import half
from rich.progress import track
from xtalagent import config
from xtalagent.data import load_records
from xtalagent.eval.constraints import request_for
from xtalagent.finetune.predictor import load_predictor
from xtalagent.finetune.ratio_classifier import ratio_key
from xtalagent.finetune.requests import ConstraintRequest
from xtalagent.finetune.wyckoff_solver import feasible_groups
from xtalagent.io import atomic_path

RESULTS = Path("bench/results")
PROPERTIES = ("band_gap", "formation_energy", "none")
WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def rows_for(predictor, val, prop: str) -> list[dict]:
    """Per request: truth, feasible groups, their scores without the ratio vote, the vote at weight 1,
    and whether the likeliest ratios include the crystal's."""
    ratios, predictor.ratios = predictor.ratios, None
    rows = []
    try:
        for record in track(val, description=f"elements + {prop}"):
            request = request_for(record, "elements", prop)
            if request is None:
                continue
            req = ConstraintRequest.model_validate(request)
            ctx = predictor.context(req)
            groups = feasible_groups(req.target())
            predictor.ratios = None
            ranked = dict(predictor.rank_groups(ctx, groups, len(groups), max_atoms=req.max_atoms))
            predictor.ratios = ratios
            vote = predictor.ratio_bonus(ctx, groups, req.max_atoms, weight=1.0)
            likely = ratios.ratios(ctx.elements, ctx.band_gap, ctx.formation_energy, req.max_atoms)
            truth_ratio = ratio_key(record.cell_counts)
            keys = [ratio_key(dict(zip(ctx.elements, counts))) for counts, _ in likely]
            rows.append(
                {
                    "half": half(record.id),
                    "truth": record.spacegroup,
                    "groups": np.array(groups),
                    "base": np.array([ranked[g] for g in groups]),
                    "vote": np.array([vote[g] for g in groups]),
                    "ratio_first": bool(keys) and keys[0] == truth_ratio,
                    "ratio_in_candidates": truth_ratio in keys,
                }
            )
    finally:
        predictor.ratios = ratios
    return rows


def accuracy(rows: list[dict], weight: float) -> float:
    right = sum(int(r["groups"][np.argmax(r["base"] + weight * r["vote"])]) == r["truth"] for r in rows)
    return right / max(1, len(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("datasets/mp_structures.parquet"))
    parser.add_argument("--properties", default=",".join(PROPERTIES))
    parser.add_argument("--cache", type=Path, default=Path("runs/ratio-vote-cache"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    predictor = load_predictor()
    if predictor.ratios is None:
        raise SystemExit("the embedded model has no ratio_classifier.pt")
    val = load_records(args.dataset, "val")
    props = [p for p in args.properties.split(",") if p]
    start = time.perf_counter()
    rows: dict[str, list[dict]] = {}
    for prop in props:
        path = args.cache / f"{prop}.pkl"
        if path.exists():
            rows[prop] = pickle.loads(path.read_bytes())
            continue
        rows[prop] = rows_for(predictor, val, prop)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(pickle.dumps(rows[prop]))
    tune = [r for rs in rows.values() for r in rs if r["half"] == "A"]
    chosen = max(WEIGHTS, key=lambda w: (accuracy(tune, w), -w))
    shipped = config.CONSTRAINT_RATIO_WEIGHT
    out: dict = {
        "what": __doc__.splitlines()[0],
        "command": shlex.join(["python", *sys.argv]),
        "ratio_candidates": config.CONSTRAINT_RATIO_CANDIDATES,
        "half_A_top1_by_weight": {str(w): round(accuracy(tune, w), 4) for w in WEIGHTS},
        "weight_chosen_on_half_A": chosen,
        "weight_shipped": shipped,
        "properties": {},
    }
    for prop, rs in rows.items():
        report = {}
        for name, part in (("half_A", "A"), ("half_B", "B"), ("whole", None)):
            sel = [r for r in rs if part is None or r["half"] == part]
            report[name] = {
                "n": len(sel),
                "top1_without_ratio_vote": round(accuracy(sel, 0.0), 4),
                "top1_with_chosen_weight": round(accuracy(sel, chosen), 4),
                "top1_with_shipped_weight": round(accuracy(sel, shipped), 4),
                "ratio_top1": round(float(np.mean([r["ratio_first"] for r in sel])), 4),
                f"ratio_in_top{config.CONSTRAINT_RATIO_CANDIDATES}": round(
                    float(np.mean([r["ratio_in_candidates"] for r in sel])), 4
                ),
            }
        out["properties"][prop] = report
        print(prop, json.dumps(report), flush=True)
    out["seconds"] = round(time.perf_counter() - start, 1)
    if set(rows) == set(PROPERTIES):
        RESULTS.mkdir(parents=True, exist_ok=True)
        with atomic_path(RESULTS / "constraints_ratio_vote.json") as tmp:
            tmp.write_text(json.dumps(out, indent=2) + "\n")
        print(f"chosen weight {chosen} (shipped {shipped}) -> {RESULTS / 'constraints_ratio_vote.json'}")


if __name__ == "__main__":
    main()
