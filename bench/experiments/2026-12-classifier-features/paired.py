"""Half-B requests a classifier setting turns right and wrong against the shipped stage-1 ranking.

    python paired.py REPLACE W FILE [FILE ...]   (from this folder's parent's parent's parent: the repo root)

REPLACE 0: the files' averaged log p is added at weight W; 1: it replaces the shipped classifier's
1.5 * log p. Prints gained, lost, z = (gained - lost) / sqrt(gained + lost) and both halves' top-1.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE.parent / "2026-12-stage1-reranker" / "cache"


def arr(x):
    return np.array(x["data"]) if isinstance(x, dict) else np.array(x)


def main() -> None:
    replace, w, files = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
    news = [json.load(gzip.open(HERE / f)) for f in files]
    gained = lost = 0
    tally = {"A": [0, 0, 0], "B": [0, 0, 0]}
    for prop in ("band_gap", "formation_energy"):
        for i, row in enumerate(json.load(gzip.open(CACHE / f"formula_{prop}.json.gz"))):
            groups, shipped = arr(row["groups"]), arr(row["shipped"])
            new = sum(np.array(n[prop + "_cached"][i]) for n in news) / len(news)
            score = shipped - replace * 1.5 * arr(row["clf"]) + w * new
            before, after = groups[shipped.argmax()] == row["truth"], groups[score.argmax()] == row["truth"]
            t = tally[row["half"]]
            t[0], t[1], t[2] = t[0] + before, t[1] + after, t[2] + 1
            if row["half"] == "B":
                gained += bool(after and not before)
                lost += bool(before and not after)
    z = (gained - lost) / max(1, gained + lost) ** 0.5
    halves = {h: f"{t[0] / t[2] * 100:.2f} -> {t[1] / t[2] * 100:.2f} %" for h, t in tally.items()}
    print(f"{files} replace={replace:g} w={w:g}: half B gained {gained}, lost {lost}, z {z:.2f}; {halves}")


if __name__ == "__main__":
    main()
