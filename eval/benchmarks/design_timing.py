"""Wall time of the README's main job: ``xtalagent design PROMPT -n 10`` on the embedded defaults.

Runs the real command body (offline parser, embedded constraint model, default sampler, CHGNet or
MatterSim, default settings) into a fresh folder and records the total and per-stage seconds, the
load average (other jobs on the machine slow it down) and what was found.

    xtalagent bench design-timing                       # -> bench/results/design_tio.json
    xtalagent bench design-timing --prompt "..." -n 10 --name my_case
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from xtalagent.eval.benchmarks.paths import results_dir
from xtalagent.eval.benchmarks.results import write_result

#: The README's main job.
PROMPT = "A stable Ti-O compound with a band gap near 3 eV"


def run_design_timing(
    *,
    prompt: str = PROMPT,
    n: int = 10,
    name: str = "design_tio",
    work: Path = Path("runs/bench_design"),
    results: Path | None = None,
    run: dict[str, Any],
) -> tuple[dict[str, Any], Path]:
    """Run ``xtalagent design PROMPT -n N`` cold in ``work``; return the timing result and its path."""
    from xtalagent.agent.commands import design_command

    shutil.rmtree(work, ignore_errors=True)  # a cold run: no cached stages
    load_before = os.getloadavg()
    start = time.perf_counter()
    design = design_command(prompt, work, n=n)
    wall = time.perf_counter() - start
    relaxed = [r for r in design.rows if r.get("design_rank") is not None]
    result = {
        "what": "wall time of `xtalagent design PROMPT -n N` on the embedded defaults, cold (fresh folder)",
        "prompt": prompt,
        "n": n,
        "wall_seconds": round(wall, 1),
        "stage_seconds": design.times.seconds,
        "bar_seconds": 120,
        "cpu_count": os.cpu_count(),
        "torch_threads": __import__("torch").get_num_threads(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "request": design.request.model_dump(exclude_defaults=True),
        "constraints": [c.label() for c in design.constraints],
        "sampler": design.sampler_note,
        "prerelax": design.prerelax_note,
        "n_generated_ok": sum(s.ok for s in design.structures),
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
            for r in design.known_rows
        ],
        "band_gap_model": design.band_gap_model,
        "variant": design.settings.variant,
        "potential": design.screen_summary.get("provenance"),
    }
    path = write_result(results_dir(results) / f"{name}.json", result, run=run)
    return result, path
