#!/usr/bin/env bash
# Rebuild the embedded constraint model (finetune/checkpoints/default) from the MP train split.
# Needs ../shared/data (or XTALAGENT_SHARED_DATA). About 100 min on 2 idle CPU cores
# (base ~10 min, wyckoff adapter ~26 min, sg adapter ~61 min, one torch thread each).
# finetune also writes the stage-1 voters beside the adapters: the neighbour prior (neighbours.json.gz:
# the training crystals), the composition classifier (group_classifier.pt, ~8 min on 2 cores) and the
# ratio classifier of elements-only requests (ratio_classifier.pt, ~6 min on one core).
set -euo pipefail
cd "$(dirname "$0")/.."
xtalagent bench data-build --dataset mp              # datasets/mp_structures.parquet (cached if built)
OUT=runs/constraints-default
# base LM (2 epochs of crystal text, learning rate 2e-3) + the wyckoff adapter (1 epoch, 2e-3)
xtalagent finetune datasets/mp_structures.parquet -o "$OUT" --stages wyckoff --epochs 1 --base-epochs 2 --threads 1
# the sg adapter on that base: 6 epochs at 7e-4 (2e-3 plateaued), 4 prompts per crystal
# (see finetune/checkpoints/default/README.md)
xtalagent finetune datasets/mp_structures.parquet -o "$OUT" --stages sg --epochs 6 --learning-rate 7e-4 --variants-per-record 4 --threads 1
python -m xtalagent.finetune.package "$OUT" finetune/checkpoints/default
