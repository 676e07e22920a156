#!/bin/sh
# Training-free sampler levers on seeded MP val crystals (issue #24), one small shard at a time.
# usage: sh bench/experiments/2026-12-structure-levers/run_levers.sh   (from the repository root)
# Each run: 100 (or 50) val crystals, seed 0, true constraints, one sample, mp_20.pt, split into
# shards of 25 (10 at 1000 steps) so that no process runs long; then merged and compared.
set -e
OUT=bench/experiments/2026-12-structure-levers
run() {  # NAME N SHARDS [bench_csp options...]
  name=$1; n=$2; m=$3; shift 3
  B="python bench/bench_csp.py --dataset datasets/mp_structures.parquet --split val --sampler diffusion \
     --checkpoint structure_gen/checkpoints/mp_20.pt --n $n --k 1 --seed 0 --threads 1 --out-dir $OUT --name $name"
  i=0
  while [ $i -lt $m ]; do
    [ -f $OUT/csp_${name}_diffusion.shard${i}of${m}.json ] || $B --shard $i/$m "$@"
    i=$((i+1))
  done
  $B --merge-shards $m
}
export OMP_NUM_THREADS=1
run val100_s200_t05        100 4 --steps 200 --temperature 0.5                  # design's setting (baseline)
run val100_s200_t05_nocorr 100 4 --steps 200 --temperature 0.5 --no-corrector   # predictor only
run val100_s200_t025       100 4 --steps 200 --temperature 0.25                 # sharper
run val100_s200_t05_lr3e-5 100 4 --steps 200 --temperature 0.5 --step-lr 3e-5   # 3x corrector step
run val100_s100_t05        100 4 --steps 100 --temperature 0.5
run val100_s50_t05         100 4 --steps 50 --temperature 0.5
run val50_s1000_t05         50 5 --steps 1000 --temperature 0.5                 # the sample default
python $OUT/compare.py val100_s200_t05
