"""Choose the neighbour prior's settings (both stages) on one half of MP `val`, report the other half.

The language model's stage-1 log-probabilities over every feasible group are computed once per
request, and so are the nearest known crystals of both parts of the prior
(finetune/neighbour_prior.py). Val crystals are split in two halves by a hash of their id: the
settings are chosen on half A (pooled over the properties of a pattern; coordinate ascent over a
grid, two sweeps from config.CONSTRAINT_PRIOR) and the space-group top-1 accuracy is reported on
half B, which played no part in the choice. Beside it on half B: the language model alone, the
shipped settings, and two baselines: the nearest composition, and the nearest prototype (same
anonymous formula, closest Pettifor numbers; the nearest composition where none is known).
`test` is never read.

    python bench/bench_constraint_prior.py [--model DIR] [--subset N]
    -> bench/results/constraints_prior.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
from xtalagent import config
from xtalagent.data import load_records
from xtalagent.eval.constraints import request_for, sample_records
from xtalagent.finetune.decoding import rank_sites, rank_spacegroups, score_states, state_from_sites
from xtalagent.finetune.neighbour_prior import NeighbourPrior, PriorPart, PriorSettings, neighbour_shares
from xtalagent.finetune.predictor import load_predictor
from xtalagent.finetune.requests import ConstraintRequest
from xtalagent.finetune.wyckoff_solver import feasible_groups, site_labels

RESULTS = Path("bench/results")
REQUESTS = {
    "formula": ("band_gap", "formation_energy", "none"),
    "composition": ("formation_energy", "none"),
    "elements": ("formation_energy", "none"),
}
GRID = {
    "elements": {
        "weight": (0.0, 0.25, 0.5, 1.0, 1.5),
        "k": (5, 10, 20, 40),
        "scale": (0.05, 0.2, 1.0),
        "floor": (0.01, 0.05, 0.2),
    },
    "prototype": {
        "weight": (0.0, 0.5, 1.0, 1.5, 2.5, 4.0, 6.0, 10.0),
        "k": (3, 5, 10, 20, 40),
        "scale": (0.5, 2.0, 5.0, 20.0),
        "floor": (0.003, 0.01, 0.05, 0.2),
    },
}
SITES_GRID = {
    "weight": (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0),
    "k": (1, 3, 5, 10, 20),
    "scale": (0.5, 2.0, 5.0, 20.0),
    "floor": (0.003, 0.01, 0.05, 0.2),
}
K_MAX = 40


def half(record_id: str) -> str:
    return "A" if zlib.crc32(str(record_id).encode()) % 2 == 0 else "B"


def lm_rows(predictor, prior: NeighbourPrior, records, pattern: str, prop: str) -> list[dict]:
    """Per request: truth, LM scores per feasible group, and both parts' nearest known crystals."""
    rows = []
    for record in records:
        request = request_for(record, pattern, prop)
        if request is None:
            continue
        req = ConstraintRequest.model_validate(request)
        ctx = predictor.context(req)
        groups = feasible_groups(req.target())
        ranked = rank_spacegroups(predictor.scorer, ctx, groups, len(groups))
        near = prior.nearest_elements(ctx.pattern, ctx.elements, ctx.counts, K_MAX)
        proto = prior.nearest_prototypes(ctx.pattern, ctx.elements, ctx.counts, K_MAX)
        rows.append(
            {
                "half": half(record.id),
                "truth": record.spacegroup,
                "groups": np.array([g for g, _ in ranked]),
                "scores": np.array([s for _, s in ranked]),
                "elements": (near[0].tolist(), near[1].tolist()),
                "prototype": (proto[0].tolist(), proto[1].tolist()),
            }
        )
    return rows


def top1(row: dict, settings: PriorSettings | None) -> int:
    scores = row["scores"].copy()
    if settings is not None:
        index = {g: i for i, g in enumerate(row["groups"].tolist())}
        for name in ("elements", "prototype"):
            part: PriorPart = getattr(settings, name)
            found, distance = row[name]
            if part.weight == 0 or not found:
                continue
            for g, w in neighbour_shares(found[: part.k], distance[: part.k], part).items():
                if g in index:  # every other group gets weight * log(floor), which does not change the order
                    scores[index[g]] += part.weight * (math.log(w + part.floor) - math.log(part.floor))
    return int(row["groups"][int(np.argmax(scores))])


def accuracy(rows: list[dict], settings: PriorSettings | None) -> float:
    return sum(top1(r, settings) == r["truth"] for r in rows) / max(1, len(rows))


def choose(rows: list[dict], start: PriorSettings, sweeps: int = 2) -> PriorSettings:
    """Coordinate ascent over GRID: one parameter at a time, keep the best value, repeat."""
    best, best_acc = start, accuracy(rows, start)
    for _ in range(sweeps):
        for name, grid in GRID.items():
            for field, values in grid.items():
                for value in values:
                    part = dataclasses.replace(getattr(best, name), **{field: value})
                    trial = dataclasses.replace(best, **{name: part})
                    acc = accuracy(rows, trial)
                    if acc > best_acc:
                        best, best_acc = trial, acc
    return best


def baseline(rows: list[dict], name: str) -> float:
    def guess(r: dict) -> int:
        found = r[name][0] or r["elements"][0]
        return found[0]

    return sum(guess(r) == r["truth"] for r in rows) / max(1, len(rows))


def site_rows(predictor, prior: NeighbourPrior, records, pattern: str) -> list[dict]:
    """Stage 2 given the true group: the LM's 5 best site lists plus every fitting same-prototype list."""
    rows = []
    for record in records:
        req = ConstraintRequest.model_validate(request_for(record, pattern, "none"))
        target, ctx, group = req.target(), predictor.context(req), record.spacegroup
        if not target.feasible(group):
            continue
        found = prior.site_neighbours(ctx.pattern, ctx.elements, ctx.counts, group, K_MAX)
        states = {state.sites: (state, score) for state, score in rank_sites(predictor.scorer, ctx, target, group, 5)}
        extra = []
        for sites, _ in found:
            state = state_from_sites(group, list(sites), ctx.elements)
            if state is not None and all(state.so_far) and target.can_end(group, state) and state.sites not in states:
                states[state.sites] = (state, None)
                extra.append(state)
        for state, score in zip(extra, score_states(predictor.scorer, ctx, group, extra) if extra else []):
            states[state.sites] = (state, score)
        truth = Counter((s.element, s.wyckoff) for s in record.sites)
        candidates = [(tuple(sorted(site_labels(group, st, ctx.elements))), sc) for st, sc in states.values()]
        rows.append({"half": half(record.id), "truth": truth, "candidates": candidates, "neighbours": found})
    return rows


def site_top1_right(row: dict, part: PriorPart | None) -> bool:
    share: dict = {}
    if part is not None and part.weight > 0 and row["neighbours"]:
        share = neighbour_shares(*zip(*row["neighbours"][: part.k]), part)

    def score(candidate) -> float:
        sites, lm = candidate
        return lm + (part.weight * math.log(share.get(sites, 0.0) + part.floor) if share else 0.0)

    best = max(row["candidates"], key=score)[0]
    return Counter(best) == row["truth"]


def site_accuracy(rows: list[dict], part: PriorPart | None) -> float:
    return sum(site_top1_right(r, part) for r in rows) / max(1, len(rows))


def choose_sites(rows: list[dict], start: PriorPart, sweeps: int = 2) -> PriorPart:
    best, best_acc = start, site_accuracy(rows, start)
    for _ in range(sweeps):
        for field, values in SITES_GRID.items():
            for value in values:
                trial = dataclasses.replace(best, **{field: value})
                acc = site_accuracy(rows, trial)
                if acc > best_acc:
                    best, best_acc = trial, acc
    return best


def stage_two(predictor, prior, val, subset: int, patterns: list[str]) -> dict:
    """Wyckoff sites given the true group: chosen on half A, read on half B."""
    report = {}
    for pattern in patterns:
        rows = site_rows(predictor, prior, sample_records(val, subset, 1), pattern)
        tune = [r for r in rows if r["half"] == "A"]
        held = [r for r in rows if r["half"] == "B"]
        shipped = PriorSettings.from_dict(config.CONSTRAINT_PRIOR[pattern]).sites
        best = choose_sites(tune, shipped)
        report[pattern] = {
            "chosen_on_half_A": vars(best),
            "n_half_B": len(held),
            "lm_only_wyckoff_top1": round(site_accuracy(held, None), 4),
            "with_chosen_prior_wyckoff_top1": round(site_accuracy(held, best), 4),
            "with_shipped_prior_wyckoff_top1": round(site_accuracy(held, shipped), 4),
            "nearest_prototype_sites_top1": round(
                sum(bool(r["neighbours"]) and Counter(r["neighbours"][0][0]) == r["truth"] for r in held)
                / max(1, len(held)),
                4,
            ),
        }
        print("sites", pattern, json.dumps(report[pattern]), flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("datasets/mp_structures.parquet"))
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--subset", type=int, default=600, help="val crystals for composition/elements requests")
    parser.add_argument("--formula-subset", type=int, default=None, help="val crystals for formula requests (all)")
    parser.add_argument("--sites-subset", type=int, default=800, help="val crystals for the stage-2 part")
    parser.add_argument("--sites-only", action="store_true", help="only the stage-2 part")
    parser.add_argument("--patterns", default="formula,composition,elements", help="stage-1 request patterns")
    parser.add_argument("--sites-patterns", default="formula,composition,elements", help="'' skips stage 2")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    predictor = load_predictor(args.model, use_prior=False)
    prior = NeighbourPrior.from_records(load_records(args.dataset, "train"))
    val = load_records(args.dataset, "val")
    out: dict = {
        "what": __doc__.splitlines()[0],
        "command": "python bench/bench_constraint_prior.py" + (f" --model {args.model}" if args.model else ""),
        "model": str(args.model or "embedded default"),
        "patterns": {},
    }
    start = time.perf_counter()
    site_patterns = [p for p in args.sites_patterns.split(",") if p]
    if site_patterns:
        out["wyckoff_given_true_group"] = stage_two(predictor, prior, val, args.sites_subset, site_patterns)
    if args.sites_only:
        out["seconds"] = round(time.perf_counter() - start, 1)
        (RESULTS / f"constraints_prior_sites{args.tag}.json").write_text(json.dumps(out, indent=2) + "\n")
        return
    for pattern in args.patterns.split(","):
        props = REQUESTS[pattern]
        records = sample_records(val, args.formula_subset if pattern == "formula" else args.subset, 0)
        rows = {prop: lm_rows(predictor, prior, records, pattern, prop) for prop in props}
        tune = [r for rs in rows.values() for r in rs if r["half"] == "A"]
        shipped = PriorSettings.from_dict(config.CONSTRAINT_PRIOR[pattern])
        best = choose(tune, shipped)
        report: dict = {"chosen_on_half_A": best.as_dict(), "half_A_top1_with_chosen": round(accuracy(tune, best), 4)}
        for prop, rs in rows.items():
            held = [r for r in rs if r["half"] == "B"]
            report[prop] = {
                "n_half_B": len(held),
                "lm_only_top1": round(accuracy(held, None), 4),
                "with_chosen_prior_top1": round(accuracy(held, best), 4),
                "with_shipped_prior_top1": round(accuracy(held, shipped), 4),
                "nearest_composition_top1": round(baseline(held, "elements"), 4),
                "nearest_prototype_top1": round(baseline(held, "prototype"), 4),
            }
        out["patterns"][pattern] = report
        print(pattern, json.dumps(report), flush=True)
    out["seconds"] = round(time.perf_counter() - start, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"constraints_prior{args.tag}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
