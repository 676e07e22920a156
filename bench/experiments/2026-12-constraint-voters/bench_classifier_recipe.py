"""Compare training recipes of the composition classifier (finetune/group_classifier.py) on MP `val`.

One network per recipe and request pattern (seed 0, the shipped ensemble averages 3), trained on
`train` exactly as ``xtalagent finetune`` trains a member; read alone (argmax over the 230 groups,
no validity mask, no language model, no prior) on both halves of `val` (the split of
bench_constraint_prior.py), once per property shown: band gap, formation energy, none. A recipe is
chosen on half A; half B is reported beside it. `test` is never read.

    V=bench/experiments/2026-12-constraint-voters   # from the repository root
    python $V/bench_classifier_recipe.py [--patterns formula,composition,elements]
        [--recipes 0.2:20,0.5:40] -> constraints_classifier_recipe.json (beside this script)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from xtalagent.data import load_records
from xtalagent.eval.benchmarks.paths import dataset_file
from xtalagent.eval.benchmarks.subsets import half
from xtalagent.finetune.examples import record_properties
from xtalagent.finetune.group_classifier import PatternClassifier, composition_features, train_pattern
from xtalagent.finetune.train import set_threads
from xtalagent.io import atomic_path
from xtalagent.records import CrystalRecord

RESULTS = Path(__file__).resolve().parent  # results live beside the script and its README
PROPERTIES = ("band_gap", "formation_energy", "none")


def top1(model: PatternClassifier, records: list[CrystalRecord], pattern: str, prop: str) -> tuple[float, int]:
    """Classifier-alone top-1 over the records that have the property, and their number."""
    rows, labels = [], []
    for record in records:
        band_gap, formation_energy = record_properties(record)
        if (prop == "band_gap" and band_gap is None) or (prop == "formation_energy" and formation_energy is None):
            continue
        cell = record.cell_counts
        elements = list(cell)
        rows.append(
            composition_features(
                pattern,
                elements,
                [cell[el] for el in elements],
                band_gap if prop == "band_gap" else None,
                formation_energy if prop == "formation_energy" else None,
            )
        )
        labels.append(record.spacegroup - 1)
    guesses = model.log_probs(np.array(rows)).argmax(1)
    return float((guesses == np.array(labels)).mean()), len(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None, help="default: datasets/mp_structures.parquet")
    parser.add_argument("--patterns", default="formula,composition,elements")
    parser.add_argument("--recipes", default="0.2:20,0.5:40", help="dropout:epochs, comma separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "constraints_classifier_recipe.json")
    args = parser.parse_args()
    args.dataset = dataset_file(args.dataset)
    set_threads(args.threads)
    train = load_records(args.dataset, "train")
    val = load_records(args.dataset, "val")
    halves = {h: [r for r in val if half(r.id) == h] for h in "AB"}
    recipes = [(float(d), int(e)) for d, e in (item.split(":") for item in args.recipes.split(","))]
    report: dict = {
        "what": __doc__.splitlines()[0],
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "members": 1,
        "seed": 0,
        "results": [],
    }
    for pattern in args.patterns.split(","):
        for dropout, epochs in recipes:
            start = time.time()
            model = train_pattern(train, pattern, members=1, epochs=epochs, dropout=dropout, log=lambda _: None)
            row: dict = {
                "pattern": pattern,
                "dropout": dropout,
                "epochs": epochs,
                "train_s": round(time.time() - start),
            }
            for h, records in halves.items():
                scores = {prop: top1(model, records, pattern, prop) for prop in PROPERTIES}
                row[f"half_{h}"] = {prop: {"top1": round(acc, 4), "n": n} for prop, (acc, n) in scores.items()}
                row[f"half_{h}_mean"] = round(float(np.mean([acc for acc, _ in scores.values()])), 4)
            report["results"].append(row)
            print(
                f"{pattern:12s} dropout {dropout} epochs {epochs}: half A {row['half_A_mean']:.4f} "
                f"half B {row['half_B_mean']:.4f} ({row['train_s']} s)",
                flush=True,
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(args.out) as tmp:
                tmp.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
