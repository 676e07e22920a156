"""``xtalagent data build``: label crystals with symmetry and write a Parquet dataset.

Labelling is CPU-bound (about 50 ms per crystal), so it runs in a process pool. The output is
written atomically (temporary file + rename) and keyed by a hash of the inputs and settings, so a
re-run on the same input returns the cached result and an interrupted run leaves no half file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from xtalagent import config
from xtalagent.composition import format_counts, reduced_formula
from xtalagent.data.readers import RawCrystal, folder_files, read_crystals
from xtalagent.data.schema import read_metadata, to_table
from xtalagent.errors import InputError, XtalAgentError
from xtalagent.io import atomic_path, check_output_file, write_json_atomic
from xtalagent.symmetry import label_structure


@dataclass
class BuildReport:
    """What a build read, labelled and skipped (and why); saved beside the dataset as JSON."""

    inputs: list[str]
    output: str
    symprec: float
    n_read: int = 0
    n_labelled: int = 0
    n_skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    workers: int = 1
    cached: bool = False
    cache_key: str = ""

    @property
    def labelled_fraction(self) -> float:
        return self.n_labelled / self.n_read if self.n_read else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "labelled_fraction": round(self.labelled_fraction, 6)}


def report_path(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(".parquet") + ".report.json")


def cache_key(inputs: Iterable[Path], symprec: float) -> str:
    """Hash of input contents and labelling settings."""
    digest = hashlib.sha256(f"v{config.DATASET_SCHEMA_VERSION}|{symprec}".encode())
    for path in inputs:
        files = folder_files(path) if path.is_dir() else [path]
        for file in files:
            digest.update((file.relative_to(path).as_posix() if path.is_dir() else file.name).encode())
            try:
                with open(file, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
            except OSError as exc:  # a dangling symlink or unreadable file is skipped by the build, not fatal
                digest.update(f"unreadable:{exc.errno}".encode())
    return digest.hexdigest()


def grouped_split(reduced: str, spacegroup: int) -> str:
    """Deterministic split from a hash of (reduced formula, space group): polymorph-safe."""
    value = int(hashlib.md5(f"{reduced}|{spacegroup}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    edge = 0.0
    for name, fraction in config.SPLIT_FRACTIONS.items():
        edge += fraction
        if value < edge:
            return name
    return name


def _reason_category(reason: str) -> str:
    return reason.split(":", 1)[0]


_OCCUPANCY = re.compile(r"occupancies \(\[([^\]]*)\]\) sum to > 1")


def parse_cif(text: str):
    """The first structure of a CIF text; raises :class:`InputError` with the real cause.

    pymatgen reports an over-full site (two atoms on one position: occupancy 2) only as a warning
    and then fails with "no structures", so the warnings are read to name the cause.
    """
    from pymatgen.core import Structure

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return Structure.from_str(text, fmt="cif")
        except Exception as exc:  # pymatgen raises ValueError, KeyError, IndexError, ... for bad CIFs
            notes = " ".join(str(w.message) for w in caught)
            found = _OCCUPANCY.search(notes)
            if found:
                raise InputError(
                    f"site occupancy over 1: occupancies sum to {found.group(1)} on one position "
                    "(several atoms on one site)"
                ) from None
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"unparsable CIF: {message[:200]}") from None


def check_cell(structure) -> None:
    """Raise :class:`InputError` for a cell pymatgen parsed but cannot work with (NaN, zero volume)."""
    import numpy as np

    matrix = np.asarray(structure.lattice.matrix, dtype=float)
    coords = np.asarray(structure.frac_coords, dtype=float)
    if not (np.isfinite(matrix).all() and np.isfinite(coords).all()):
        raise InputError("unphysical cell: non-finite lattice parameters or coordinates")
    if abs(np.linalg.det(matrix)) < 1e-6:
        raise InputError("unphysical cell: zero volume")


def check_distances(structure, minimum: float = config.MIN_INTERATOMIC_DISTANCE) -> None:
    """Raise :class:`InputError` when two atoms (periodic images included) sit closer than ``minimum``."""
    import numpy as np

    if len(structure) < 2:
        return
    distances = structure.distance_matrix + np.diag(np.full(len(structure), np.inf))
    i, j = np.unravel_index(np.argmin(distances), distances.shape)
    if distances[i, j] < minimum:
        raise InputError(
            f"atoms too close: {structure[i].specie} and {structure[j].specie} are {distances[i, j]:.2f} Å apart "
            f"(minimum {minimum} Å)"
        )


def label_raw(raw: RawCrystal, symprec: float) -> tuple[dict[str, Any] | None, str | None]:
    """Label one crystal; returns (row, None) or (None, reason). Never raises, so one bad crystal
    cannot stop a build."""
    try:
        return _label(raw, symprec), None
    except InputError as exc:
        return None, str(exc)
    except Exception as exc:  # any other failure belongs to this crystal: it becomes its reason
        message = str(exc).splitlines()[0] if str(exc) else ""
        return None, f"labelling failed: {type(exc).__name__}: {message[:200]}"


def _label(raw: RawCrystal, symprec: float) -> dict[str, Any]:
    from pymatgen.core import Element, Structure
    from pymatgen.io.cif import CifWriter

    if raw.error:
        raise InputError(raw.error)
    if raw.structure is not None:
        try:
            structure = Structure.from_dict(raw.structure)
        except Exception as exc:  # a broken ASE row
            raise InputError(f"unparsable structure: {type(exc).__name__}: {exc}") from None
    elif raw.cif:
        structure = parse_cif(raw.cif)
    else:
        raise InputError("missing CIF: empty cif field")
    unknown = sorted({sp.symbol for sp in structure.composition if not Element.is_valid_symbol(sp.symbol)})
    if unknown:
        raise InputError(f"unknown element: {', '.join(unknown)}")
    check_cell(structure)
    if not structure.is_ordered:
        raise InputError("partial occupancy (disordered structure)")
    check_distances(structure)
    label = label_structure(structure, symprec)
    counts = {el.symbol: int(round(n)) for el, n in label.conventional.composition.items()}
    formula = format_counts(counts)
    row = {
        "id": raw.id,
        "source": raw.source,
        "split": raw.split or grouped_split(reduced_formula(counts), label.spacegroup),
        "formula": formula,
        "reduced_formula": reduced_formula(counts),
        "elements": [el.symbol for el in label.conventional.composition.elements],
        "natoms": len(label.conventional),
        "spacegroup": label.spacegroup,
        "symprec": symprec,
        "lattice": list(label.lattice),
        "sites": [
            {
                "element": s.element,
                "wyckoff": s.wyckoff.label,
                "multiplicity": s.wyckoff.multiplicity,
                "letter": s.wyckoff.letter,
                "dof": s.wyckoff.dof,
                "position": list(s.position),
                "free_params": list(s.free_params),
            }
            for s in label.sites
        ],
        "cif": str(CifWriter(label.conventional)),
        "properties": raw.properties,
    }
    return row


def _label_task(args: tuple[RawCrystal, float]) -> tuple[dict[str, Any] | None, str | None]:
    return label_raw(*args)


def build_dataset(
    inputs: Iterable[str | Path],
    output: str | Path,
    symprec: float = config.SYMPREC,
    workers: int | None = None,
    force: bool = False,
    progress: bool = True,
    limit: int | None = None,
) -> BuildReport:
    """Label every crystal of ``inputs`` and write ``output`` (Parquet) + its JSON report.

    Crystals that cannot be labelled are skipped and counted by reason. Raises
    :class:`XtalAgentError` when an input is unusable or nothing at all could be labelled.
    """
    paths = [Path(p) for p in inputs]
    if not paths:
        raise InputError("no input given")
    output = Path(output)
    if output.suffix != ".parquet":
        raise InputError(f"{output}: output must end in .parquet")
    check_output_file(output)
    raws: list[RawCrystal] = []
    for path in paths:
        raws.extend(read_crystals(path))
    if limit is not None:
        raws = raws[:limit]
    key = cache_key(paths, symprec) + (f"|limit={limit}" if limit is not None else "")
    rpath = report_path(output)
    if not force and output.exists() and rpath.exists() and read_metadata(output).get("cache_key") == key:
        cached = json.loads(rpath.read_text())
        cached.pop("labelled_fraction", None)
        report = BuildReport(**cached)
        report.cached = True
        return report

    workers = workers or config.n_workers()
    report = BuildReport(
        inputs=[str(p) for p in paths],
        output=str(output),
        symprec=symprec,
        n_read=len(raws),
        workers=workers,
        cache_key=key,
    )
    start = time.perf_counter()
    results = _run_labelling(raws, symprec, workers, progress)
    rows = []
    reasons: Counter[str] = Counter()
    for raw, (row, reason) in zip(raws, results):
        if row is None:
            reasons[_reason_category(reason)] += 1
            report.skipped.append({"id": raw.id, "source": raw.source, "reason": reason})
        else:
            rows.append(row)
    report.seconds = round(time.perf_counter() - start, 2)
    report.n_labelled = len(rows)
    report.n_skipped = len(report.skipped)
    report.skipped_by_reason = dict(reasons.most_common())
    report.splits = dict(Counter(r["split"] for r in rows))
    if not rows:
        detail = "; ".join(s["reason"] for s in report.skipped[:3])
        raise XtalAgentError(f"no crystal could be labelled ({report.n_skipped} skipped: {detail})")

    table = to_table(rows, {"schema_version": config.DATASET_SCHEMA_VERSION, "cache_key": key})
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    write_json_atomic(rpath, report.to_json())
    return report


def _run_labelling(raws: list[RawCrystal], symprec: float, workers: int, progress: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    results = []
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("labelling crystals", total=len(raws))
        tasks = ((raw, symprec) for raw in raws)
        if workers <= 1 or len(raws) < 32:
            for item in tasks:
                results.append(_label_task(item))
                bar.advance(task)
        else:
            # fork shares the already-imported pymatgen/pyxtal with the workers (fast start-up)
            ctx = get_context("fork" if os.name == "posix" else "spawn")
            with ctx.Pool(workers) as pool:
                for result in pool.imap(_label_task, tasks, chunksize=8):
                    results.append(result)
                    bar.advance(task)
    return results
