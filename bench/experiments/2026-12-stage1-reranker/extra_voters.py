"""Extra stage-1 voters for the cached formula rows: the same models asked other questions.

For every cached formula request (extract_features.py), on its kept groups: the language model
and the composition classifier with the property hidden (``*_noprop``), and both asked the
reduced-ratio question (``*_ratio``: the composition-pattern prompt and network). A cheap test-time
ensemble over prompts. `test` is never read.

    R=bench/experiments/2026-12-stage1-reranker
    OMP_NUM_THREADS=1 python $R/extra_voters.py --property band_gap -> $R/cache/formula_band_gap_extra.json.gz
"""

from __future__ import annotations

import argparse
import time
from functools import reduce
from math import gcd
from pathlib import Path

import numpy as np

from xtalagent.eval.benchmarks.row_cache import cached_rows
from xtalagent.finetune.decoding import Context, rank_spacegroups
from xtalagent.finetune.predictor import load_predictor

HERE = Path(__file__).resolve().parent


def extra(predictor, row: dict) -> dict:
    groups = [int(g) for g in row["groups"]]
    elements = tuple(row["elements"])
    counts = tuple(row["counts"])
    d = reduce(gcd, counts)
    ratio = tuple(c // d for c in counts)
    bg, fe = row["band_gap"], row["formation_energy"]
    out = {"id": row["id"]}
    t0 = time.perf_counter()
    for name, ctx in (
        ("noprop", Context("formula", elements, counts, None, None)),
        ("ratio", Context("composition", elements, ratio, bg, fe)),
    ):
        lm = dict(rank_spacegroups(predictor.scorer, ctx, groups, len(groups)))
        out[f"lm_{name}"] = np.array([lm[g] for g in groups])
        logp = predictor.classifier.log_probs(ctx.pattern, ctx.elements, ctx.counts, ctx.band_gap, ctx.formation_energy)
        out[f"clf_{name}"] = np.array([float(logp[g - 1]) for g in groups])
    out["seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--property", required=True)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    predictor = load_predictor(variant="eval")
    rows = cached_rows(HERE / "cache" / f"formula_{args.property}.json.gz", lambda: None)
    out = cached_rows(
        HERE / "cache" / f"formula_{args.property}_extra.json.gz", lambda: [extra(predictor, r) for r in rows]
    )
    print(f"{args.property}: {len(out)} rows, median {1000 * np.median([o['seconds'] for o in out]):.0f} ms")


if __name__ == "__main__":
    main()
