#!/usr/bin/env bash
# Rebuild the embedded constraint model (finetune/checkpoints/default) from the MP train split.
# Needs ../shared/data (or XTALAGENT_SHARED_DATA). About 45 min on 2 idle CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
python bench/bench_data_build.py                      # datasets/mp_structures.parquet (cached if built)
OUT=runs/constraints-default
# base LM (2 epochs of crystal text) + the sg adapter, then the wyckoff adapter (both resumable)
xtalagent finetune datasets/mp_structures.parquet -o "$OUT" --stages sg --epochs 1.5 --base-epochs 2 --threads 1
xtalagent finetune datasets/mp_structures.parquet -o "$OUT" --stages wyckoff --epochs 1 --threads 1
python -m xtalagent.finetune.package "$OUT" finetune/checkpoints/default
