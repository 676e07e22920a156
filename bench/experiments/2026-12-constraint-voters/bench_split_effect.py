"""How much easier is a random split than ours? Composition baselines under both, on `train` only.

Our MP `val`/`test` splits are grouped by (reduced formula, space group): no held-out crystal
shares its formula *and* group with a training crystal. CrystalGF's split is random, so a model
there can recall a polymorph it saw in training. This script measures the size of that effect with
the label-free baselines of the constraint report (nearest neighbour by composition, nearest
prototype, most frequent group for the atom count). It only splits the `train` split (never `val` or `test`):
10 % held out at random, or 10 % of the (formula, group) groups held out, repeated over seeds.

    V=bench/experiments/2026-12-constraint-voters   # from the repository root
    python $V/bench_split_effect.py   # -> constraints_split_effect.json (beside this script)
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections import defaultdict
from pathlib import Path

from xtalagent.data import load_records
from xtalagent.eval.benchmarks.paths import dataset_file
from xtalagent.eval.constraints import Baselines
from xtalagent.finetune.examples import composition_of
from xtalagent.records import CrystalRecord

RESULTS = Path(__file__).resolve().parent  # results live beside the script and its README


def random_split(records: list[CrystalRecord], fraction: float, rng: random.Random):
    shuffled = records[:]
    rng.shuffle(shuffled)
    n = int(fraction * len(shuffled))
    return shuffled[n:], shuffled[:n]


def grouped_split(records: list[CrystalRecord], fraction: float, rng: random.Random):
    groups: dict[tuple[str, int], list[CrystalRecord]] = defaultdict(list)
    for r in records:
        groups[(r.reduced_formula, r.spacegroup)].append(r)
    keys = list(groups)
    rng.shuffle(keys)
    held, fit, target = [], [], fraction * len(records)
    for key in keys:
        (held if len(held) < target else fit).extend(groups[key])
    return fit, held


def scores(fit: list[CrystalRecord], held: list[CrystalRecord]) -> dict[str, float]:
    baselines = Baselines(fit)
    seen_pairs = {(r.reduced_formula, r.spacegroup) for r in fit}
    seen_formulas = {r.reduced_formula for r in fit}
    nn = proto = freq = 0
    for r in held:
        shown = ("formula", *composition_of(r, "formula"))
        nn += baselines.nearest(*shown) == r.spacegroup
        proto += baselines.prototype(*shown) == r.spacegroup
        freq += baselines.most_frequent(r.natoms) == r.spacegroup
    n = len(held)
    return {
        "nearest_neighbour_top1": nn / n,
        "nearest_prototype_top1": proto / n,
        "most_frequent_top1": freq / n,
        "held_out_pair_seen_in_fit": sum((r.reduced_formula, r.spacegroup) in seen_pairs for r in held) / n,
        "held_out_formula_seen_in_fit": sum(r.reduced_formula in seen_formulas for r in held) / n,
        "n_held_out": n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None, help="default: datasets/mp_structures.parquet")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fraction", type=float, default=0.1)
    args = parser.parse_args()
    args.dataset = dataset_file(args.dataset)
    train = load_records(args.dataset, "train")
    out: dict = {
        "what": __doc__.splitlines()[0],
        "command": "python $V/bench_split_effect.py",
        "n_train": len(train),
    }
    for name, split in (("random", random_split), ("grouped_formula_spacegroup", grouped_split)):
        runs = [scores(*split(train, args.fraction, random.Random(seed))) for seed in range(args.seeds)]
        out[name] = {k: round(statistics.mean(run[k] for run in runs), 4) for k in runs[0]}
        print(name, out[name])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "constraints_split_effect.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
