"""Does the composition classifier gain from element identities and divisibility flags? (issue #22)

Trains one formula-pattern member per feature set on `train` (the shipped recipe), reads it alone
(argmax over 230 groups) on both halves of `val`, and writes its log p over the groups cached by
../2026-12-stage1-reranker (the first 20 groups of the shipped ranking per val request), so
`combine.py` can weigh it beside the shipped voters. `test` is never read.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from xtalagent.data import load_records
from xtalagent.finetune import group_classifier as gc
from xtalagent.finetune.examples import record_properties
from xtalagent.finetune.train import set_threads

HERE = Path(__file__).resolve().parent
CACHE = HERE.parent / "2026-12-stage1-reranker" / "cache"
MAX_Z = 103
DIVISORS = (2, 3, 4, 6, 8, 12, 16)


def extra(pattern: str, elements: list[str], counts: list[int] | None) -> np.ndarray:
    """Element fractions by atomic number, and which divisors divide every count / each count."""
    from pymatgen.core import Element

    frac = np.zeros(MAX_Z)
    shown = np.array(counts, dtype=float) if counts is not None else np.ones(len(elements))
    for el, c in zip(elements, shown):
        frac[min(Element(el).Z, MAX_Z) - 1] += c / shown.sum()
    if counts is None or pattern != "formula":
        flags = np.full(2 * len(DIVISORS), np.nan)
    else:
        flags = np.array(
            [all(c % d == 0 for c in counts) for d in DIVISORS]
            + [sum(c % d == 0 for c in counts) / len(counts) for d in DIVISORS],
            dtype=float,
        )
    return np.concatenate([frac, flags])


def features(kind: str, pattern, elements, counts, bg, fe) -> np.ndarray:
    base = gc.composition_features(pattern, elements, counts, bg, fe)
    return base if kind == "v2" else np.concatenate([base, extra(pattern, elements, counts)])


def examples(records, pattern, kind, copies, rng):
    rows, labels = [], []
    for r in records:
        cell = r.cell_counts
        els = list(cell)
        bg, fe = record_properties(r)
        for _ in range(copies if rng else 1):
            mask = rng.choice(gc.PROPERTY_MASKS) if rng else "both"
            rows.append(
                features(
                    kind,
                    pattern,
                    els,
                    [cell[e] for e in els],
                    bg if mask in ("band_gap", "both") else None,
                    fe if mask in ("formation_energy", "both") else None,
                )
            )
            labels.append(r.spacegroup - 1)
    return np.array(rows), np.array(labels)


def substituted(records, kind, copies, scale, rng):
    """Each crystal ``copies`` times with one element swapped for one that takes its place in known
    crystals (the prior's data-mined substitution table, train only), group kept, properties hidden."""
    from xtalagent.finetune.predictor import load_predictor

    prior = load_predictor(variant="eval").prior
    row, dist = prior.substitution_row, prior.substitution
    symbols = sorted(row, key=row.get)
    cap = float(dist.max())
    rows, labels = [], []
    for r in records:
        cell = r.cell_counts
        els = list(cell)
        for _ in range(copies):
            x = rng.choice(els)
            if x not in row:
                continue
            d = dist[row[x], : len(symbols)]
            options = [(s, float(v)) for s, v in zip(symbols, d) if s not in cell and v < cap]
            if not options:
                continue
            weights = [np.exp(-v / scale) for _, v in options]
            y = rng.choices([s for s, _ in options], weights)[0]
            new = [y if e == x else e for e in els]
            rows.append(features(kind, "formula", new, [cell[e] for e in els], None, None))
            labels.append(r.spacegroup - 1)
    return np.array(rows), np.array(labels)


class Boosted:
    """LightGBM multiclass over the groups seen in training; log p over 230 (absent groups: 1e-12)."""

    def __init__(self, x, y, rounds, threads):
        import lightgbm as lgb

        self.classes = np.unique(y)
        index = {c: i for i, c in enumerate(self.classes)}
        self.booster = lgb.train(
            {
                "objective": "multiclass",
                "num_class": len(self.classes),
                "learning_rate": 0.1,
                "num_leaves": 15,
                "min_data_in_leaf": 10,
                "feature_fraction": 0.5,
                "bagging_fraction": 0.8,
                "bagging_freq": 1,
                "lambda_l2": 1.0,
                "num_threads": threads,
                "verbose": -1,
                "max_bin": 63,
            },
            lgb.Dataset(x, np.array([index[c] for c in y])),
            num_boost_round=rounds,
        )

    def log_probs(self, x):
        p = self.booster.predict(x)
        out = np.full((len(x), 230), 1e-12)
        out[:, self.classes] = p
        return np.log(np.clip(out, 1e-12, None))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kind", default="v3")
    p.add_argument("--members", type=int, default=1)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tag", default="")
    p.add_argument("--learner", default="mlp", choices=["mlp", "lgbm"])
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--copies", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--augment", type=int, default=0, help="substituted copies per crystal (properties hidden)")
    p.add_argument("--subst-scale", type=float, default=1.0, help="p(y replaces x) ~ exp(-distance / scale)")
    p.add_argument("--fraction", type=float, default=1.0, help="train on a seeded share of train")
    a = p.parse_args()
    set_threads(a.threads)
    train = load_records("datasets/mp_structures.parquet", "train")
    val = {r.id: r for r in load_records("datasets/mp_structures.parquet", "val")}
    if a.fraction < 1:
        train = random.Random(1).sample(train, round(a.fraction * len(train)))
    x, y = examples(train, "formula", a.kind, a.copies, random.Random(0))
    if a.augment:
        xa, ya = substituted(train, a.kind, a.augment, a.subst_scale, random.Random(2))
        print(f"augmented rows: {len(ya)}", flush=True)
        x, y = np.concatenate([x, xa]), np.concatenate([y, ya])
    n_features = x.shape[1]
    gc.N_FEATURES = n_features  # make_network reads the module constant
    t0 = time.time()
    mean = np.nan_to_num(np.nanmean(x, 0))
    std = np.nan_to_num(np.nanstd(x, 0))
    model = gc.PatternClassifier(mean, std, [])
    inputs, labels = model.inputs(x), torch.tensor(y)
    for m in range(a.members if a.learner == "mlp" else 0):
        torch.manual_seed(a.seed * 1000 + m)
        model.members.append(
            gc.train_member(
                inputs, labels, a.hidden, a.dropout, a.epochs, lambda net: None, f"{a.kind} member {m}", lambda s: None
            )
        )
    if a.learner == "lgbm":
        model = Boosted(x, y, a.rounds, a.threads)
    print(f"trained in {time.time() - t0:.0f} s", flush=True)
    out = {
        "fraction": a.fraction,
        "n_train": len(train),
        "kind": a.kind,
        "members": a.members,
        "epochs": a.epochs,
        "hidden": a.hidden,
        "dropout": a.dropout,
    }
    for prop in ("band_gap", "formation_energy"):
        rows = json.load(gzip.open(CACHE / f"formula_{prop}.json.gz"))
        feats = []
        for row in rows:
            r = val[row["id"]]
            bg, fe = record_properties(r)
            feats.append(
                features(
                    a.kind,
                    "formula",
                    row["elements"],
                    row["counts"],
                    bg if prop == "band_gap" else None,
                    fe if prop == "formation_energy" else None,
                )
            )
        logp = model.log_probs(np.array(feats))
        alone = {h: [] for h in "AB"}
        cached = []
        for row, lp in zip(rows, logp):
            alone[row["half"]].append(int(lp.argmax()) + 1 == row["truth"])
            cached.append([float(lp[g - 1]) for g in row["groups"]["data"]])
        out[prop] = {h: float(np.mean(v)) for h, v in alone.items()} | {"n": {h: len(v) for h, v in alone.items()}}
        out[prop + "_cached"] = cached
        print(prop, {h: round(float(np.mean(v)) * 100, 2) for h, v in alone.items()}, flush=True)
    json.dump(out, gzip.open(HERE / f"clf_{a.kind}{a.tag}.json.gz", "wt"))


if __name__ == "__main__":
    main()
