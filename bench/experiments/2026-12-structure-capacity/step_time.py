"""Training throughput of candidate model sizes (issue #24: "measure before you spend hours").

For each (layers, hidden, Fourier features): seconds per optimiser step at batch 64 on MP-20
`train` crystals (one torch thread), the median of ``--steps`` steps after 2 warm-up steps, and
the hours 3,000 and 30,000 steps would take at that rate. Same batches for every size.

Run: OMP_NUM_THREADS=1 python bench/experiments/2026-12-structure-capacity/step_time.py
     -> bench/experiments/2026-12-structure-capacity/step_time.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path

import torch

from xtalagent.structure_gen.featurize import collate
from xtalagent.structure_gen.settings import DiffusionTrainConfig
from xtalagent.structure_gen.train import build_model, load_examples

HERE = Path(__file__).resolve().parent
SIZES = [(4, 128, 16), (6, 256, 64), (6, 512, 128)]  # shipped; middle; DiffCSP++'s 6 x 512, 128 Fourier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--data", default="datasets/mp_structures.parquet")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = DiffusionTrainConfig(data=args.data, train_split="train", val_split="val")
    examples, _, _ = load_examples(cfg)
    rng = random.Random(0)
    batches = [collate(rng.sample(examples, 64)) for _ in range(args.steps + 2)]
    rows = []
    for layers, hidden, fourier in SIZES:
        cfg = DiffusionTrainConfig(data=args.data, layers=layers, hidden=hidden, n_fourier=fourier)
        torch.manual_seed(0)
        model = build_model(cfg, examples)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        seconds = []
        for i, batch in enumerate(batches):
            start = time.perf_counter()
            loss, _ = model.loss(batch, prop_dropout=0.5)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i >= 2:
                seconds.append(time.perf_counter() - start)
        per_step = statistics.median(seconds)
        row = {
            "layers": layers,
            "hidden": hidden,
            "n_fourier": fourier,
            "parameters_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "seconds_per_step": round(per_step, 3),
            "hours_for_3000_steps": round(3000 * per_step / 3600, 2),
            "hours_for_30000_steps": round(30000 * per_step / 3600, 1),
        }
        print(row, flush=True)
        rows.append(row)
    out = {
        "command": "OMP_NUM_THREADS=1 python bench/experiments/2026-12-structure-capacity/step_time.py",
        "batch": 64,
        "torch_threads": 1,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "note": "2 shared cores; a training run and another job were running (relative figures hold better)",
        "rows": rows,
    }
    (HERE / "step_time.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
