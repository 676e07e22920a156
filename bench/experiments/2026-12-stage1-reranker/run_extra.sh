#!/bin/bash
# After run_extract.sh: the extra formula voters (extra_voters.py), one process, one thread.
cd "$(dirname "$0")/../../.."
R=bench/experiments/2026-12-stage1-reranker
while pgrep -f run_extract.sh > /dev/null; do sleep 10; done
for prop in band_gap formation_energy; do
  OMP_NUM_THREADS=1 python $R/extra_voters.py --property $prop
done
