"""How far a larger constraint language model goes on this CPU (issue #22: "measure tokens/s first").

For Qwen2-architecture models of growing size with the embedded 220-token vocabulary: training
tokens/s (forward + backward + AdamW step, batch 16 x 160 tokens, about an sg prompt plus answer)
and scoring tokens/s (forward only, batch 64 x 160), one torch thread, median of ``--steps`` steps
after one warm-up. The shipped recipe's sg adapter took 61 min for 6 epochs with the 0.88 M model
(checkpoint README), so each size's hours for that recipe are 61 min x (shipped tokens/s / its
tokens/s); a LoRA adapter trains no faster per token than the full model here (the forward and
backward through the frozen base dominate).

Run: OMP_NUM_THREADS=1 python bench/experiments/2026-12-constraint-lm-size/throughput.py
     -> bench/experiments/2026-12-constraint-lm-size/throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

HERE = Path(__file__).resolve().parent
#: (layers, hidden): the shipped size, then 4x, 16x and roughly Qwen2.5-0.5B's width and depth
SIZES = [(4, 128), (8, 256), (12, 512), (24, 896)]
VOCAB, LENGTH = 220, 160
SHIPPED_SG_RECIPE_MINUTES = 61.0


def timed(step, n: int) -> float:
    step()
    seconds = []
    for _ in range(n):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def measure(layers: int, hidden: int, steps: int) -> dict:
    """Training and scoring tokens/s of one randomly initialised size."""
    heads = max(1, hidden // 64)
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=3 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
    )
    model = Qwen2ForCausalLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    train_batch = torch.randint(4, VOCAB, (16, LENGTH))
    score_batch = torch.randint(4, VOCAB, (64, LENGTH))

    def train_step() -> None:
        loss = model(input_ids=train_batch, labels=train_batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def score_step() -> None:
        with torch.inference_mode():
            model(input_ids=score_batch)

    train_s = timed(train_step, steps)
    score_s = timed(score_step, steps)
    return {
        "layers": layers,
        "hidden": hidden,
        "parameters_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "train_tokens_per_s": round(train_batch.numel() / train_s),
        "score_tokens_per_s": round(score_batch.numel() / score_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = []
    for layers, hidden in SIZES:
        rows.append(measure(layers, hidden, args.steps))
        print(rows[-1], flush=True)
    base = rows[0]["train_tokens_per_s"]
    for row in rows:
        row["sg_recipe_hours_one_core"] = round(SHIPPED_SG_RECIPE_MINUTES * base / row["train_tokens_per_s"] / 60, 1)
        row["scoring_slowdown_vs_shipped"] = round(rows[0]["score_tokens_per_s"] / row["score_tokens_per_s"], 1)
    out = {
        "command": "OMP_NUM_THREADS=1 python bench/experiments/2026-12-constraint-lm-size/throughput.py",
        "torch_threads": 1,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "note": "2 shared cores; a diffusion training run held the other core",
        "rows": rows,
    }
    (HERE / "throughput.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
