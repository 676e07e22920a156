"""Choose the stage-1 voters' settings (prior, classifier) and the prior's stage 2 on half of MP `val`.

The language model's stage-1 log-probabilities over every feasible group are computed once per
request, and so is the pool of nearest known crystals of both parts of the prior
(finetune/neighbour_prior.py); every setting is then scored with the prior's own code
(``NeighbourPrior.part_bonus``: the distance to the requested properties, the k closest, their
shares). Val crystals are split in two halves by a hash of their id: the settings are chosen on
half A (pooled over the properties of a pattern; coordinate ascent over a grid, two sweeps from
the model folder's voters.json) and the space-group top-1 accuracy is reported on half B, which played no
part in the choice. The composition classifier's weight (finetune/group_classifier.py;
voters.json) is chosen in the same ascent. Beside it on half B: the
language model alone, the classifier alone, the shipped settings, and two
baselines: the nearest composition, and the nearest prototype (same anonymous formula, closest
Pettifor numbers; the nearest composition where none is known).
`test` is never read.

    V=bench/experiments/2026-12-constraint-voters   # from the repository root
    python $V/bench_constraint_prior.py [--model DIR] [--subset N] [--cache runs/prior-cache]
    -> constraints_prior.json (beside this script)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import shlex
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from xtalagent.data import load_records
from xtalagent.eval.benchmarks.paths import dataset_file
from xtalagent.eval.benchmarks.row_cache import cached_rows
from xtalagent.eval.benchmarks.subsets import half
from xtalagent.eval.constraints import request_for, sample_records
from xtalagent.finetune.decoding import fitting_state, rank_sites, rank_spacegroups, score_states
from xtalagent.finetune.group_classifier import GroupClassifier, load_classifier
from xtalagent.finetune.neighbour_prior import SILENT, NeighbourPrior, PriorPart, PriorSettings, neighbour_shares
from xtalagent.finetune.predictor import default_model_dir, load_predictor
from xtalagent.finetune.requests import ConstraintRequest
from xtalagent.finetune.voters import VoterWeights
from xtalagent.finetune.wyckoff_solver import feasible_groups, site_labels

RESULTS = Path(__file__).resolve().parent  # results live beside the script and its README
REQUESTS = {
    "formula": ("band_gap", "formation_energy", "none"),
    "composition": ("band_gap", "formation_energy", "none"),
    "elements": ("band_gap", "formation_energy", "none"),
}
GRID = {
    "elements": {
        "weight": (0.0, 0.25, 0.5, 1.0, 1.5),
        "k": (5, 10, 20, 40),
        "scale": (0.05, 0.2, 1.0),
        "floor": (0.01, 0.05, 0.2),
        "band_gap_weight": (0.0, 0.03, 0.1, 0.3, 1.0, 3.0),
        "formation_energy_weight": (0.0, 0.1, 0.3, 1.0, 3.0, 10.0),
    },
    "prototype": {
        "weight": (0.0, 0.5, 1.0, 1.5, 2.5, 4.0, 6.0, 10.0),
        "k": (3, 5, 10, 20, 40),
        "scale": (0.5, 2.0, 5.0, 20.0),
        "floor": (0.003, 0.01, 0.05, 0.2),
        "band_gap_weight": (0.0, 1.0, 3.0, 10.0, 30.0, 100.0),
        "formation_energy_weight": (0.0, 3.0, 10.0, 30.0, 100.0, 300.0),
    },
}
#: Prototype part: weight of the data-mined substitution distance beside the Pettifor distance.
SUBSTITUTION_GRID = (0.0, 1.0, 3.0, 10.0, 30.0)
#: Weight of the composition classifier's log-probability.
CLASSIFIER_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
SITES_GRID = {
    "weight": (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0),
    "k": (1, 3, 5, 10, 20),
    "scale": (0.5, 2.0, 5.0, 20.0),
    "floor": (0.003, 0.01, 0.05, 0.2),
    "band_gap_weight": (0.0, 1.0, 3.0, 10.0, 30.0, 100.0),
    "formation_energy_weight": (0.0, 3.0, 10.0, 30.0, 100.0, 300.0),
}


def requests_for(predictor, records, pattern: str, prop: str) -> Iterator[tuple]:
    """(record, request, prompt context) for every record that has the property, in order."""
    for record in records:
        request = request_for(record, pattern, prop)
        if request is not None:
            req = ConstraintRequest.model_validate(request)
            yield record, req, predictor.context(req)


def lm_rows(predictor, prior: NeighbourPrior, records, pattern: str, prop: str) -> list[dict]:
    """Per request: truth, LM scores per feasible group, and both parts' pools of nearest known crystals."""
    rows = []
    for record, req, ctx in requests_for(predictor, records, pattern, prop):
        groups = feasible_groups(req.target())
        ranked = rank_spacegroups(predictor.scorer, ctx, groups, len(groups))
        rows.append(
            {
                "half": half(record.id),
                "truth": record.spacegroup,
                "groups": np.array([g for g, _ in ranked]),
                "scores": np.array([s for _, s in ranked]),
                "properties": (ctx.band_gap, ctx.formation_energy),
                "request": (ctx.pattern, ctx.elements, ctx.counts),
                "elements": prior.pool("elements", ctx.pattern, ctx.elements, ctx.counts),
            }
        )
    return rows


def attach_requests(predictor, rows: list[dict], records, pattern: str, prop: str) -> list[dict]:
    """Caches written before rows kept their request: rebuild it (rows follow the records that
    have the property, in order)."""
    if not rows or "request" in rows[0]:
        return rows
    contexts = [ctx for _, _, ctx in requests_for(predictor, records, pattern, prop)]
    assert len(contexts) == len(rows), "cache does not match these records"
    for row, ctx in zip(rows, contexts):
        row["request"] = (ctx.pattern, ctx.elements, ctx.counts)
    return rows


def prototype_pool(prior: NeighbourPrior, row: dict, substitution_weight: float):
    """The prototype part's pool for this chemical distance, computed once per weight."""
    pools = row.setdefault("prototype_pools", {})
    if substitution_weight not in pools:
        pools[substitution_weight] = prior.pool("prototype", *row["request"], substitution_weight=substitution_weight)
    return pools[substitution_weight]


def classifier_scores(classifier: GroupClassifier | None, row: dict) -> np.ndarray:
    """The classifier's log-probability of each of the row's groups (zeros without a classifier)."""
    if "classifier" not in row:
        logp = classifier.log_probs(*row["request"], *row["properties"]) if classifier else None
        row["classifier"] = np.zeros(len(row["groups"])) if logp is None else logp[row["groups"] - 1]
    return row["classifier"]


def top1(prior: NeighbourPrior, row: dict, settings: PriorSettings | None, classifier_weight: float = 0.0) -> int:
    scores = row["scores"] + classifier_weight * row["classifier"] if classifier_weight else row["scores"].copy()
    if settings is not None:
        groups = row["groups"].tolist()
        for name in ("elements", "prototype"):
            part = getattr(settings, name)
            pool = row["elements"] if name == "elements" else prototype_pool(prior, row, part.substitution_weight)
            bonus = prior.part_bonus(pool, part, groups, *row["properties"])
            scores += np.array([bonus[g] for g in groups])
    return int(row["groups"][int(np.argmax(scores))])


def accuracy(prior: NeighbourPrior, rows: list[dict], settings: PriorSettings | None, classifier_weight=0.0) -> float:
    return sum(top1(prior, r, settings, classifier_weight) == r["truth"] for r in rows) / max(1, len(rows))


def choose(
    prior: NeighbourPrior, rows: list[dict], start: PriorSettings, start_weight: float, sweeps: int = 2
) -> tuple[PriorSettings, float]:
    """Coordinate ascent over GRID and the classifier weight (one parameter at a time, keep the best
    value, repeat) for each substitution weight of the prototype part; the best of those."""
    best, best_acc = (start, start_weight), accuracy(prior, rows, start, start_weight)
    for weight in SUBSTITUTION_GRID:
        trial_best = dataclasses.replace(
            start, prototype=dataclasses.replace(start.prototype, substitution_weight=weight)
        )
        trial_weight = start_weight
        trial_acc = accuracy(prior, rows, trial_best, trial_weight)
        for _ in range(sweeps):
            for value in CLASSIFIER_GRID:
                acc = accuracy(prior, rows, trial_best, value)
                if acc > trial_acc:
                    trial_weight, trial_acc = value, acc
            for name, grid in GRID.items():
                for field, values in grid.items():
                    for value in values:
                        part = dataclasses.replace(getattr(trial_best, name), **{field: value})
                        trial = dataclasses.replace(trial_best, **{name: part})
                        acc = accuracy(prior, rows, trial, trial_weight)
                        if acc > trial_acc:
                            trial_best, trial_acc = trial, acc
        print(f"  substitution weight {weight}: half A {trial_acc:.4f}", flush=True)
        if trial_acc > best_acc:
            best, best_acc = (trial_best, trial_weight), trial_acc
    return best


def choose_weight(prior: NeighbourPrior, rows: list[dict], settings: PriorSettings) -> float:
    """The classifier weight (CLASSIFIER_GRID) best on ``rows`` with the prior's settings fixed; the
    smallest of equals."""
    return max(CLASSIFIER_GRID, key=lambda w: (accuracy(prior, rows, settings, w), -w))


def baseline(prior: NeighbourPrior, rows: list[dict], name: str, substitution_weight: float = 0.0) -> float:
    def guess(r: dict) -> int:
        pool = r["elements"] if name == "elements" else prototype_pool(prior, r, substitution_weight)
        index = pool[0] if len(pool[0]) else r["elements"][0]
        return int(prior.groups[index[0]])

    return sum(guess(r) == r["truth"] for r in rows) / max(1, len(rows))


def site_rows(predictor, prior: NeighbourPrior, records, pattern: str, prop: str) -> list[dict]:
    """Stage 2 given the true group: the LM's 5 best site lists (its beam) plus every fitting list of
    the same-prototype crystals in the group's pool, all scored by the LM."""
    rows = []
    for record, req, ctx in requests_for(predictor, records, pattern, prop):
        target, group = req.target(), record.spacegroup
        if not target.feasible(group):
            continue
        pool = prior.pool("prototype", ctx.pattern, ctx.elements, ctx.counts, group)
        sites_of = [prior.sites_on(ctx.pattern, ctx.elements, ctx.counts, i) for i in pool[0].tolist()]
        states = {state.sites: (state, score) for state, score in rank_sites(predictor.scorer, ctx, target, group, 5)}
        beam = [tuple(sorted(site_labels(group, st, ctx.elements))) for st, _ in states.values()]
        extra = []
        for sites in dict.fromkeys(sites_of):
            state = fitting_state(target, group, sites, ctx.elements)
            if state is not None and state.sites not in states:
                states[state.sites] = (state, None)
                extra.append(state)
        for state, score in zip(extra, score_states(predictor.scorer, ctx, group, extra) if extra else []):
            states[state.sites] = (state, score)
        truth = Counter((s.element, s.wyckoff) for s in record.sites)
        candidates = [(tuple(sorted(site_labels(group, st, ctx.elements))), sc) for st, sc in states.values()]
        rows.append(
            {
                "half": half(record.id),
                "truth": truth,
                "candidates": candidates,
                "beam": set(beam),
                "pool": pool,
                "sites_of": dict(zip(pool[0].tolist(), sites_of)),
                "properties": (ctx.band_gap, ctx.formation_energy),
            }
        )
    return rows


def site_neighbours(prior: NeighbourPrior, row: dict, part: PriorPart) -> list[tuple[tuple, float]]:
    """What ``NeighbourPrior.site_neighbours`` gives for this row's request, from its cached pool: the
    k closest crystals among those whose site list fits the request (the candidates hold every
    fitting list of the pool)."""
    fitting = {sites for sites, _ in row["candidates"]}
    index, distance = row["pool"]
    keep = np.array([row["sites_of"][i] in fitting for i in index.tolist()], dtype=bool)
    return prior.closest_sites((index[keep], distance[keep], row["sites_of"]), part, *row["properties"])


def site_top1_right(prior: NeighbourPrior, row: dict, part: PriorPart | None) -> bool:
    """Whether the list the predictor would rank first is the true one. As in
    ``ConstraintPredictor.rank_site_lists``, the choice is among the LM's beam and the lists of the
    ``k`` proposals only, scored by LM log-probability plus the sites prior."""
    found = site_neighbours(prior, row, part) if part is not None and part.weight > 0 else []
    share = neighbour_shares(*zip(*found), part) if found else {}
    offered = row["beam"] | set(share)

    def score(candidate) -> float:
        sites, lm = candidate
        return lm + (part.weight * math.log(share.get(sites, 0.0) + part.floor) if share else 0.0)

    best = max((c for c in row["candidates"] if c[0] in offered), key=score)[0]
    return Counter(best) == row["truth"]


def site_accuracy(prior: NeighbourPrior, rows: list[dict], part: PriorPart | None) -> float:
    return sum(site_top1_right(prior, r, part) for r in rows) / max(1, len(rows))


def choose_sites(prior: NeighbourPrior, rows: list[dict], start: PriorPart, sweeps: int = 2) -> PriorPart:
    best, best_acc = start, site_accuracy(prior, rows, start)
    for _ in range(sweeps):
        for field, values in SITES_GRID.items():
            for value in values:
                trial = dataclasses.replace(best, **{field: value})
                acc = site_accuracy(prior, rows, trial)
                if acc > best_acc:
                    best, best_acc = trial, acc
    return best


def stage_two(predictor, prior, val, subset: int, patterns: list[str], cache: Path | None) -> dict:
    """Wyckoff sites given the true group: chosen on half A (pooled over the properties), read on half B."""
    report = {}
    records = sample_records(val, subset, 1)
    for pattern in patterns:
        rows = {
            prop: cached_rows(
                cache and cache / f"sites_{pattern}_{prop}_{subset}.json.gz",
                functools.partial(site_rows, predictor, prior, records, pattern, prop),
            )
            for prop in REQUESTS[pattern]
        }
        tune = [r for rs in rows.values() for r in rs if r["half"] == "A"]
        shipped = prior.settings[pattern].sites
        best = choose_sites(prior, tune, shipped)
        report[pattern] = {"chosen_on_half_A": vars(best)}
        for prop, rs in rows.items():
            held = [r for r in rs if r["half"] == "B"]
            nearest = [site_neighbours(prior, r, dataclasses.replace(SILENT, k=1)) for r in held]
            report[pattern][prop] = {
                "n_half_B": len(held),
                "lm_only_wyckoff_top1": round(site_accuracy(prior, held, None), 4),
                "with_chosen_prior_wyckoff_top1": round(site_accuracy(prior, held, best), 4),
                "with_shipped_prior_wyckoff_top1": round(site_accuracy(prior, held, shipped), 4),
                "nearest_prototype_sites_top1": round(
                    sum(bool(n) and Counter(n[0][0]) == r["truth"] for n, r in zip(nearest, held)) / max(1, len(held)),
                    4,
                ),
            }
        print("sites", pattern, json.dumps(report[pattern]), flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None, help="default: datasets/mp_structures.parquet")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument(
        "--classifier",
        type=Path,
        default=None,
        help="folder of the group_classifier.pt to weigh (default: the model's)",
    )
    parser.add_argument("--subset", type=int, default=600, help="val crystals for composition/elements requests")
    parser.add_argument("--formula-subset", type=int, default=None, help="val crystals for formula requests (all)")
    parser.add_argument("--sites-subset", type=int, default=800, help="val crystals for the stage-2 part")
    parser.add_argument("--sites-only", action="store_true", help="only the stage-2 part")
    parser.add_argument("--patterns", default="formula,composition,elements", help="stage-1 request patterns")
    parser.add_argument("--sites-patterns", default="formula,composition,elements", help="'' skips stage 2")
    parser.add_argument("--cache", type=Path, default=None, help="keep the LM scores here (re-tuning is then fast)")
    parser.add_argument(
        "--weight-only", action="store_true", help="keep the shipped prior; choose only the classifier weight"
    )
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    args.dataset = dataset_file(args.dataset)
    import torch

    torch.set_num_threads(1)
    predictor = load_predictor(args.model, use_prior=False)
    prior = NeighbourPrior.from_records(load_records(args.dataset, "train"))
    weights = VoterWeights.load(args.model or default_model_dir())  # the folder's shipped weights: the start
    prior.settings = weights.prior_settings()
    classifier = load_classifier(args.classifier or args.model or default_model_dir())
    if args.cache and args.model:  # cached language-model scores belong to one model (the default: the top folder)
        args.cache = args.cache / args.model.name
    val = load_records(args.dataset, "val")
    out: dict = {
        "what": __doc__.splitlines()[0],
        "command": shlex.join(["python", *sys.argv]),
        "model": str(args.model or "embedded default"),
        "patterns": {},
    }
    start = time.perf_counter()
    site_patterns = [p for p in args.sites_patterns.split(",") if p]
    if site_patterns:
        out["wyckoff_given_true_group"] = stage_two(predictor, prior, val, args.sites_subset, site_patterns, args.cache)
    if args.sites_only:
        out["seconds"] = round(time.perf_counter() - start, 1)
        (RESULTS / f"constraints_prior_sites{args.tag}.json").write_text(json.dumps(out, indent=2) + "\n")
        return
    for pattern in [p for p in args.patterns.split(",") if p]:
        props = REQUESTS[pattern]
        subset = args.formula_subset if pattern == "formula" else args.subset
        records = sample_records(val, subset, 0)
        rows = {
            prop: attach_requests(
                predictor,
                cached_rows(
                    args.cache and args.cache / f"groups_{pattern}_{prop}_{subset}.json.gz",
                    functools.partial(lm_rows, predictor, prior, records, pattern, prop),
                ),
                records,
                pattern,
                prop,
            )
            for prop in props
        }
        for rs in rows.values():
            for r in rs:
                classifier_scores(classifier, r)
        tune = [r for rs in rows.values() for r in rs if r["half"] == "A"]
        shipped = prior.settings[pattern]
        shipped_weight = weights.classifier_weight(pattern) if classifier else 0.0
        if args.weight_only:
            best, best_weight = shipped, choose_weight(prior, tune, shipped)
        else:
            best, best_weight = choose(prior, tune, shipped, shipped_weight)
        report: dict = {
            "chosen_on_half_A": best.as_dict(),
            "classifier_weight_chosen_on_half_A": best_weight,
            "half_A_top1_with_chosen": round(accuracy(prior, tune, best, best_weight), 4),
        }
        for prop, rs in rows.items():
            held = [r for r in rs if r["half"] == "B"]
            report[prop] = {
                "n_half_B": len(held),
                "lm_only_top1": round(accuracy(prior, held, None), 4),
                "classifier_only_top1": round(
                    sum(int(r["groups"][np.argmax(r["classifier"])]) == r["truth"] for r in held) / max(1, len(held)), 4
                )
                if classifier
                else None,
                "lm_and_classifier_top1": round(accuracy(prior, held, None, best_weight), 4),
                "with_chosen_prior_no_classifier_top1": round(accuracy(prior, held, best), 4),
                "with_chosen_prior_top1": round(accuracy(prior, held, best, best_weight), 4),
                "with_shipped_prior_top1": round(accuracy(prior, held, shipped, shipped_weight), 4),
                "nearest_composition_top1": round(baseline(prior, held, "elements"), 4),
                "nearest_prototype_top1": round(baseline(prior, held, "prototype"), 4),
                "nearest_prototype_with_chosen_substitution_top1": round(
                    baseline(prior, held, "prototype", best.prototype.substitution_weight), 4
                ),
            }
        out["patterns"][pattern] = report
        print(pattern, json.dumps(report), flush=True)
    out["seconds"] = round(time.perf_counter() - start, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"constraints_prior{args.tag}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
