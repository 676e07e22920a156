"""What a stage-1 re-ranker could win at most: how often the true group is among the first N of
the shipped ranking, and for elements-only requests the group top-1 by where the crystal's ratio
sits among the 3 voting ratios. Reads cache/ only.

    python bench/experiments/2026-12-stage1-reranker/ceiling.py -> ceiling.json
"""

from __future__ import annotations

import json

import numpy as np
from fit_reranker import HERE, load_rows

out = {}
for pattern in ("formula", "elements"):
    for prop in ("band_gap", "formation_energy"):
        rows = load_rows(pattern, (prop,))
        rank = np.array([r["truth_rank"] for r in rows])
        entry = {"n": len(rows)}
        entry.update(
            {f"truth_in_first_{n}": round(float(np.mean((rank >= 0) & (rank < n))), 4) for n in (1, 2, 3, 5, 10, 20)}
        )
        if pattern == "elements":
            by = {}
            for k, name in ((0, "first"), (1, "second"), (2, "third"), (-1, "not_among_3")):
                sel = [r for r in rows if r["ratio_truth_rank"] == k]
                by[name] = {
                    "share": round(len(sel) / len(rows), 4),
                    "group_top1": round(float(np.mean([r["groups"][0] == r["truth"] for r in sel])), 4),
                }
            entry["by_crystal_ratio_rank"] = by
        if pattern == "formula":
            # among requests whose truth is first or second: how often it is second, by whether the
            # second group's best site list is preferred (fewer orbits; higher score) or not
            for name, column, better in (("fewer_orbits", 1, np.less), ("higher_site_score", 0, np.greater)):
                counts = {"second_preferred": [0, 0], "first_preferred": [0, 0]}
                for r in rows:
                    s2 = np.asarray(r["stage2"], dtype=float)
                    if r["truth_rank"] not in (0, 1) or np.isnan(s2[:2, 0]).any() or s2[0, column] == s2[1, column]:
                        continue
                    key = "second_preferred" if better(s2[1, column], s2[0, column]) else "first_preferred"
                    counts[key][0] += 1
                    counts[key][1] += r["truth_rank"] == 1
                entry[f"truth_second_when_{name}"] = {
                    k: {"n": n, "truth_second": int(t), "share": round(t / n, 4) if n else None}
                    for k, (n, t) in counts.items()
                }
        out[f"{pattern}+{prop}"] = entry
        print(pattern, prop, json.dumps(entry))
(HERE / "ceiling.json").write_text(json.dumps(out, indent=2) + "\n")
