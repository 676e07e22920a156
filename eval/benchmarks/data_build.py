"""Measure `xtalagent data build` on the shared datasets: labelled fraction and wall time.

Run from the repository root:  python bench/bench_data_build.py [--force]
Writes bench/results/data_build.json and prints one line per dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from xtalagent import config
from xtalagent.data import build_dataset

DATASETS = {
    "mp": ["mp/structures.csv.gz"],
    "perov_5": ["perov_5/val.csv.gz", "perov_5/test.csv.gz"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.add_argument("--out-dir", type=Path, default=Path("datasets"))
    args = parser.parse_args()
    shared = config.SHARED_DATA_DIR
    if not shared.exists():
        raise SystemExit(f"shared data not found at {shared} (set XTALAGENT_SHARED_DATA)")
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        "datasets": {},
    }
    for files in DATASETS.values():
        for rel in files:
            src = shared / rel
            out = args.out_dir / (rel.replace("/", "_").split(".")[0] + ".parquet")
            start = time.perf_counter()
            report = build_dataset([src], out, force=args.force)
            wall = time.perf_counter() - start
            entry = {
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
            results["datasets"][rel] = entry
            print(
                f"{rel}: {report.n_labelled}/{report.n_read} labelled "
                f"({100 * report.labelled_fraction:.2f}%), {wall:.0f} s wall, {report.workers} workers"
                + (" (cached)" if report.cached else "")
            )
    target = Path("bench/results/data_build.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {target}")


if __name__ == "__main__":
    main()
