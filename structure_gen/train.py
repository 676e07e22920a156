"""Train the symmetry-constrained diffusion model: one plain PyTorch loop (nanoGPT style).

Everything configurable lives in :class:`DiffusionTrainConfig` (:mod:`xtalagent.structure_gen.settings`);
a checkpoint (``ckpt.pt``) holds model, optimiser, step, both configs and the history, so
``resume=True`` continues exactly where a run stopped. ``best.pt`` is a slim copy (weights + model
config) of the checkpoint with the best validation match rate, which is what samplers load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from xtalagent.errors import InputError
from xtalagent.structure_gen.featurize import DiffusionExample, collate, example_from_record
from xtalagent.structure_gen.model import CrystalDiffusion, ModelConfig, lattice_stats
from xtalagent.structure_gen.settings import DiffusionTrainConfig

logger = logging.getLogger(__name__)


def _hash_fraction(key: str) -> float:
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def load_examples(cfg: DiffusionTrainConfig) -> tuple[list[DiffusionExample], list, list]:
    """Training examples, validation records and the records behind the training examples."""
    from xtalagent.data import load_records

    path = Path(cfg.data)
    if not path.exists():
        raise InputError(f"dataset {path} not found (build it with 'xtalagent data build')")
    records = load_records(path, split=cfg.train_split) if cfg.train_split else load_records(path)
    if cfg.val_split:
        val = load_records(path, split=cfg.val_split)
        train = records
    else:
        val = [r for r in records if _hash_fraction(r.id) < cfg.val_fraction]
        train = [r for r in records if _hash_fraction(r.id) >= cfg.val_fraction]
    if "test" in (cfg.train_split, cfg.val_split) or (cfg.train_split and any(r.split == "test" for r in train)):
        raise InputError("refusing to train or validate on the 'test' split (it is for evaluation only)")
    train = [r for r in train if r.natoms <= cfg.max_atoms]
    examples = []
    for r in train:
        try:
            examples.append(example_from_record(r))
        except Exception as exc:  # a record the bookkeeping cannot map is reported, not fatal
            logger.warning("skip %s: %s", r.id, exc)
    if not examples:
        raise InputError(f"no usable training crystals in {path}")
    return examples, [r for r in val if r.natoms <= cfg.max_atoms], train


def build_model(cfg: DiffusionTrainConfig, examples: list[DiffusionExample]) -> CrystalDiffusion:
    lat = np.stack([e.lattice for e in examples])  # type: ignore[misc]  # training examples carry their lattice
    mask = np.stack([e.lattice_mask for e in examples])
    mean, std = lattice_stats(lat, mask)
    mcfg = ModelConfig(
        hidden=cfg.hidden,
        layers=cfg.layers,
        n_fourier=cfg.n_fourier,
        timesteps=cfg.timesteps,
        step_lr=cfg.step_lr,
        lattice_mean=mean,
        lattice_std=std,
    )
    return CrystalDiffusion(mcfg)


def save_slim(model: CrystalDiffusion, path: Path, extra: dict | None = None) -> None:
    """Weights (without recomputable buffers) + model config: what ships in the package."""
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(("betas", "alphas", "sigma"))}
    tmp = path.with_suffix(".tmp")
    torch.save({"model_config": model.config_dict(), "state_dict": state, "meta": extra or {}}, tmp)
    tmp.replace(path)


def load_model(path: str | Path) -> CrystalDiffusion:
    """A model from a slim or full checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    cfg = ModelConfig(**ckpt["model_config"])
    model = CrystalDiffusion(cfg)
    model.load_state_dict(ckpt.get("state_dict") or ckpt["model"], strict=False)
    model.eval()
    return model


def validation_match_rate(model: CrystalDiffusion, records: list, cfg: DiffusionTrainConfig, seed: int = 0) -> dict:
    """Match rate and mean RMSE of one sample per validation crystal (no retries, no filtering)."""
    from xtalagent.structure_gen.samplers import DiffusionSampler

    if not records:
        return {"match_rate": float("nan"), "rmse": float("nan"), "n": 0}
    from xtalagent.structure_gen.matching import matcher, rms_distance

    rng = random.Random(seed)
    subset = rng.sample(records, min(cfg.eval_samples, len(records)))
    sampler = DiffusionSampler(model=model, seed=seed, steps=cfg.eval_steps)
    structures = sampler.sample_raw([r.constraint() for r in subset])
    sm = matcher()
    rms = [rms_distance(s, r.structure(), sm) if s is not None else None for s, r in zip(structures, subset)]
    hits = [x for x in rms if x is not None]
    return {
        "match_rate": len(hits) / len(subset),
        "rmse": float(np.mean(hits)) if hits else float("nan"),
        "n": len(subset),
    }


def weight_average(model: CrystalDiffusion, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of ``model``'s weights (torch's ``AveragedModel``), or None when
    ``decay`` is 0. Buffers (the noise schedule) are copied, not averaged."""
    if not decay:
        return None
    if not 0 < decay < 1:
        raise InputError(f"ema_decay must lie in (0, 1), not {decay}")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))


def train(cfg: DiffusionTrainConfig) -> Path:
    """Run (or resume) training; returns the path of the best slim checkpoint."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "ckpt.pt"
    examples, val_records, _ = load_examples(cfg)
    logger.info("%d training crystals, %d validation crystals", len(examples), len(val_records))
    model = build_model(cfg, examples)
    if cfg.init_from and not Path(cfg.init_from).exists():
        raise InputError(f"--init-from checkpoint {cfg.init_from} not found")
    if cfg.init_from and not (cfg.resume and ckpt_path.exists()):
        # continue training a shipped model: its architecture and lattice statistics come with it
        model = load_model(cfg.init_from)
        model.train()
        logger.info("initialised from %s", cfg.init_from)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best = 0, -1.0
    resumed_ema = None
    if cfg.resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model = CrystalDiffusion(ModelConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        opt.load_state_dict(ckpt["optimizer"])
        step, best = ckpt["step"], ckpt.get("best", -1.0)
        cfg.history = ckpt.get("history", [])
        resumed_ema = ckpt.get("ema")
        logger.info("resumed from %s at step %d (best val match %.3f)", ckpt_path, step, best)
    ema = weight_average(model, cfg.ema_decay)
    if ema is not None and resumed_ema is not None:
        ema.load_state_dict(resumed_ema)
    served: CrystalDiffusion = ema.module if ema is not None else model  # type: ignore[assignment]  # the weights validated and saved
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("model: %.2f M parameters, config %s...", n_params / 1e6, json.dumps(model.config_dict())[:200])

    def save_full() -> None:
        state = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "best": best,
            "model_config": model.config_dict(),
            "train_config": asdict(cfg),
            "history": cfg.history,
            **({"ema": ema.state_dict()} if ema is not None else {}),
        }
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(ckpt_path)

    start = last_ckpt = time.time()
    order: list[int] = []
    running: dict[str, float] = {}
    model.train()
    while step < cfg.max_steps and (time.time() - start) / 60 < cfg.max_minutes:
        if len(order) < cfg.batch_size:
            order += random.sample(range(len(examples)), len(examples))
        idx, order = order[: cfg.batch_size], order[cfg.batch_size :]
        batch = collate([examples[i] for i in idx])
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps)
        lr *= 0.5 * (1 + math.cos(math.pi * min(1.0, step / cfg.max_steps))) * 0.9 + 0.1
        for group in opt.param_groups:
            group["lr"] = lr
        loss, parts = model.loss(batch, prop_dropout=cfg.prop_dropout)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if ema is not None:
            ema.update_parameters(model)
        step += 1
        for k, v in {"loss": float(loss.detach()), **parts}.items():
            running[k] = 0.98 * running.get(k, v) + 0.02 * v
        if step % cfg.log_every == 0:
            elapsed = time.time() - start
            logger.info(
                "step %d loss %.4f (lattice %.4f, coord %.4f) lr %.2e %.1f min",
                step,
                running["loss"],
                running["lattice"],
                running["coord"],
                lr,
                elapsed / 60,
            )
        if cfg.eval_every and step % cfg.eval_every == 0:
            served.eval()
            t0 = time.time()
            val = validation_match_rate(served, val_records, cfg)
            model.train()
            entry = {"step": step, **val, "seconds": round(time.time() - t0, 1)}
            cfg.history.append(entry)
            logger.info("validation: %s", json.dumps(entry))
            if val["match_rate"] >= best:
                best = val["match_rate"]
                save_slim(served, out / "best.pt", {"step": step, "val": val, "data": cfg.data})
        if time.time() - last_ckpt > cfg.ckpt_minutes * 60:
            save_full()
            save_slim(served, out / "last.pt", {"step": step, "data": cfg.data})
            last_ckpt = time.time()
    save_full()
    save_slim(served, out / "last.pt", {"step": step, "data": cfg.data})
    if not (out / "best.pt").exists():
        save_slim(served, out / "best.pt", {"step": step, "data": cfg.data})
    logger.info("done at step %d; checkpoints in %s", step, out)
    return out / "best.pt"


def config_from_args(**kwargs) -> DiffusionTrainConfig:
    """A DiffusionTrainConfig from keyword overrides, rejecting unknown names clearly."""
    names = {f.name for f in fields(DiffusionTrainConfig)}
    unknown = set(kwargs) - names
    if unknown:
        raise InputError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    return DiffusionTrainConfig(**{k: v for k, v in kwargs.items() if v is not None})


if __name__ == "__main__":  # python -m xtalagent.structure_gen.train key=value ...
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # progress lines, as the CLI shows them
    overrides: dict[str, object] = {}
    for arg in sys.argv[1:]:
        key, _, value = arg.partition("=")
        typ = {f.name: f.type for f in fields(DiffusionTrainConfig)}[key]
        if "bool" in str(typ):
            overrides[key] = value.lower() in ("1", "true", "yes")
        elif "int" in str(typ) and "float" not in str(typ) and "None" not in str(typ):
            overrides[key] = int(value)
        elif "float" in str(typ):
            overrides[key] = float(value)
        else:
            overrides[key] = value
    train(config_from_args(**overrides))
