"""Cache stage-1 voter scores (and a few stage-2 features) per val request, for a stage-1 re-ranker.

For every MP `val` crystal that has the property, and the request pattern asked (formula or
elements), the shipped predictor's voters are computed apart, eval variant (the prior hears
`train` crystals only): language model, the prior's elements part and prototype part, the
composition classifier's log p(group) (weight 1) and, for elements-only requests, the ratio vote
at weight 1 with the per-ratio shares of the 3 likeliest ratios. The TOP groups by the shipped
score are kept. For formula requests the best site list of each of the first STAGE2 groups is
decoded (``ConstraintPredictor.rank_site_lists``, k=1) and its score, orbit count and fixed-position
count are kept. `test` is never read.

    R=bench/experiments/2026-12-stage1-reranker
    OMP_NUM_THREADS=1 python $R/extract_features.py --pattern formula --property band_gap [--limit N]
    -> $R/cache/formula_band_gap[_N].json.gz
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from xtalagent.data import load_records
from xtalagent.eval.benchmarks.paths import dataset_file
from xtalagent.eval.benchmarks.row_cache import cached_rows
from xtalagent.eval.benchmarks.subsets import half
from xtalagent.eval.constraints import request_for, sample_records
from xtalagent.finetune.decoding import rank_spacegroups
from xtalagent.finetune.predictor import load_predictor
from xtalagent.finetune.ratio_classifier import ratio_key
from xtalagent.finetune.requests import ConstraintRequest
from xtalagent.finetune.wyckoff_solver import feasible_groups, positions

HERE = Path(__file__).resolve().parent
TOP = 20
STAGE2 = 3


def voter_parts(predictor, ctx, groups: list[int], max_atoms: int) -> dict[str, np.ndarray]:
    lm = dict(rank_spacegroups(predictor.scorer, ctx, groups, len(groups)))
    parts = {"lm": np.array([lm[g] for g in groups])}
    settings = predictor.prior.settings[ctx.pattern]
    for name in ("elements", "prototype"):
        part = getattr(settings, name)
        pool = predictor.prior.pool(
            name, ctx.pattern, ctx.elements, ctx.counts, substitution_weight=part.substitution_weight
        )
        bonus = predictor.prior.part_bonus(pool, part, groups, ctx.band_gap, ctx.formation_energy)
        parts[f"prior_{name}"] = np.array([bonus[g] for g in groups])
        parts[f"pool_{name}"] = np.array([len(pool[0])] * len(groups))
    logp = predictor.classifier.log_probs(ctx.pattern, ctx.elements, ctx.counts, ctx.band_gap, ctx.formation_energy)
    parts["clf"] = np.array([float(logp[g - 1]) for g in groups])
    return parts


def row_for(predictor, record, pattern: str, prop: str) -> dict | None:
    request = request_for(record, pattern, prop)
    if request is None:
        return None
    req = ConstraintRequest.model_validate(request)
    ctx = predictor.context(req)
    target = req.target()
    groups = feasible_groups(target)
    start = time.perf_counter()
    parts = voter_parts(predictor, ctx, groups, req.max_atoms)
    w = predictor.weights
    shipped = (
        parts["lm"] + parts["prior_elements"] + parts["prior_prototype"] + w.classifier_weight(pattern) * parts["clf"]
    )
    extra: dict = {}
    if pattern == "elements":
        shares = predictor.ratio_shares(ctx, groups, req.max_atoms)
        likely = predictor.likely_ratios(ctx, req.max_atoms)
        from xtalagent.finetune.predictor import ratio_vote

        vote = ratio_vote(shares, groups, 1.0, w.ratio_floor)
        parts["ratio"] = np.array([vote[g] for g in groups])
        shipped = shipped + w.ratio_weight * parts["ratio"]
        extra["ratio_probs"] = np.array([p for p, _ in shares])
        extra["ratio_shares_all"] = [np.array([s.get(g, 0.0) for g in groups]) for _, s in shares]
        truth_ratio = ratio_key(record.cell_counts)
        extra["ratio_truth_rank"] = next(
            (i for i, (c, _) in enumerate(likely) if ratio_key(dict(zip(ctx.elements, c))) == truth_ratio), -1
        )
        extra["likely_ratios"] = [tuple(int(x) for x in c) for c, _ in likely]
        extra["likely_probs"] = np.array([p for _, p in likely])
    seconds_stage1 = time.perf_counter() - start
    order = np.argsort(-shipped, kind="stable")[:TOP]
    row = {
        "id": record.id,
        "half": half(record.id),
        "truth": record.spacegroup,
        "n_feasible": len(groups),
        "truth_rank": int(np.where(np.array(groups)[np.argsort(-shipped, kind="stable")] == record.spacegroup)[0][0])
        if record.spacegroup in groups
        else -1,
        "elements": list(ctx.elements),
        "counts": list(ctx.counts) if ctx.counts else None,
        "band_gap": ctx.band_gap,
        "formation_energy": ctx.formation_energy,
        "groups": np.array(groups)[order],
        "shipped": shipped[order],
        "seconds_stage1": seconds_stage1,
    }
    for name, values in parts.items():
        row[name] = values[order]
    if pattern == "elements":
        row["ratio_shares"] = [s[order] for s in extra.pop("ratio_shares_all")]
        row.update(extra)
    if pattern == "formula" and STAGE2:
        start = time.perf_counter()
        s2 = []
        for g in row["groups"][:STAGE2].tolist():
            best = predictor.rank_site_lists(ctx, target, g, 1)
            if best:
                state, score = best[0]
                table = positions(g)
                s2.append((score, len(state.sites), sum(table[i].fixed for _, i in state.sites)))
            else:
                s2.append((float("nan"), -1, -1))
        row["stage2"] = np.array(s2)
        row["seconds_stage2"] = time.perf_counter() - start
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pattern", choices=("formula", "elements"), required=True)
    parser.add_argument("--property", choices=("band_gap", "formation_energy", "none"), required=True)
    parser.add_argument("--limit", type=int, default=None, help="a seeded random subset of val crystals")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    predictor = load_predictor(variant="eval")
    val = sample_records(load_records(dataset_file(None), "val"), args.limit)
    tag = f"{args.pattern}_{args.property}" + (f"_{args.limit}" if args.limit else "")

    def build() -> list[dict]:
        rows = []
        t0 = time.perf_counter()
        for i, record in enumerate(val):
            row = row_for(predictor, record, args.pattern, args.property)
            if row is not None:
                rows.append(row)
            if (i + 1) % 100 == 0:
                print(f"{i + 1}/{len(val)} crystals, {len(rows)} rows, {time.perf_counter() - t0:.0f} s", flush=True)
        return rows

    rows = cached_rows(HERE / "cache" / f"{tag}.json.gz", build)
    s1 = np.median([r["seconds_stage1"] for r in rows])
    top1 = np.mean([r["groups"][0] == r["truth"] for r in rows])
    msg = f"{tag}: {len(rows)} rows, shipped top-1 {top1:.4f}, median stage-1 {1000 * s1:.0f} ms"
    if "seconds_stage2" in rows[0]:
        msg += f", median stage-2 x{STAGE2} {1000 * np.median([r['seconds_stage2'] for r in rows]):.0f} ms"
    print(msg)


if __name__ == "__main__":
    main()
