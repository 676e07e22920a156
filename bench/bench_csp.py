"""CSP benchmark of the structure generator: true constraints of test crystals, both samplers.

Run from the repository root, e.g.

    python bench/bench_csp.py --dataset datasets/perov_5_test.parquet --name perov_5 --sampler pyxtal
    python bench/bench_csp.py --dataset datasets/mp_structures.parquet --split test --name mp_20 \
        --sampler diffusion --checkpoint structure_gen/checkpoints/mp_20.pt

Writes ``bench/results/csp_<name>_<sampler>.json`` (summary; per-crystal RMS values in
``.details.json`` beside it) and prints one line per sampler. 200 random crystals (``--seed 0``)
and k=5 samples by default; ``--binary-ternary`` keeps only 2- and 3-element crystals (the MP-20
subset the PyXtal reference figure was measured on). ``--shard I/M`` runs every M-th selected
crystal from the I-th (one process per core); ``--merge-shards M`` then writes the whole report.

Without ``--checkpoint`` the diffusion sampler is what users get by default: each crystal goes to
the shipped model whose training domain holds it (``structure_gen/routing.py``: Perov-5 cells to
``perov_5.pt``, everything else to ``mp_20.pt``). Sampler levers for tuning on `val`:
``--steps``, ``--temperature``, ``--no-corrector``, ``--step-lr``; subsets: ``--crystal-systems``,
``--routed-to perov_5.pt``; ``--out-dir`` for experiment folders. Every report splits match@1 by
crystal system.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from xtalagent.structure_gen.evaluate import EVAL_K, EVAL_N_CRYSTALS, merge_shards, run_eval_csp, summary_line
from xtalagent.structure_gen.samplers import DIFFUSION_TEMPERATURE
from xtalagent.structure_gen.settings import SamplerSettings


def routed_to(name: str):
    """A record filter: the crystals whose true constraint the default router gives to ``name``."""
    from xtalagent.structure_gen.routing import shipped_router

    router = shipped_router()
    if router is None:
        raise SystemExit("no shipped specialist checkpoints to route to")
    return lambda record: router.checkpoint_for(record.constraint()).name == name


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
    parser.add_argument(
        "--temperature", type=float, default=DIFFUSION_TEMPERATURE, help="diffusion noise scale (1: exact reverse SDE)"
    )
    parser.add_argument(
        "--shard", default=None, help="I/N: evaluate every N-th of the selected crystals from the I-th (0-based)"
    )
    parser.add_argument(
        "--merge-shards", type=int, default=None, metavar="M", help="merge the M shard reports of --name, run nothing"
    )
    parser.add_argument(
        "--prototypes",
        type=int,
        default=SamplerSettings.prototypes,
        help="samples per crystal from known train prototypes before the diffusion model (0: the model alone)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the diffusion sampler")
    parser.add_argument("--binary-ternary", action="store_true", help="keep only 2- and 3-element crystals")
    parser.add_argument("--out-dir", type=Path, default=Path("bench/results"), help="folder for the reports")
    parser.add_argument("--no-corrector", action="store_true", help="predictor only (no Langevin corrector step)")
    parser.add_argument("--step-lr", type=float, default=None, help="corrector step size (default: checkpoint's)")
    parser.add_argument("--crystal-systems", default=None, help="comma-separated, e.g. triclinic,monoclinic")
    parser.add_argument(
        "--routed-to", default=None, help="keep only crystals the default sampler sends to this shipped checkpoint"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.merge_shards:
        for sampler in ("pyxtal", "diffusion") if args.sampler == "both" else (args.sampler,):
            base = args.out_dir / f"csp_{args.name}_{sampler}"
            parts = [f"{base}.shard{i}of{args.merge_shards}.json" for i in range(args.merge_shards)]
            report = merge_shards(parts, f"{base}.json")
            print(summary_line(f"{args.name} {sampler}", report["results"][sampler]), f"-> {base}.json", flush=True)
        return
    samplers = ("pyxtal", "diffusion") if args.sampler == "both" else (args.sampler,)
    shard = tuple(int(x) for x in args.shard.split("/")) if args.shard else None
    suffix = f".shard{shard[0]}of{shard[1]}" if shard else ""
    for sampler in samplers:
        out = args.out_dir / f"csp_{args.name}_{sampler}{suffix}.json"
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
            temperature=args.temperature,
            shard=shard,
            corrector=not args.no_corrector,
            step_lr=args.step_lr,
            prototypes=args.prototypes,
            crystal_systems=tuple(args.crystal_systems.split(",")) if args.crystal_systems else None,
            keep=routed_to(args.routed_to) if args.routed_to else None,
            meta={"command": "python bench/bench_csp.py " + " ".join(sys.argv[1:]), "threads": args.threads},
        )
        print(summary_line(f"{args.name} {sampler}", report["results"][sampler]), f"-> {out}", flush=True)


if __name__ == "__main__":
    main()
