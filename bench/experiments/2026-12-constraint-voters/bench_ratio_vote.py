"""Choose the ratio classifier's stage-1 vote for elements-only requests on half A of MP `val`.

For every val crystal and property shown (band gap, formation energy, none), the elements-only
request is ranked by the shipped predictor over its feasible groups without the ratio vote
(language model + prior + composition classifier, as shipped), and each of the 8 likeliest ratios
(``ConstraintPredictor.likely_ratios``: the ratio classifier of finetune/ratio_classifier.py,
re-weighed by the prior's ``ratios`` part) is ranked as a ratio request
(``ConstraintPredictor.ratio_shares``). The number of ratios that vote
(``ratio_candidates`` in the model folder's voters.json) and the vote's weight (``ratio_weight``)
are chosen together on half A (the halves of bench_constraint_prior.py, pooled over the
properties); space-group top-1 is reported on half B, which played no part in the choice, and on
the whole split. Beside it: how often the first (and first N) ratios are the crystal's. `test` is never read.

Per-request rows are cached in --cache (one file per property), so the properties can be computed
in parallel processes and reported together:

    V=bench/experiments/2026-12-constraint-voters   # from the repository root
    python $V/bench_ratio_vote.py --properties none &
    python $V/bench_ratio_vote.py --properties band_gap,formation_energy; wait
    python $V/bench_ratio_vote.py   -> constraints_ratio_vote.json (beside this script)
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rich.progress import track

from xtalagent.data import load_records
from xtalagent.eval.benchmarks.paths import dataset_file
from xtalagent.eval.benchmarks.row_cache import cached_rows
from xtalagent.eval.benchmarks.subsets import half
from xtalagent.eval.constraints import request_for
from xtalagent.finetune.predictor import default_model_dir, load_predictor, ratio_vote
from xtalagent.finetune.ratio_classifier import ratio_key
from xtalagent.finetune.requests import ConstraintRequest
from xtalagent.finetune.voters import VoterWeights
from xtalagent.finetune.wyckoff_solver import RatioCounts, feasible_groups
from xtalagent.io import atomic_path

RESULTS = Path(__file__).resolve().parent  # results live beside the script and its README
PROPERTIES = ("band_gap", "formation_energy", "none")
WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
CANDIDATES = (1, 2, 3, 5, 8)


def rows_for(predictor, val, prop: str) -> list[dict]:
    """Per request: truth, feasible groups, their scores without the ratio vote, and the likeliest
    ratios' probabilities, softmax shares over the groups and whether each is the crystal's."""
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
            shares = predictor.ratio_shares(ctx, groups, req.max_atoms, k=max(CANDIDATES))
            likely = predictor.likely_ratios(ctx, req.max_atoms, k=max(CANDIDATES))
            truth_ratio = ratio_key(record.cell_counts)
            rows.append(
                {
                    "half": half(record.id),
                    "truth": record.spacegroup,
                    "groups": np.array(groups),
                    "base": np.array([ranked[g] for g in groups]),
                    "probs": np.array([p for p, _ in shares]),
                    "shares": np.array([[share.get(g, 0.0) for g in groups] for _, share in shares]),
                    "hosted": [
                        i
                        for i, (counts, _) in enumerate(likely)
                        if any(RatioCounts(ctx.elements, counts, req.max_atoms).feasible(g) for g in groups)
                    ],
                    "ratio_rank": next(
                        (
                            i
                            for i, (counts, _) in enumerate(likely)
                            if ratio_key(dict(zip(ctx.elements, counts))) == truth_ratio
                        ),
                        None,
                    ),
                }
            )
    finally:
        predictor.ratios = ratios
    return rows


def vote(row: dict, candidates: int) -> np.ndarray:
    """The ratio vote at weight 1 from the first ``candidates`` likeliest ratios (the predictor's own
    ``ratio_vote`` on the cached shares)."""
    groups = [int(g) for g in row["groups"]]
    used = sum(1 for i in row["hosted"] if i < candidates)
    shares = [(float(p), dict(zip(groups, s))) for p, s in zip(row["probs"][:used], row["shares"][:used])]
    return np.array(list(ratio_vote(shares, groups, 1.0, shipped_floor()).values()))


@functools.cache
def shipped_floor() -> float:
    """The shipped model's ratio-vote floor (its voters.json)."""
    return VoterWeights.load(default_model_dir()).ratio_floor


def by_half(rows: list[dict]) -> Iterator[tuple[str, list[dict]]]:
    """The rows of half A, of half B (the held-out half) and of the whole split, named."""
    for name, part in (("half_A", "A"), ("half_B", "B"), ("whole", None)):
        yield name, [r for r in rows if part is None or r["half"] == part]


def accuracy(rows: list[dict], weight: float, candidates: int) -> float:
    right = sum(int(r["groups"][np.argmax(r["base"] + weight * vote(r, candidates))]) == r["truth"] for r in rows)
    return right / max(1, len(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None, help="default: datasets/mp_structures.parquet")
    parser.add_argument("--properties", default=",".join(PROPERTIES))
    parser.add_argument("--cache", type=Path, default=Path("runs/ratio-vote-cache-neighbours"))
    args = parser.parse_args()
    args.dataset = dataset_file(args.dataset)
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
        rows[prop] = cached_rows(args.cache / f"{prop}.json.gz", functools.partial(rows_for, predictor, val, prop))
    tune = [r for rs in rows.values() for r in rs if r["half"] == "A"]
    grid = {(n, w): accuracy(tune, w, n) for n in CANDIDATES for w in WEIGHTS}
    chosen_n, chosen = max(grid, key=lambda nw: (grid[nw], -nw[0], -nw[1]))
    shipped_n, shipped = predictor.weights.ratio_candidates, predictor.weights.ratio_weight
    out: dict = {
        "what": __doc__.splitlines()[0],
        "command": shlex.join(["python", *sys.argv]),
        "half_A_top1_by_candidates_and_weight": {f"{n} x {w}": round(a, 4) for (n, w), a in grid.items()},
        "chosen_on_half_A": {"candidates": chosen_n, "weight": chosen},
        "shipped": {"candidates": shipped_n, "weight": shipped},
        "properties": {},
    }
    for prop, rs in rows.items():
        report = {}
        for name, sel in by_half(rs):
            report[name] = {
                "n": len(sel),
                "top1_without_ratio_vote": round(accuracy(sel, 0.0, 0), 4),
                "top1_chosen": round(accuracy(sel, chosen, chosen_n), 4),
                "top1_shipped": round(accuracy(sel, shipped, shipped_n), 4),
                **{
                    f"ratio_in_top{n}": round(
                        float(np.mean([r["ratio_rank"] is not None and r["ratio_rank"] < n for r in sel])), 4
                    )
                    for n in CANDIDATES
                },
            }
        out["properties"][prop] = report
        print(prop, json.dumps(report), flush=True)
    out["seconds"] = round(time.perf_counter() - start, 1)
    if set(rows) == set(PROPERTIES):
        RESULTS.mkdir(parents=True, exist_ok=True)
        with atomic_path(RESULTS / "constraints_ratio_vote.json") as tmp:
            tmp.write_text(json.dumps(out, indent=2) + "\n")
        print(
            f"chosen {chosen_n} ratios x weight {chosen} (shipped {shipped_n} x {shipped})"
            f" -> {RESULTS / 'constraints_ratio_vote.json'}"
        )


if __name__ == "__main__":
    main()
