"""Paired comparison (discordant requests) of the re-ranker chosen in a results file against the
shipped ranking: fit on half A -> half B, fit on B -> A, per property.

    python bench/experiments/2026-12-stage1-reranker/paired.py --pattern elements --tag _linear
"""

from __future__ import annotations

import argparse
import json
import math

from fit_reranker import FEATURE_SETS, HERE, GroupStats, fit, load_rows, pack, predict

parser = argparse.ArgumentParser()
parser.add_argument("--pattern", required=True)
parser.add_argument("--tag", required=True)
args = parser.parse_args()
res = json.loads((HERE / f"results_{args.pattern}{args.tag}.json").read_text())
c = res["chosen_on_half_A"]
rows = load_rows(args.pattern, ("band_gap", "formation_energy"))
stats = GroupStats()
use = FEATURE_SETS[c["features"]]
A = [r for r in rows if r["half"] == "A"]
B = [r for r in rows if r["half"] == "B"]
dA, dB = pack(A, c["n"], stats, use), pack(B, c["n"], stats, use)
pB = predict(*fit(dA, c["l2"], c["hidden"]), dB)
pA = predict(*fit(dB, c["l2"], c["hidden"]), dA)
out = {"chosen": c}
for name, sel in (("half_B", list(zip(B, pB))), ("whole_crossfit", list(zip(A, pA)) + list(zip(B, pB)))):
    for prop in ("band_gap", "formation_energy", "both"):
        s = [(r, k) for r, k in sel if prop == "both" or r["prop"] == prop]
        gained = sum(bool(int(r["groups"][k]) == r["truth"] and r["groups"][0] != r["truth"]) for r, k in s)
        lost = sum(bool(int(r["groups"][k]) != r["truth"] and r["groups"][0] == r["truth"]) for r, k in s)
        changed = sum(int(k) != 0 for _, k in s)
        z = (gained - lost) / math.sqrt(gained + lost) if gained + lost else 0.0
        out[f"{name}_{prop}"] = {
            "n": len(s),
            "changed": changed,
            "gained": gained,
            "lost": lost,
            "net_points": round(100 * (gained - lost) / len(s), 2),
            "z": round(z, 2),
        }
        print(name, prop, out[f"{name}_{prop}"])
(HERE / f"paired_{args.pattern}{args.tag}.json").write_text(json.dumps(out, indent=2) + "\n")
