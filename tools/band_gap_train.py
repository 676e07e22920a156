"""Train the band-gap model of :mod:`xtalagent.tools.band_gap`: featurise, fit the prior, fit the head, save.

    python -m xtalagent.tools.band_gap_train --data ../shared/data/mp/structures.csv.gz \\
        --matbench ../shared/data/matbench/mp_gap.csv.gz -o tools/checkpoints/band_gap

Data hygiene: every reduced formula of the MP ``test`` split is removed from everything used here
(the MP rows of ``train``/``val`` that share one, and the Matbench rows). The head trains on
``--splits`` (default ``train``) and is measured on ``val``; ``--compare`` trains the variants
named in :data:`VARIANTS` and writes their val figures to ``runs/band_gap/variants.json``.

``--release`` builds the release variant instead (what users get by default, issue #20 item 3):
the same recipe on every MP crystal with a gap (``train`` + ``val`` + ``test``) and the whole
Matbench table, nothing removed. It has no held-out data, so its std scale factor is the eval
model's (``--eval-model``, fitted on val there) and it must never give a reported test figure:
its model.json says so and carries the eval model's measured figures, labelled as such.

    python -m xtalagent.tools.band_gap_train --release --data ../shared/data/mp/structures.csv.gz \\
        --matbench ../shared/data/matbench/mp_gap.csv.gz -o tools/checkpoints/band_gap_release

Resume: CHGNet features are cached in chunks under ``--cache`` (default ``runs/band_gap``), prior
fold models and head members as files there too; a re-run skips what exists (``--fresh`` clears
the trained parts, never the features).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import time
import warnings
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pymatgen.core import Composition, Structure

from xtalagent.io import atomic_path, write_json_atomic, write_text_atomic
from xtalagent.tools import band_gap as bg
from xtalagent.tools.band_gap_docs import (
    NAME,
    RELEASE_WARNING,
    readme,
    release_metrics,
    sanity_check,
)

logger = logging.getLogger(__name__)

CHUNK = 500


@dataclass
class BandGapTrainConfig:
    data: Path = Path("../shared/data/mp/structures.csv.gz")
    output: Path = bg.DEFAULT_DIR
    matbench: Path | None = Path("../shared/data/matbench/mp_gap.csv.gz")
    cache: Path = Path("runs/band_gap")
    #: splits the head trains on (val is always the tuning split; the default ships train only)
    splits: tuple[str, ...] = ("train",)
    #: release variant: every split, test formulas kept, std scale from ``eval_model`` (see the docstring)
    release: bool = False
    #: the eval model whose std scale (and measured figures) a release model reuses
    eval_model: Path = bg.DEFAULT_DIR
    #: "hurdle": classifier x regressor; "direct": one softplus regressor with L1 on every crystal
    mode: str = "hurdle"
    use_prior: bool = True
    use_chgnet: bool = True
    members: int = 5
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.1
    epochs: int = 80
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    prior_hidden: int = 256
    prior_layers: int = 2
    prior_epochs: int = 12
    prior_folds: int = 5
    prior_batch_size: int = 512
    #: target share of val errors within 2 std, for the spread's scale factor
    coverage: float = 0.9
    seed: int = 0
    threads: int = 1
    extra: dict = field(default_factory=dict)

    def head_key(self) -> str:
        keys: tuple[str, ...] = ("splits", "mode", "use_prior", "use_chgnet", "hidden", "layers", "dropout", "epochs")
        keys += ("batch_size", "lr", "weight_decay", "seed")
        text = json.dumps({k: getattr(self, k) for k in keys}, default=str, sort_keys=True)
        return hashlib.sha1((text + self.prior_key()).encode()).hexdigest()[:10]

    def prior_key(self) -> str:
        keys: tuple[str, ...] = ("prior_hidden", "prior_layers", "prior_epochs", "prior_folds", "prior_batch_size")
        keys += ("seed",)
        keys += ("release",) if self.release else ()  # the eval keys (and cached eval files) stay as they were
        return hashlib.sha1(json.dumps({k: getattr(self, k) for k in keys}).encode()).hexdigest()[:10]


#: Variants compared on val by ``--compare`` (overrides of the config).
VARIANTS: dict[str, dict] = {
    "direct": {"mode": "direct", "use_prior": False},
    "hurdle": {"mode": "hurdle", "use_prior": False},
    "hurdle+prior": {"mode": "hurdle", "use_prior": True},
    "direct+prior": {"mode": "direct", "use_prior": True},
    "composition-only+prior": {"mode": "hurdle", "use_prior": True, "use_chgnet": False},
}


# --- data -----------------------------------------------------------------------------------------
def reduced_formula(formula: str) -> str:
    return Composition(formula).reduced_formula


def load_rows(path: Path, keep_test_formulas: bool = False) -> tuple[pd.DataFrame, set[str]]:
    """Rows with a band gap outside ``test`` whose formula is not a test formula, and the test formulas.

    ``keep_test_formulas`` (release): every row with a gap, all splits; the eval rows come first in
    the eval order (column ``release_only`` False) so that their cached feature chunks are shared."""
    frame = pd.read_csv(path)
    test_formulas = {reduced_formula(f) for f in frame.loc[frame.split == "test", "formula"].unique()}
    gapped = frame[frame.band_gap.notna()].copy()
    gapped["formula"] = [reduced_formula(f) for f in gapped.formula]
    rows = gapped[gapped.split.isin(["train", "val"])]
    shared = rows.formula.isin(test_formulas)
    logger.info("MP rows with a gap: %d outside test, %d of them dropped (test formula)", len(rows), int(shared.sum()))
    rows = rows[~shared].assign(release_only=False)
    if keep_test_formulas:
        extra = gapped.drop(index=rows.index).assign(release_only=True)
        logger.info("release: %d more rows (test split and test formulas) kept", len(extra))
        rows = pd.concat([rows, extra])
    return rows.reset_index(drop=True), test_formulas


def featurise_rows(rows: pd.DataFrame, cache: Path, chgnet=None) -> tuple[np.ndarray, np.ndarray]:
    """CHGNet and structure+composition features of ``rows`` (cached in chunks keyed by material ids)."""
    cache.mkdir(parents=True, exist_ok=True)
    ids = rows.material_id.tolist()
    chg_parts, sc_parts = [], []
    model = None
    for start in range(0, len(rows), CHUNK):
        chunk_ids = ids[start : start + CHUNK]
        key = hashlib.sha1((bg.LAYOUT + "|".join(chunk_ids)).encode()).hexdigest()[:12]
        path = cache / f"features_{key}.npz"
        if path.is_file():
            stored = np.load(path)
            chg_parts.append(stored["chgnet"])
            sc_parts.append(stored["struct_comp"])
            continue
        t0 = time.perf_counter()
        if model is None:
            model = bg.load_chgnet(chgnet)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "fractional coordinates rounded": harmless, and thousands of them
            structures = [Structure.from_str(c, fmt="cif") for c in rows.cif.iloc[start : start + CHUNK]]
        chg, errors = bg.chgnet_features(structures, model)
        for i, e in enumerate(errors):
            if e:
                logger.warning("%s: %s", chunk_ids[i], e)
        sc = np.stack(
            [np.concatenate([bg.structure_features(s), bg.composition_features(s.composition)]) for s in structures]
        )
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, chgnet=chg, struct_comp=sc)
        chg_parts.append(chg)
        sc_parts.append(sc)
        dt = time.perf_counter() - t0
        logger.info("features %d-%d: %.1f ms/structure", start, start + len(structures), 1e3 * dt / len(structures))
    return np.concatenate(chg_parts), np.concatenate(sc_parts)


def load_matbench(path: Path, exclude: set[str]) -> pd.DataFrame:
    """Matbench mp_gap rows (reduced formula, gap) minus the formulas in ``exclude``."""
    table = pd.read_csv(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        formulas = {f: reduced_formula(f) for f in table.formula.unique()}
    table["formula"] = table.formula.map(formulas)
    keep = ~table.formula.isin(exclude)
    logger.info("Matbench mp_gap: %d rows, %d dropped (test formula)", len(table), int((~keep).sum()))
    return table[keep].rename(columns={"target": "band_gap"}).reset_index(drop=True)


def fold_of(formula: str, folds: int) -> int:
    return zlib.crc32(formula.encode()) % folds


# --- training -------------------------------------------------------------------------------------
def fit_member(
    x: np.ndarray,
    y: np.ndarray,
    norm: tuple[np.ndarray, np.ndarray],
    *,
    mode: str,
    hidden: int,
    layers: int,
    dropout: float,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
) -> bg.GapNet:
    """One network: BCE on metal / non-metal plus L1 on the gap (non-metals only in hurdle mode)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ens = bg.Ensemble(norm[0], norm[1], [])
    z = ens.inputs(x)
    target = torch.as_tensor(y, dtype=torch.float32)
    label = (target >= bg.METAL_GAP).float()
    net = bg.GapNet(x.shape[1], hidden=hidden, layers=layers, dropout=dropout)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(y) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    net.train()
    for _ in range(epochs):
        order = torch.as_tensor(rng.permutation(len(y)))
        for start in range(0, len(y), batch_size):
            idx = order[start : start + batch_size]
            logit, gap = net(z[idx])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, label[idx])
            if mode == "hurdle":
                mask = label[idx] > 0
                if mask.any():
                    loss = loss + (gap[mask] - target[idx][mask]).abs().mean()
            else:
                loss = loss + (gap - target[idx]).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    return net


def normaliser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = np.nanmean(x, axis=0)
    std = np.nanstd(x, axis=0)
    mean = np.nan_to_num(mean)
    std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
    return mean, std


def member_path(cache: Path, what: str, key: str, k: int) -> Path:
    return cache / f"{what}_{key}_{k}.pt"


def fit_ensemble(
    x: np.ndarray, y: np.ndarray, cfg: BandGapTrainConfig, *, what: str, key: str, seeds: list[int], **settings
) -> bg.Ensemble:
    """Members with the given seeds, each cached under ``cfg.cache`` (a re-run loads finished ones)."""
    norm = normaliser(x)
    members = []
    for k, seed in enumerate(seeds):
        path = member_path(cfg.cache, what, key, k)
        net = bg.GapNet(x.shape[1], hidden=settings["hidden"], layers=settings["layers"], dropout=settings["dropout"])
        if path.is_file():
            net.load_state_dict(torch.load(path, weights_only=True))
            net.eval()
        else:
            t0 = time.perf_counter()
            net = fit_member(x, y, norm, seed=seed, **settings)
            with atomic_path(path) as tmp:
                torch.save(net.state_dict(), tmp)
            logger.info("%s member %d: %.0f s on %d rows", what, k, time.perf_counter() - t0, len(y))
        members.append(net)
    return bg.Ensemble(norm[0], norm[1], members)


def fit_prior(table: pd.DataFrame, cfg: BandGapTrainConfig) -> tuple[list[bg.Ensemble], dict[str, int]]:
    """One composition-only network per fold, each trained without its fold's formulas."""
    formulas = table.formula.unique()
    feats = {f: bg.composition_features(f) for f in formulas}
    x = np.stack([feats[f] for f in table.formula])
    y = table.band_gap.to_numpy(dtype=np.float64)
    folds = np.array([fold_of(f, cfg.prior_folds) for f in table.formula])
    models = []
    settings = dict(
        mode="hurdle",
        hidden=cfg.prior_hidden,
        layers=cfg.prior_layers,
        dropout=cfg.dropout,
        epochs=cfg.prior_epochs,
        batch_size=cfg.prior_batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
    )
    for k in range(cfg.prior_folds):
        keep = folds != k
        models.append(
            fit_ensemble(
                x[keep],
                y[keep],
                cfg,
                what=f"prior_fold{k}",
                key=cfg.prior_key(),
                seeds=[cfg.seed + 100 + k],
                **settings,
            )
        )
    return models, {f: fold_of(f, cfg.prior_folds) for f in formulas}


def merge_prior(models: list[bg.Ensemble]) -> bg.FoldEnsemble:
    """The fold models answering as one (each keeps its normaliser)."""
    return bg.FoldEnsemble(models)


def prior_features(
    comp: np.ndarray, formulas: list[str], models: list[bg.Ensemble], folds: dict[str, int]
) -> np.ndarray:
    """Out-of-fold prior (P(non-metal), gap) for each row: the fold model that never saw its formula;
    formulas absent from the table get the average of all folds, as at prediction time."""
    out = np.zeros((len(formulas), 2))
    fold_ids = np.array([folds.get(f, -1) for f in formulas])
    for k, model in enumerate([*models, None]):
        sel = fold_ids == (k if model is not None else -1)
        if not sel.any():
            continue
        if model is None:
            p, g = merge_prior(models).member_outputs(comp[sel])
        else:
            p, g = model.member_outputs(comp[sel])
        out[sel] = np.stack([p.mean(0), g.mean(0)], axis=1)
    return out


def metrics(pred: np.ndarray, std: np.ndarray, truth: np.ndarray) -> dict:
    """MAE, RMSE, metal/non-metal accuracy (metal: gap < METAL_GAP), spread calibration."""
    err = np.abs(pred - truth)
    ok = np.isfinite(pred)
    err, s, t, p = err[ok], std[ok], truth[ok], pred[ok]
    return {
        "n": int(ok.sum()),
        "mae": float(err.mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "metal_accuracy": float(((p < bg.METAL_GAP) == (t < bg.METAL_GAP)).mean()),
        "mae_nonmetals": float(err[t >= bg.METAL_GAP].mean()),
        "mae_metals": float(err[t < bg.METAL_GAP].mean()),
        "within_1std": float((err <= s).mean()),
        "within_2std": float((err <= 2 * s).mean()),
        "mean_std": float(s.mean()),
        "spread_error_corr": float(np.corrcoef(s, err)[0, 1]) if s.std() > 0 else float("nan"),
    }


def std_scale(raw_std: np.ndarray, err: np.ndarray, coverage: float) -> float:
    """Smallest factor c with share(|err| <= 2 c std) >= coverage (searched on a grid)."""
    for c in np.arange(0.5, 20.0, 0.05):
        if (err <= 2 * c * raw_std + 1e-9).mean() >= coverage:
            return float(round(c, 2))
    return 20.0


@dataclass
class Prepared:
    rows: pd.DataFrame
    chg: np.ndarray
    sc: np.ndarray
    prior_models: list[bg.Ensemble] | None
    prior: np.ndarray | None
    n_test_formulas: int
    n_matbench: int


def prepare(cfg: BandGapTrainConfig) -> Prepared:
    rows, test_formulas = load_rows(cfg.data, keep_test_formulas=cfg.release)
    # featurised in two blocks, so the eval rows hit the same cached chunks whichever variant runs
    blocks = [featurise_rows(rows[rows.release_only == flag], cfg.cache) for flag in (False, True)]
    blocks = [b for b, flag in zip(blocks, (False, True)) if (rows.release_only == flag).any()]
    chg, sc = (np.concatenate([b[i] for b in blocks]) for i in (0, 1))
    prior_models, prior, n_mb = None, None, 0
    if cfg.matbench is not None:
        table = load_matbench(cfg.matbench, set() if cfg.release else test_formulas)
        n_mb = len(table)
        prior_models, folds = fit_prior(table, cfg)
        prior = prior_features(sc[:, bg.N_STRUCT :], rows.formula.tolist(), prior_models, folds)
    return Prepared(rows, chg, sc, prior_models, prior, 0 if cfg.release else len(test_formulas), n_mb)


def head_inputs(data: Prepared, cfg: BandGapTrainConfig) -> np.ndarray:
    parts = [data.chg] if cfg.use_chgnet else []
    parts.append(data.sc)
    if cfg.use_prior:
        if data.prior is None:
            raise SystemExit("use_prior needs --matbench")
        parts.append(data.prior)
    return np.concatenate(parts, axis=1)


def eval_meta(cfg: BandGapTrainConfig) -> dict:
    """model.json of the eval model a release model borrows its std scale and measured figures from."""
    path = Path(cfg.eval_model) / bg.META_FILE
    if not path.is_file():
        raise SystemExit(f"--release needs the eval model first (its std scale): {path} not found")
    meta = json.loads(path.read_text())
    if "test" in meta["training"]["head_splits"]:
        raise SystemExit(f"{path} is not an eval model (it trained on test)")
    return meta


def train_head(data: Prepared, cfg: BandGapTrainConfig) -> tuple[bg.Ensemble, dict | None, float]:
    """Fit the head on ``cfg.splits``; val metrics and the spread's scale factor (fitted on val).

    A release model trains on val too: no val metrics (None), and the eval model's scale factor."""
    x = head_inputs(data, cfg)
    y = data.rows.band_gap.to_numpy(dtype=np.float64)
    train = data.rows.split.isin(cfg.splits).to_numpy() & np.isfinite(x[:, 0])
    val = (data.rows.split == "val").to_numpy()
    settings = dict(
        mode=cfg.mode,
        hidden=cfg.hidden,
        layers=cfg.layers,
        dropout=cfg.dropout,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
    )
    seeds = [cfg.seed + k for k in range(cfg.members)]
    head = fit_ensemble(x[train], y[train], cfg, what="head", key=cfg.head_key(), seeds=seeds, **settings)
    if cfg.release:
        return head, None, float(eval_meta(cfg)["std_scale"])
    probs, gaps = head.member_outputs(x[val])
    values = bg.gated(probs, gaps) if cfg.mode == "hurdle" else gaps
    pred, raw = values.mean(0), values.std(0)
    scale = std_scale(raw, np.abs(pred - y[val]), cfg.coverage)
    return head, metrics(pred, raw * scale, y[val]), scale


def mean_predictor_mae(data: Prepared, cfg: BandGapTrainConfig) -> float:
    y = data.rows.band_gap.to_numpy()
    train = data.rows.split.isin(cfg.splits).to_numpy()
    val = (data.rows.split == "val").to_numpy()
    return float(np.abs(y[val] - y[train].mean()).mean())


def save(
    data: Prepared, cfg: BandGapTrainConfig, head: bg.Ensemble, val: dict | None, scale: float, seconds: float
) -> None:
    """Checkpoint (half-precision weights) + model.json + README.md in ``cfg.output``."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    prior = merge_prior(data.prior_models) if cfg.use_prior and data.prior_models is not None else None
    state = {"head": head.state(), "prior": None}
    if prior is not None:
        state["prior"] = prior.state()
    with atomic_path(out / bg.WEIGHTS_FILE) as tmp:
        torch.save(state, tmp)
    n_train = int(data.rows.split.isin(cfg.splits).sum())
    old = {}
    if cfg.release:
        old = release_metrics(eval_meta(cfg))
    elif (out / bg.META_FILE).is_file():
        old = json.loads((out / bg.META_FILE).read_text()).get("metrics", {})
    meta: dict[str, Any] = {
        "name": NAME if cfg.use_prior else NAME.replace(" + composition prior", ""),
        "variant": "release" if cfg.release else "eval",
        "layout": bg.LAYOUT,
        "mode": cfg.mode,
        "use_chgnet": cfg.use_chgnet,
        "metal_gap_eV": bg.METAL_GAP,
        "architecture": {
            "members": cfg.members,
            "hidden": cfg.hidden,
            "layers": cfg.layers,
            "dropout": cfg.dropout,
            "inputs": int(head.mean.shape[0]),
            "prior_hidden": cfg.prior_hidden,
            "prior_layers": cfg.prior_layers,
            "prior_folds": cfg.prior_folds if cfg.use_prior else 0,
            "chgnet": "CHGNet 0.3.0 (chgnet wheel)" if cfg.use_chgnet else None,
        },
        "training": {
            "head_splits": list(cfg.splits),
            "head_rows": n_train,
            "tuned_on": "val",
            "excluded_test_formulas": data.n_test_formulas,
            "matbench_rows": data.n_matbench if cfg.use_prior else 0,
            "config": {
                k: v
                for k, v in asdict(cfg).items()
                if k not in ("data", "output", "matbench", "cache", "eval_model", "release")
            },
            "seconds": round(seconds, 1),
        },
        "std_scale": scale,
        "val_metrics": val,
        "metrics": old,
    }
    if cfg.release:
        meta["training"] |= {
            "matbench_test_formulas_kept": True,
            "recipe_and_settings_from": "eval variant (chosen on val there)",
            "tuned_on": "nothing here: settings and std scale reused from the eval variant (tuned on val)",
        }
        meta["std_scale_source"] = f"eval model ({cfg.eval_model.name}), fitted on val there; not refitted"
        meta["warning"] = RELEASE_WARNING
    write_json_atomic(out / bg.META_FILE, meta)
    write_text_atomic(out / "README.md", readme(meta))


# --- entry point ----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> tuple[BandGapTrainConfig, bool]:
    cfg = BandGapTrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m xtalagent.tools.band_gap_train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, default=cfg.data)
    parser.add_argument("--matbench", type=Path, default=cfg.matbench, help="Matbench mp_gap table; 'none' to skip")
    parser.add_argument("-o", "--output", type=Path, default=None, help="default: checkpoints/band_gap(_release)")
    parser.add_argument(
        "--release",
        action="store_true",
        help="release variant: train on train,val,test with test formulas kept (never for a test figure)",
    )
    parser.add_argument("--eval-model", type=Path, default=cfg.eval_model, help="eval model a release reuses")
    parser.add_argument("--cache", type=Path, default=cfg.cache)
    parser.add_argument("--splits", default=",".join(cfg.splits), help="head training splits, e.g. train or train,val")
    parser.add_argument("--mode", choices=("hurdle", "direct"), default=cfg.mode)
    parser.add_argument("--no-prior", action="store_true")
    for name in ("members", "hidden", "layers", "epochs", "prior_epochs", "seed", "threads"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(cfg, name))
    parser.add_argument("--dropout", type=float, default=cfg.dropout)
    parser.add_argument("--lr", type=float, default=cfg.lr)
    parser.add_argument("--compare", action="store_true", help="train every variant, write val figures, save nothing")
    args = parser.parse_args(argv)
    matbench = None if str(args.matbench).lower() == "none" else args.matbench
    cfg = dataclasses.replace(
        cfg,
        data=args.data,
        matbench=matbench,
        output=args.output or (bg.RELEASE_DIR if args.release else bg.DEFAULT_DIR),
        release=args.release,
        eval_model=args.eval_model,
        cache=args.cache,
        splits=tuple(s for s in args.splits.split(",") if s),
        mode=args.mode,
        use_prior=not args.no_prior and matbench is not None,
        members=args.members,
        hidden=args.hidden,
        layers=args.layers,
        epochs=args.epochs,
        prior_epochs=args.prior_epochs,
        seed=args.seed,
        threads=args.threads,
        dropout=args.dropout,
        lr=args.lr,
    )
    if args.release:
        if args.compare:
            raise SystemExit("--compare measures on val: an eval job, not --release")
        cfg = dataclasses.replace(cfg, splits=("train", "val", "test"))
    elif "test" in cfg.splits:
        raise SystemExit("never train on test (a release model, trained on every split: --release)")
    return cfg, args.compare


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg, compare = parse_args(argv)
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    data = prepare(cfg)
    logger.info("prepared in %.0f s", time.perf_counter() - t0)
    if compare:
        table: dict[str, Any] = {"mean_predictor_val_mae": mean_predictor_mae(data, cfg)}
        for name, override in VARIANTS.items():
            if override.get("use_prior") and data.prior is None:
                continue
            variant = dataclasses.replace(cfg, **override)
            t1 = time.perf_counter()
            _, val, scale = train_head(data, variant)
            table[name] = {**(val or {}), "std_scale": scale, "seconds": round(time.perf_counter() - t1, 1)}
            logger.info("%s: %s", name, json.dumps(table[name]))
        write_json_atomic(cfg.cache / "variants.json", table)
        return
    head, val, scale = train_head(data, cfg)
    logger.info("val: %s (std scale %.2f)", json.dumps(val) if val else "none (release: trained on val)", scale)
    save(data, cfg, head, val, scale, time.perf_counter() - t0)
    logger.info("saved %s in %.0f s", cfg.output, time.perf_counter() - t0)
    if cfg.release:
        meta = json.loads((cfg.output / bg.META_FILE).read_text())
        meta["sanity_check"] = sanity_check(cfg.output, cfg)
        write_json_atomic(cfg.output / bg.META_FILE, meta)
        write_text_atomic(cfg.output / "README.md", readme(meta))


if __name__ == "__main__":
    main()
