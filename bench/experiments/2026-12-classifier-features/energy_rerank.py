"""Read energy_check.py's output: does switching to a lower-energy candidate group help? (half A chooses the margin)

Rule: take the stage-1 first group unless another of the first K has a transplant whose CHGNet
energy per atom is lower than the first's by more than ``margin`` (eV/atom); the first group
without a transplant is kept. Margins on a grid, chosen on half A, read on half B.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def pick(row, key: str, margin: float) -> int:
    e = row[key]
    if not e or e[0] is None:
        return row["groups"][0]
    best = min((x, i) for i, x in enumerate(e) if x is not None)
    return row["groups"][best[1]] if best[0] < e[0] - margin else row["groups"][0]


def main() -> None:
    rows = json.load(gzip.open(HERE / sys.argv[1]))
    key = sys.argv[2] if len(sys.argv) > 2 else "e0"
    grid = [float("inf"), 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.0, -0.01]
    out = {}
    for m in grid:
        out[m] = {h: float(np.mean([pick(r, key, m) == r["truth"] for r in rows if r["half"] == h])) for h in "AB"}
    chosen = max(grid, key=lambda m: out[m]["A"])
    n = {h: sum(r["half"] == h for r in rows) for h in "AB"}
    with_two = sum(sum(x is not None for x in r[key]) >= 2 for r in rows)
    print(f"{sys.argv[1]} {key}: rows {n}, with >= 2 energies {with_two}")
    for m in grid:
        print(f"  margin {m}: A {out[m]['A'] * 100:.1f} B {out[m]['B'] * 100:.1f}")
    print(f"  chosen on A: {chosen} -> B {out[chosen]['B'] * 100:.1f} (no switch: {out[float('inf')]['B'] * 100:.1f})")


if __name__ == "__main__":
    main()
