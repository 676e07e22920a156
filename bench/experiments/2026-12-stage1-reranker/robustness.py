"""Diagnostic, not a choice: half-B top-1 (pooled band gap + formation energy) of every linear
setting of the grid, each fitted on half A, against the shipped ranking. Shows whether a gain is a
property of re-ranking or of one lucky setting. Nothing is chosen from it.

    python bench/experiments/2026-12-stage1-reranker/robustness.py --pattern elements
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from fit_reranker import FEATURE_SETS, HERE, GroupStats, fit, load_rows, pack, predict, top1

parser = argparse.ArgumentParser()
parser.add_argument("--pattern", required=True)
parser.add_argument("--sets", default="voters,voters+ranks,voters+ranks+groups,all-stage2")
args = parser.parse_args()
rows = load_rows(args.pattern, ("band_gap", "formation_energy"))
stats = GroupStats()
A = [r for r in rows if r["half"] == "A"]
B = [r for r in rows if r["half"] == "B"]
shipped = top1(B, [0] * len(B))
out = {"pattern": args.pattern, "half_B_n": len(B), "half_B_shipped": round(shipped, 4), "half_B_by_setting": {}}
for name in args.sets.split(","):
    for n in (2, 3, 5, 10):
        dA, dB = pack(A, n, stats, FEATURE_SETS[name]), pack(B, n, stats, FEATURE_SETS[name])
        for l2 in (0.01, 0.1, 1.0, 3.0):
            acc = top1(B, predict(*fit(dA, l2, 0), dB))
            out["half_B_by_setting"][f"{name} n={n} l2={l2}"] = round(acc, 4)
values = np.array(list(out["half_B_by_setting"].values()))
out["summary"] = {
    "settings": len(values),
    "median_minus_shipped_points": round(100 * (float(np.median(values)) - shipped), 2),
    "min_minus_shipped_points": round(100 * (float(values.min()) - shipped), 2),
    "max_minus_shipped_points": round(100 * (float(values.max()) - shipped), 2),
    "share_above_shipped": round(float(np.mean(values > shipped)), 3),
}
print(json.dumps(out["summary"]))
(HERE / f"robustness_{args.pattern}.json").write_text(json.dumps(out, indent=2) + "\n")
