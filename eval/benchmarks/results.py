"""Benchmark result files that say what ran, where, and as which variant.

Before this module a result's name carried its variant as a suffix (``_clfw2_``, ``_fast_scorer``)
explained only in prose elsewhere. Every result written here carries a ``run`` block: the
benchmark, the variant name and what it changes, the command and its options, the machine (cores,
load, torch threads: the machine is often shared, and timings mean little without it) and the git
commit, so the file explains itself.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from xtalagent.io import write_json_atomic

#: The variant of a run that changes nothing (its file name gets no suffix).
DEFAULT_VARIANT = "default"


def machine_info() -> dict[str, Any]:
    """Cores, load average, Python and torch threads of this machine, now."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    torch = sys.modules.get("torch")  # only if the benchmark loaded it: importing torch costs seconds
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def git_commit() -> str | None:
    """The checkout's commit (with ``+dirty`` when files differ from it), or None outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def result_name(stem: str, variant: str = DEFAULT_VARIANT) -> str:
    """``stem`` for the default variant, ``stem_<variant>`` otherwise (no extension)."""
    return stem if variant == DEFAULT_VARIANT else f"{stem}_{variant}"


def run_block(
    *,
    benchmark: str,
    variant: str = DEFAULT_VARIANT,
    note: str | None = None,
    command: str | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What :func:`write_result` stores under ``run``."""
    return {
        "benchmark": benchmark,
        "variant": variant,
        "variant_note": note,
        "command": command,
        "options": options or {},
        "machine": machine_info(),
        "git_commit": git_commit(),
        "finished_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write_result(path: Path, result: dict[str, Any], *, run: dict[str, Any]) -> Path:
    """Write ``result`` with ``run`` (see :func:`run_block`) as its ``run`` entry, atomically; return ``path``."""
    write_json_atomic(Path(path), {"run": run, **{k: v for k, v in result.items() if k != "run"}})
    return Path(path)
