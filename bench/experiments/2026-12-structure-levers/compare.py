"""Paired comparison of the sampler levers on the same seeded MP `val` crystals.

    python bench/experiments/2026-12-structure-levers/compare.py [BASELINE_NAME]

Reads every ``csp_*_diffusion.json`` (merged, not shards) in this folder with its
``.details.json``, and prints and writes ``comparison.json``: per run match@1 ± binomial s.e.,
RMSE and match@1 per crystal system, and against the baseline run the paired difference in
match@1 on the crystals both ran, with the standard error of that paired difference (the levers
change the same crystals' outcomes, so the paired s.e. is far below the two runs' own).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def hits(details: Path) -> dict[str, bool]:
    rows = json.loads(details.read_text())["diffusion"]
    return {row["id"]: row["rms"][0] is not None for row in rows}


def paired(base: dict[str, bool], other: dict[str, bool]) -> dict:
    ids = sorted(set(base) & set(other))
    d = [int(other[i]) - int(base[i]) for i in ids]
    n = len(d)
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1) if n > 1 else float("nan")
    return {
        "n_shared": n,
        "baseline_on_shared": sum(base[i] for i in ids) / n,
        "this_on_shared": sum(other[i] for i in ids) / n,
        "difference": mean,
        "difference_stderr": math.sqrt(var / n),
        "gained": sum(x > 0 for x in d),
        "lost": sum(x < 0 for x in d),
    }


def main() -> None:
    baseline = sys.argv[1] if len(sys.argv) > 1 else "val100_s200_t05"
    runs = {}
    for path in sorted(HERE.glob("csp_*_diffusion.json")):
        if ".shard" in path.name:
            continue
        name = path.name[len("csp_") : -len("_diffusion.json")]
        report = json.loads(path.read_text())
        res = report["results"]["diffusion"]
        runs[name] = {
            "steps": report["diffusion_steps"],
            "temperature": report["diffusion_temperature"],
            "corrector": report.get("diffusion_corrector", True),
            "step_lr": report.get("diffusion_step_lr"),
            "checkpoint": report["checkpoint"],
            "n": res["n_crystals"],
            "match_at_1": res["match_rate_at_1"],
            "match_at_1_stderr": res["match_rate_at_1_stderr"],
            "rmse_at_1": res["rmse_at_1"],
            "by_crystal_system": {k: f"{v['matched']}/{v['n']}" for k, v in res["by_crystal_system"].items() if v["n"]},
            "hits": hits(path.with_suffix(".details.json")),
        }
    if baseline in runs:
        for name, run in runs.items():
            if name != baseline:
                run["vs_baseline"] = paired(runs[baseline]["hits"], run["hits"])
    for run in runs.values():
        del run["hits"]
    out = {"baseline": baseline, "runs": runs}
    (HERE / "comparison.json").write_text(json.dumps(out, indent=1) + "\n")
    for name, run in runs.items():
        rate, se = 100 * run["match_at_1"], 100 * run["match_at_1_stderr"]
        line = f"{name:32s} n={run['n']:3d} match@1 {rate:5.1f} ± {se:.1f}"
        if "vs_baseline" in run:
            p = run["vs_baseline"]
            line += (
                f"  vs {baseline} on {p['n_shared']}: {100 * p['difference']:+.1f} ± {100 * p['difference_stderr']:.1f}"
                f" (+{p['gained']} / -{p['lost']})"
            )
        print(line, run["by_crystal_system"])


if __name__ == "__main__":
    main()
