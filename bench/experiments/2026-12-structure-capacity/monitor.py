"""The training monitor (64 seeded MP-20 ``val`` crystals, one sample, 100 denoising steps; the
numbers ``structures train`` logs as "validation") for any checkpoint, so that a new run's monitor
can be set beside the shipped model's on the very same crystals and seed.

Run: OMP_NUM_THREADS=1 python bench/experiments/2026-12-structure-capacity/monitor.py CKPT [CKPT...]
"""

from __future__ import annotations

import json
import sys

import torch

from xtalagent.structure_gen.settings import DiffusionTrainConfig
from xtalagent.structure_gen.train import load_examples, load_model, validation_match_rate

if __name__ == "__main__":
    torch.set_num_threads(1)
    cfg = DiffusionTrainConfig(data="datasets/mp_structures.parquet", train_split="train", val_split="val")
    _, val_records, _ = load_examples(cfg)
    for path in sys.argv[1:]:
        print(json.dumps({"checkpoint": path, **validation_match_rate(load_model(path), val_records, cfg)}), flush=True)
