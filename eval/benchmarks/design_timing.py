"""Wall time of the README's main job: ``xtalagent design PROMPT -n 10`` on the embedded defaults.

Runs the real command body (offline parser, embedded constraint model, default sampler, CHGNet or
MatterSim, default settings) into a fresh folder and records the total and per-stage seconds, the
load average (other jobs on the machine slow it down) and what was found.

    python bench/bench_design.py            # -> bench/results/design_tio.json
    python bench/bench_design.py --prompt "..." --n 10 --name my_case
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PROMPT = "A stable Ti-O compound with a band gap near 3 eV"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--name", default="design_tio")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_design"))
    args = parser.parse_args()

    from xtalagent.agent.commands import design_command

    shutil.rmtree(args.out, ignore_errors=True)  # a cold run: no cached stages
    load_before = os.getloadavg()
    start = time.perf_counter()
    run = design_command(args.prompt, args.out, n=args.n)
    wall = time.perf_counter() - start
    relaxed = [r for r in run.rows if r.get("design_rank") is not None]
    result = {
        "what": "wall time of `xtalagent design PROMPT -n N` on the embedded defaults, cold (fresh folder)",
        "prompt": args.prompt,
        "n": args.n,
        "wall_seconds": round(wall, 1),
        "stage_seconds": run.times.seconds,
        "bar_seconds": 120,
        "cpu_count": os.cpu_count(),
        "torch_threads": __import__("torch").get_num_threads(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "request": run.request.model_dump(exclude_defaults=True),
        "constraints": [c.label() for c in run.constraints],
        "sampler": run.sampler_note,
        "prerelax": run.prerelax_note,
        "n_generated_ok": sum(s.ok for s in run.structures),
        "n_relaxed": len(relaxed),
        "n_stable": sum(bool(r.get("stable")) for r in relaxed),
        "mean_relax_steps": round(sum(r.get("steps") or 0 for r in relaxed) / max(len(relaxed), 1), 1),
        "best": [
            {
                k: r.get(k)
                for k in (
                    "id",
                    "formula",
                    "final_spacegroup",
                    "e_form",
                    "e_hull",
                    "band_gap",
                    "band_gap_std",
                    "meets_all_checked",
                )
            }  # fmt: skip
            for r in relaxed[:3]
        ],
        "n_with_band_gap": sum(r.get("band_gap") is not None for r in relaxed),
        "n_meeting_every_checked_wish": sum(bool(r.get("meets_all_checked")) for r in relaxed),
        "known_phases": [
            {
                k: r.get(k)
                for k in (
                    "source",
                    "formula",
                    "final_spacegroup",
                    "e_hull",
                    "db_e_hull",
                    "band_gap",
                    "db_band_gap",
                    "meets_all_checked",
                )
            }  # fmt: skip
            for r in run.known_rows
        ],
        "band_gap_model": run.band_gap_model,
        "variant": run.settings.variant,
        "potential": run.screen_summary.get("provenance"),
        "command": f'python bench/bench_design.py --prompt "{args.prompt}" --n {args.n}',
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("wall_seconds", "stage_seconds", "load_average_before")}, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
