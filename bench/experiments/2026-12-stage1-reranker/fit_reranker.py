"""Fit and score a stage-1 re-ranker on cached val features (extract_features.py), half A / half B.

A conditional logit (softmax over the first N groups of the shipped stage-1 ranking of one
request, linear in per-group features) or a small MLP scorer, fitted with L2 on one half of MP
`val` and read on the other (both directions, so every val request gets a clean prediction once).
Hyperparameters (N, L2, feature set, model) are chosen on half A only (inner 2-fold split of
half A by a second hash), then the chosen setting is fitted on A and read on B, and fitted on B and
read on A. `test` is never read.

    R=bench/experiments/2026-12-stage1-reranker
    python $R/fit_reranker.py --pattern formula   -> $R/results_formula.json
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from xtalagent.composition import parse_counts
from xtalagent.eval.benchmarks.row_cache import cached_rows
from xtalagent.finetune.neighbour_prior import PRIOR_FILE, read_entries
from xtalagent.finetune.predictor import default_model_dir
from xtalagent.finetune.wyckoff_solver import positions

HERE = Path(__file__).resolve().parent
SYSTEMS = (2, 15, 74, 142, 167, 194, 230)  # last group of each crystal system


def crystal_system(group: int) -> int:
    return next(i for i, last in enumerate(SYSTEMS) if group <= last)


class GroupStats:
    """Training-set counts of groups overall, per cell size and per number of elements."""

    def __init__(self) -> None:
        entries = read_entries(default_model_dir() / PRIOR_FILE)
        self.total = Counter()
        self.by_natoms: dict[int, Counter] = {}
        self.by_nel: dict[int, Counter] = {}
        for formula, group, *_ in entries:
            cell = parse_counts(formula)
            n, k = sum(cell.values()), len(cell)
            self.total[group] += 1
            self.by_natoms.setdefault(n, Counter())[group] += 1
            self.by_nel.setdefault(k, Counter())[group] += 1
        self.n = sum(self.total.values())

    def log_freq(self, group: int) -> float:
        return math.log((self.total[group] + 1) / (self.n + 230))

    def log_freq_in(self, table: dict[int, Counter], key: int, group: int) -> float:
        c = table.get(key, Counter())
        return math.log((c[group] + 1) / (sum(c.values()) + 230))


def load_rows(pattern: str, props: tuple[str, ...]) -> list[dict]:
    rows = []
    for prop in props:
        path = HERE / "cache" / f"{pattern}_{prop}.json.gz"
        if not path.exists():
            print(f"missing {path}", file=sys.stderr)
            continue
        more = HERE / "cache" / f"{pattern}_{prop}_extra.json.gz"
        extra = {e["id"]: e for e in cached_rows(more, lambda: None)} if more.exists() else {}
        for r in cached_rows(path, lambda: None):
            r["prop"] = prop
            for key, value in extra.get(r["id"], {}).items():
                if key not in ("id", "seconds"):
                    r[key] = value
            rows.append(r)
    return rows


def features(row: dict, n: int, stats: GroupStats, use: set[str]) -> np.ndarray:
    """Per candidate (first ``n`` groups of the shipped ranking) a feature vector."""
    groups = [int(g) for g in row["groups"][:n]]
    m = len(groups)
    cols: list[np.ndarray] = []
    voters = [v for v in ("lm", "prior_elements", "prior_prototype", "clf", "ratio") if v in row]
    if "voters" in use:
        for v in voters:
            x = np.asarray(row[v][:m], dtype=float)
            cols.append(x)
            cols.append(x - x.max())
    if "extra" in use:
        for v in ("lm_noprop", "clf_noprop", "lm_ratio", "clf_ratio"):
            if v in row:
                x = np.asarray(row[v][:m], dtype=float)
                cols.append(x)
    if "ranks" in use:
        cols.append(np.asarray(row["shipped"][:m]) - row["shipped"][0])
        for r in range(4):
            cols.append((np.arange(m) == r).astype(float))
        for v in voters:
            x = np.asarray(row[v][:m], dtype=float)
            rank = np.argsort(np.argsort(-x, kind="stable"), kind="stable")
            cols.append(np.log1p(rank))
            cols.append((rank == 0).astype(float))
    if "pool" in use:
        empty = float(row["pool_prototype"][0] == 0)
        cols.append(np.full(m, empty))
        cols.append(empty * np.asarray(row["clf"][:m]))
        cols.append(empty * np.asarray(row["lm"][:m]))
    if "groups" in use:
        natoms = sum(row["counts"]) if row.get("counts") else None
        nel = len(row["elements"])
        cols.append(np.array([stats.log_freq(g) for g in groups]))
        cols.append(np.array([stats.log_freq_in(stats.by_nel, nel, g) for g in groups]))
        if natoms:
            cols.append(np.array([stats.log_freq_in(stats.by_natoms, natoms, g) for g in groups]))
            gp = np.array([positions(g)[-1].multiplicity for g in groups], dtype=float)
            cols.append(np.log(gp / natoms))
        sys_onehot = np.zeros((m, 7))
        sys_onehot[np.arange(m), [crystal_system(g) for g in groups]] = 1
        cols.extend(sys_onehot.T)
        cols.append(np.array([math.log(len(positions(g))) for g in groups]))
    if "props" in use:
        bg = row.get("band_gap")
        fe = row.get("formation_energy")
        hasbg = float(bg is not None)
        metal = float(bg is not None and bg < 0.01)
        fe = fe if fe is not None else 0.0
        sys_onehot = np.zeros((m, 7))
        sys_onehot[np.arange(m), [crystal_system(g) for g in groups]] = 1
        cols.extend((metal * sys_onehot).T)
        cols.extend((hasbg * (1 - metal) * sys_onehot).T)
        cols.extend((fe * sys_onehot).T)
    if "stage2" in use and "stage2" in row:
        s2 = np.asarray(row["stage2"], dtype=float)
        k = min(len(s2), m)
        has = np.zeros(m)
        score = np.zeros(m)
        orbits = np.zeros(m)
        fixed = np.zeros(m)
        ok = ~np.isnan(s2[:k, 0])
        has[:k] = ok
        score[:k] = np.where(ok, s2[:k, 0], 0)
        top = score[:k][ok].max() if ok.any() else 0
        rel = np.where(has > 0, score - top, 0)
        orbits[:k] = np.where(ok, np.log(np.maximum(s2[:k, 1], 1)), 0)
        fixed[:k] = np.where(ok, s2[:k, 2] / np.maximum(s2[:k, 1], 1), 0)
        allfixed = np.zeros(m)
        allfixed[:k] = np.where(ok, (s2[:k, 2] == s2[:k, 1]).astype(float), 0)
        cols.extend([has, score, rel, orbits, fixed, allfixed])
    if "joint" in use and "ratio_shares" in row:
        probs = np.asarray(row["ratio_probs"], dtype=float)
        shares = [np.asarray(s[:m], dtype=float) for s in row["ratio_shares"]]
        if len(shares):
            S = np.stack(shares)  # ratios x groups
            joint = probs[:, None] * S
            cols.append(np.log(joint.max(axis=0) + 1e-6))
            cols.append(np.log(S[0] + 1e-6))
            cols.append((S[0] > 0).astype(float))
            cols.append(np.log(S.max(axis=0) + 1e-6))
            cols.append(np.full(m, probs[0]))
            cols.append(probs[0] * np.log(S[0] + 1e-6))
        else:
            cols.extend([np.zeros(m)] * 6)
    return np.stack(cols, axis=1)


class Scorer(torch.nn.Module):
    """Shipped score times a free scale, plus a linear (and optionally MLP) term on the features,
    so that a strong L2 falls back to the shipped ranking."""

    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(1.0))
        self.lin = torch.nn.Linear(d, 1)
        self.mlp = (
            torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
            if hidden
            else None
        )

    def forward(self, x, base):
        out = self.scale * base + self.lin(x).squeeze(-1)
        if self.mlp is not None:
            out = out + self.mlp(x).squeeze(-1)
        return out


def pack(rows, n, stats, use):
    X = [features(r, n, stats, use) for r in rows]
    d = X[0].shape[1]
    M = max(len(x) for x in X)
    T = np.zeros((len(X), M, d), dtype=np.float32)
    base = np.zeros((len(X), M), dtype=np.float32)
    mask = np.zeros((len(X), M), dtype=bool)
    y = np.full(len(X), -1)
    for i, (x, r) in enumerate(zip(X, rows)):
        T[i, : len(x)] = x
        base[i, : len(x)] = np.asarray(r["shipped"][: len(x)]) - r["shipped"][0]
        mask[i, : len(x)] = True
        hit = np.where(np.asarray(r["groups"][:n]) == r["truth"])[0]
        if len(hit):
            y[i] = hit[0]
    return torch.tensor(T), torch.tensor(base), torch.tensor(mask), torch.tensor(y)


def fit(train, l2: float, hidden: int, epochs: int = 300):
    X, base, mask, y = train
    keep = y >= 0  # requests whose truth is among the candidates teach; others cannot
    X, base, mask, y = X[keep], base[keep], mask[keep], y[keep]
    flat = X[mask]
    mu, sd = flat.mean(0), flat.std(0) + 1e-6
    torch.manual_seed(0)
    model = Scorer(X.shape[-1], hidden)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=epochs, line_search_fn="strong_wolfe")
    Xn = (X - mu) / sd

    def closure():
        opt.zero_grad()
        s = model(Xn, base).masked_fill(~mask, -1e9)
        loss = torch.nn.functional.cross_entropy(s, y)
        reg = sum((p**2).sum() for name, p in model.named_parameters() if "weight" in name and name != "scale")
        loss = loss + l2 * reg
        loss.backward()
        return loss

    opt.step(closure)
    return model, mu, sd


def predict(model, mu, sd, data) -> np.ndarray:
    X, base, mask, _ = data
    with torch.no_grad():
        s = model((X - mu) / sd, base).masked_fill(~mask, -1e9)
    return s.argmax(1).numpy()


def top1(rows, choice) -> float:
    return float(np.mean([int(r["groups"][c]) == r["truth"] for r, c in zip(rows, choice)])) if rows else float("nan")


def subhalf(row_id: str) -> int:
    return zlib.adler32(str(row_id).encode()) % 2


FEATURE_SETS = {
    "voters": {"voters"},
    "voters+ranks": {"voters", "ranks"},
    "extra": {"extra"},
    "voters+extra": {"voters", "extra"},
    "all+extra": {"voters", "ranks", "groups", "pool", "props", "stage2", "joint", "extra"},
    "voters+ranks+groups": {"voters", "ranks", "groups", "pool"},
    "all": {"voters", "ranks", "groups", "pool", "props", "stage2", "joint"},
    "all-stage2": {"voters", "ranks", "groups", "pool", "props", "joint"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pattern", choices=("formula", "elements"), required=True)
    parser.add_argument("--properties", default="band_gap,formation_energy")
    parser.add_argument("--ns", default="3,5,10")
    parser.add_argument("--l2s", default="0.001,0.01,0.1")
    parser.add_argument("--hiddens", default="0,16")
    parser.add_argument("--sets", default=",".join(FEATURE_SETS))
    parser.add_argument("--tag", default="", help="suffix of the results file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    props = tuple(args.properties.split(","))
    rows = load_rows(args.pattern, props)
    stats = GroupStats()
    A = [r for r in rows if r["half"] == "A"]
    B = [r for r in rows if r["half"] == "B"]
    out: dict = {"command": shlex.join(["python", *sys.argv]), "n_A": len(A), "n_B": len(B), "grid_half_A": {}}
    print(
        f"{args.pattern}: half A {len(A)}, half B {len(B)};"
        f" shipped top-1 A {top1(A, [0] * len(A)):.4f} B {top1(B, [0] * len(B)):.4f}"
    )
    # inner split of half A for choosing the setting
    A0 = [r for r in A if subhalf(r["id"]) == 0]
    A1 = [r for r in A if subhalf(r["id"]) == 1]
    best, best_acc = None, -1.0
    for set_name in args.sets.split(","):
        use = FEATURE_SETS[set_name]
        for n in [int(x) for x in args.ns.split(",")]:
            d0, d1 = pack(A0, n, stats, use), pack(A1, n, stats, use)
            for hidden in [int(x) for x in args.hiddens.split(",")]:
                for l2 in [float(x) for x in args.l2s.split(",")]:
                    m0 = fit(d0, l2, hidden)
                    m1 = fit(d1, l2, hidden)
                    right = top1(A1, predict(*m0, d1)) * len(A1) + top1(A0, predict(*m1, d0)) * len(A0)
                    acc = right / len(A)
                    key = f"{set_name} n={n} hidden={hidden} l2={l2}"
                    out["grid_half_A"][key] = round(acc, 4)
                    print(f"  {key}: half A (inner 2-fold) {acc:.4f}", flush=True)
                    if acc > best_acc:
                        best, best_acc = (set_name, n, hidden, l2), acc
    set_name, n, hidden, l2 = best
    use = FEATURE_SETS[set_name]
    out["shipped_half_A_top1"] = round(top1(A, [0] * len(A)), 4)
    out["chosen_on_half_A"] = {
        "features": set_name,
        "n": n,
        "hidden": hidden,
        "l2": l2,
        "inner_cv_top1": round(best_acc, 4),
    }
    dA, dB = pack(A, n, stats, use), pack(B, n, stats, use)
    mA = fit(dA, l2, hidden)
    mB = fit(dB, l2, hidden)
    predB, predA = predict(*mA, dB), predict(*mB, dA)
    report = {}
    for prop in props:
        rb = [(r, c) for r, c in zip(B, predB) if r["prop"] == prop]
        ra = [(r, c) for r, c in zip(A, predA) if r["prop"] == prop]
        both = rb + ra
        report[prop] = {
            "half_B_n": len(rb),
            "half_B_shipped": round(top1([r for r, _ in rb], [0] * len(rb)), 4),
            "half_B_reranked_fit_on_A": round(top1([r for r, _ in rb], [c for _, c in rb]), 4),
            "whole_n": len(both),
            "whole_shipped": round(top1([r for r, _ in both], [0] * len(both)), 4),
            "whole_reranked_crossfit": round(top1([r for r, _ in both], [c for _, c in both]), 4),
            "truth_in_first_n": round(float(np.mean([0 <= r["truth_rank"] < n for r, _ in both])), 4),
        }
        print(prop, json.dumps(report[prop]), flush=True)
    out["per_property"] = report
    (HERE / f"results_{args.pattern}{args.tag}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
