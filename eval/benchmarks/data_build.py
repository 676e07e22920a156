"""``xtalagent data build`` on the shared datasets: labelled fraction and wall time.

    xtalagent bench data-build [--force]      # -> bench/results/data_build.json

Builds ``datasets/mp_structures.parquet`` (MP-20 with its splits, which every constraint and
structure benchmark reads) and the Perov-5 val/test Parquet files from ``../shared/data``
(``--shared-data`` or ``XTALAGENT_SHARED_DATA`` elsewhere). A cached build is reused unless
``--force``; the result says which.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xtalagent.eval.benchmarks.paths import results_dir, shared_file
from xtalagent.eval.benchmarks.results import DEFAULT_VARIANT, result_name, write_result

logger = logging.getLogger(__name__)

#: Shared-data files built, by dataset name; each becomes ``<out_dir>/<dir>_<stem>.parquet``.
DATASETS: dict[str, tuple[str, ...]] = {
    "mp": ("mp/structures.csv.gz",),
    "perov_5": ("perov_5/val.csv.gz", "perov_5/test.csv.gz"),
}


def output_name(relative: str) -> str:
    """``mp/structures.csv.gz`` -> ``mp_structures.parquet`` (the names the other benchmarks read)."""
    return relative.replace("/", "_").split(".")[0] + ".parquet"


def run_data_build(
    *,
    datasets: Sequence[str] = tuple(DATASETS),
    force: bool = False,
    limit: int | None = None,
    workers: int | None = None,
    out_dir: Path = Path("datasets"),
    shared: Path | None = None,
    results: Path | None = None,
    variant: str = DEFAULT_VARIANT,
    run: dict[str, Any],
) -> tuple[dict[str, Any], Path]:
    """Build each dataset's files; return the per-file report and the JSON path."""
    from xtalagent.data import build_dataset
    from xtalagent.errors import InputError

    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise InputError(f"unknown dataset {unknown[0]!r}: choose from {', '.join(DATASETS)}")
    sources = [(rel, shared_file(rel, shared=shared)) for name in datasets for rel in DATASETS[name]]
    result: dict[str, Any] = {"limit": limit, "datasets": {}}
    for rel, src in sources:
        out = Path(out_dir) / output_name(rel)
        start = time.perf_counter()
        report = build_dataset([src], out, force=force, limit=limit, workers=workers, progress=False)
        wall = time.perf_counter() - start
        result["datasets"][rel] = {
            "input": rel,
            "output": str(out),
            "n_read": report.n_read,
            "n_labelled": report.n_labelled,
            "labelled_fraction": round(report.labelled_fraction, 4),
            "skipped_by_reason": report.skipped_by_reason,
            "labelling_seconds": report.seconds,
            "wall_seconds": round(wall, 1),
            "workers": report.workers,
            "cached": report.cached,
        }
        logger.info("%s: %d/%d labelled -> %s", rel, report.n_labelled, report.n_read, out)
    path = write_result(results_dir(results) / f"{result_name('data_build', variant)}.json", result, run=run)
    return result, path
