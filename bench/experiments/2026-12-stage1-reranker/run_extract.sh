#!/bin/bash
# Fill cache/ for the four requests the bars are set on (one process at a time, one thread).
cd "$(dirname "$0")/../../.."
R=bench/experiments/2026-12-stage1-reranker
for pattern in formula elements; do
  for prop in band_gap formation_energy; do
    OMP_NUM_THREADS=1 python $R/extract_features.py --pattern $pattern --property $prop
  done
done
