"""Where benchmarks read their data and write their results, resolved in one place.

Benchmarks read two kinds of data: the shared raw sets beside the repository (``../shared/data``,
development machines only, or ``XTALAGENT_SHARED_DATA``), and labelled Parquet datasets built
from them (``datasets/mp_structures.parquet``). Both are options of every benchmark with these
defaults; a missing one is a one-line :class:`~xtalagent.errors.InputError` that says how to get
it, instead of a ``FileNotFoundError`` deep inside pandas.
"""

from __future__ import annotations

from pathlib import Path

from xtalagent import config
from xtalagent.errors import InputError

#: The repository checkout holding this package (editable installs), if there is one.
CHECKOUT = Path(__file__).resolve().parents[2]
#: The labelled MP-20 dataset every constraint and structure benchmark reads by default.
MP_DATASET = Path("datasets/mp_structures.parquet")
#: The raw MP-20 table (CIFs, splits, band gaps, formation energies, e_above_hull) inside the shared data.
MP_TABLE = "mp/structures.csv.gz"


def results_dir(override: Path | None = None) -> Path:
    """``override``, else ``bench/results`` of the checkout (or of the working directory)."""
    if override is not None:
        return Path(override)
    if (CHECKOUT / "bench").is_dir() and (CHECKOUT / "pyproject.toml").is_file():
        return CHECKOUT / "bench" / "results"
    return Path.cwd() / "bench" / "results"


def checkout_path(relative: str) -> Path:
    """A file of the repository checkout (bench scripts, suites, fixtures); a clear error outside one."""
    path = CHECKOUT / relative
    if not path.exists():
        raise InputError(f"{relative} not found: this benchmark runs from a repository checkout of xtalagent")
    return path


def shared_data_dir(override: Path | None = None) -> Path:
    """The shared raw data folder: ``override``, else ``XTALAGENT_SHARED_DATA`` / ``../shared/data``."""
    path = Path(override) if override is not None else config.SHARED_DATA_DIR
    if not path.is_dir():
        raise InputError(
            f"shared data not found at {path}: it sits beside the repository on development machines only; "
            "pass the folder with --shared-data or set XTALAGENT_SHARED_DATA"
        )
    return path


def shared_file(relative: str, *, shared: Path | None = None, file: Path | None = None) -> Path:
    """``file`` if given, else ``relative`` inside :func:`shared_data_dir` (``shared`` overrides it)."""
    path = Path(file) if file is not None else shared_data_dir(shared) / relative
    if not path.is_file():
        raise InputError(f"{path}: no such file (expected {relative} of the shared data)")
    return path


def dataset_file(path: Path | None = None) -> Path:
    """A labelled Parquet dataset: ``path``, else :data:`MP_DATASET`; says how to build a missing one."""
    path = Path(path) if path is not None else MP_DATASET
    if not path.is_file():
        raise InputError(
            f"{path}: no such dataset; build it with 'xtalagent bench data-build' (from ../shared/data) "
            "or 'xtalagent data build FILE -o PATH'"
        )
    return path
