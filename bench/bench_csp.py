"""CSP benchmark of the structure generator: true constraints of test crystals, both samplers.

Run from the repository root, e.g.

    python bench/bench_csp.py --dataset datasets/perov_5_test.parquet --name perov_5 --sampler pyxtal
    python bench/bench_csp.py --dataset datasets/mp_structures.parquet --split test --name mp_20 \
        --sampler diffusion --checkpoint structure_gen/checkpoints/mp_20.pt

Writes ``bench/results/csp_<name>_<sampler>.json`` (summary; per-crystal RMS values in
``.details.json`` beside it) and prints one line per sampler. 200 random crystals (``--seed 0``)
and k=5 samples by default; ``--binary-ternary`` keeps only 2- and 3-element crystals (the MP-20
subset the PyXtal reference figure was measured on).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from xtalagent.structure_gen.evaluate import EVAL_K, EVAL_N_CRYSTALS, run_eval_csp, summary_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default=None, help="dataset split (default: every row)")
    parser.add_argument("--name", required=True, help="result name, e.g. perov_5 or mp_20")
    parser.add_argument("--sampler", default="both", choices=["pyxtal", "diffusion", "both"])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--n", type=int, default=EVAL_N_CRYSTALS)
    parser.add_argument("--k", type=int, default=EVAL_K)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="diffusion denoising steps (default: sampler's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the diffusion sampler")
    parser.add_argument("--binary-ternary", action="store_true", help="keep only 2- and 3-element crystals")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    samplers = ("pyxtal", "diffusion") if args.sampler == "both" else (args.sampler,)
    for sampler in samplers:
        out = Path("bench/results") / f"csp_{args.name}_{sampler}.json"
        report = run_eval_csp(
            args.dataset,
            args.split,
            (sampler,),
            n=args.n,
            k=args.k,
            seed=args.seed,
            checkpoint=args.checkpoint,
            output=out,
            n_elements=(2, 3) if args.binary_ternary else None,
            steps=args.steps,
            meta={"command": "python bench/bench_csp.py " + " ".join(sys.argv[1:]), "threads": args.threads},
        )
        print(summary_line(f"{args.name} {sampler}", report["results"][sampler]), f"-> {out}", flush=True)


if __name__ == "__main__":
    main()
