"""Weigh a new classifier's cached log p beside the shipped stage-1 voters (chosen on half A, read on B).

score = shipped - replace * 1.5 * clf_shipped + w * clf_new over the first 20 groups cached by
../2026-12-stage1-reranker; w on a grid, chosen on half A (band gap and formation energy pooled).
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE.parent / "2026-12-stage1-reranker" / "cache"
SHIPPED_CLF = 1.5


def arr(x):
    return np.array(x["data"]) if isinstance(x, dict) else np.array(x)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("files", nargs="+")
    p.add_argument("--pattern", default="formula")
    a = p.parse_args()
    news = [json.load(gzip.open(HERE / f)) for f in a.files]
    grid = [0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    report = {}
    for replace in (0, 1):
        best = None
        table = {}
        for w in grid:
            hits = {"A": [], "B": []}
            per = {}
            for prop in ("band_gap", "formation_energy"):
                rows = json.load(gzip.open(CACHE / f"{a.pattern}_{prop}.json.gz"))
                for i, row in enumerate(rows):
                    s = arr(row["shipped"]) - replace * SHIPPED_CLF * arr(row["clf"])
                    for new in news:
                        s = s + w * np.array(new[prop + "_cached"][i]) / len(news)
                    ok = arr(row["groups"])[int(s.argmax())] == row["truth"]
                    hits[row["half"]].append(ok)
                    per.setdefault(prop, {"A": [], "B": []})[row["half"]].append(ok)
            table[w] = {h: float(np.mean(v)) for h, v in hits.items()} | {
                prop: {h: float(np.mean(v)) for h, v in d.items()} for prop, d in per.items()
            }
            if best is None or table[w]["A"] > table[best]["A"]:
                best = w
        report[f"replace{replace}"] = {"chosen_w": best, "table": table}
        base = table[0] if replace == 0 else None
        print(
            f"replace={replace} chosen w={best}: A {table[best]['A'] * 100:.2f} B {table[best]['B'] * 100:.2f}"
            + (f"  (shipped A {base['A'] * 100:.2f} B {base['B'] * 100:.2f})" if base else "")
            + f"  B bg {table[best]['band_gap']['B'] * 100:.2f} fe {table[best]['formation_energy']['B'] * 100:.2f}"
        )
        for w in grid:
            print(f"   w={w}: A {table[w]['A'] * 100:.2f} B {table[w]['B'] * 100:.2f}")
    (HERE / f"combine_{a.pattern}_{'+'.join(Path(f).stem.split('.')[0] for f in a.files)}.json").write_text(
        json.dumps(report, indent=1)
    )


if __name__ == "__main__":
    main()
