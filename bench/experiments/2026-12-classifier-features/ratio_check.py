"""Ratio classifier with element identities (v3 features) against the shipped one, alone, on val halves.

First ratio right / among the first 3 (ratios with as many elements as the request), per property
shown. One member per recipe unless --members; `test` is never read.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from features_check import features  # noqa: E402  (this folder)

from xtalagent import config
from xtalagent.data import load_records
from xtalagent.eval.benchmarks.subsets import half
from xtalagent.finetune import group_classifier as gc
from xtalagent.finetune.examples import record_properties
from xtalagent.finetune.ratio_classifier import load_ratio_classifier, ratio_key
from xtalagent.finetune.train import set_threads

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kind", default="v3")
    p.add_argument("--members", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    set_threads(a.threads)
    train = load_records(str(HERE.parents[2] / "datasets/mp_structures.parquet"), "train")
    val = load_records(str(HERE.parents[2] / "datasets/mp_structures.parquet"), "val")
    shipped = load_ratio_classifier(HERE.parents[2] / "finetune/checkpoints/default")
    seen = Counter(ratio_key(r.cell_counts) for r in train)
    vocab = [k for k, n in seen.items() if n >= 2]
    index = {k: i for i, k in enumerate(vocab)}
    rng = random.Random(0)
    rows, labels = [], []
    for r in train:
        lab = index.get(ratio_key(r.cell_counts))
        if lab is None:
            continue
        bg, fe = record_properties(r)
        for _ in range(4):
            m = rng.choice(gc.PROPERTY_MASKS)
            rows.append(
                features(
                    a.kind,
                    "elements",
                    list(r.cell_counts),
                    None,
                    bg if m in ("band_gap", "both") else None,
                    fe if m in ("formation_energy", "both") else None,
                )
            )
            labels.append(lab)
    x, y = np.array(rows), np.array(labels)
    gc.N_FEATURES = x.shape[1]
    mean = np.nan_to_num(np.nanmean(x, 0))
    std = np.nan_to_num(np.nanstd(x, 0))
    model = gc.PatternClassifier(mean, std, [])
    inputs, lab_t = model.inputs(x), torch.tensor(y)
    t0 = time.time()
    for m in range(a.members):
        torch.manual_seed(m)
        model.members.append(
            gc.train_member(inputs, lab_t, 512, 0.2, 20, lambda net: None, "", lambda s: None, outputs=len(vocab))
        )
    print(f"trained in {time.time() - t0:.0f} s", flush=True)
    lengths = np.array([len(v) for v in vocab])
    atoms = np.array([sum(v) for v in vocab])  # the shipped classifier's own filter (RatioClassifier.ratios)
    out = {}
    for prop in ("band_gap", "formation_energy", "none"):
        res = {"new": {"A": [], "B": []}, "shipped": {"A": [], "B": []}}
        for r in val:
            bg, fe = record_properties(r)
            if (prop == "band_gap" and bg is None) or (prop == "formation_energy" and fe is None):
                continue
            bgs, fes = (bg if prop == "band_gap" else None), (fe if prop == "formation_energy" else None)
            els = list(r.cell_counts)
            truth = ratio_key(r.cell_counts)
            lp = model.log_probs(features(a.kind, "elements", els, None, bgs, fes))[0]
            lp = np.where((lengths == len(els)) & (atoms <= config.MAX_ATOMS_PER_CELL), lp, -np.inf)
            top = [vocab[i] for i in np.argsort(-lp)[:3]]
            res["new"][half(r.id)].append((top[0] == truth, truth in top))
            st = shipped.ratios(els, bgs, fes, k=3)
            from xtalagent.finetune.ratio_classifier import mendeleev_order

            order = mendeleev_order(els)
            keys = [tuple(dict(zip(els, c))[e] for e in order) for c, _ in st]
            res["shipped"][half(r.id)].append((bool(keys) and keys[0] == truth, truth in keys))
        out[prop] = {
            k: {h: [float(np.mean([t[0] for t in v])), float(np.mean([t[1] for t in v])), len(v)] for h, v in d.items()}
            for k, d in res.items()
        }
        print(prop, json.dumps(out[prop]), flush=True)
    (HERE / f"ratio_{a.kind}_m{a.members}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
