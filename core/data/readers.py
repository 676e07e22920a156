"""Readers for crystal sources: CSV with a ``cif`` column, CIF files/folders, ASE databases.

Each reader yields :class:`RawCrystal` items (an id, a CIF text or structure dict, and the other
columns as properties) and checks the file itself up front, so a wrong input fails with one clear
line before any work starts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xtalagent import config
from xtalagent.errors import InputError

CSV_SUFFIXES = (".csv", ".csv.gz")
DB_SUFFIXES = (".db",)


@dataclass
class RawCrystal:
    """One crystal as read from a source, before labelling."""

    id: str
    source: str
    cif: str | None = None
    structure: dict[str, Any] | None = None  # pymatgen Structure.as_dict(), from ASE databases
    split: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # why this item cannot be labelled (e.g. a non-CIF file in a folder)


def folder_files(path: Path) -> list[Path]:
    """Every file under a folder, subfolders included, sorted; dangling symlinks are listed too, so
    a build can count them as skipped instead of dropping them silently."""
    return sorted(p for p in path.rglob("*") if p.is_file() or (p.is_symlink() and not p.exists()))


def is_cif(path: Path) -> bool:
    return path.name.lower().endswith(".cif")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    return value


def _kind(path: Path) -> str:
    name = path.name.lower()
    if path.is_dir():
        return "cif_dir"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(".cif"):
        return "cif"
    if name.endswith(DB_SUFFIXES):
        return "db"
    raise InputError(
        f"{path}: unsupported input (expected .csv/.csv.gz with a 'cif' column, .cif, a folder of CIFs, or an ASE .db)"
    )


def check_input(path: Path) -> str:
    """Validate an input path and return its kind; raise :class:`InputError` otherwise."""
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    kind = _kind(path)
    if kind != "cif_dir" and path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    if kind == "cif_dir" and not any(is_cif(p) for p in folder_files(path)):
        raise InputError(f"{path}: folder holds no .cif files (subfolders included)")
    return kind


def read_crystals(path: Path) -> list[RawCrystal]:
    """Read every crystal of a source into memory (sources here are at most tens of MB)."""
    kind = check_input(path)
    reader = {"csv": _read_csv, "cif": _read_cif_file, "cif_dir": _read_cif_dir, "db": _read_ase_db}[kind]
    items = list(reader(path))
    if not items:
        raise InputError(f"{path}: no crystals found")
    return items


def _read_csv(path: Path) -> Iterator[RawCrystal]:
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc})") from None
    if "cif" not in frame.columns:
        raise InputError(f"{path}: CSV has no 'cif' column (columns: {', '.join(map(str, frame.columns))})")
    id_column = next((c for c in ("material_id", "id", "name") if c in frame.columns), None)
    props = [c for c in frame.columns if c not in config.NON_PROPERTY_COLUMNS and c != id_column]
    source = path.name.split(".")[0]
    for i, values in enumerate(frame.to_dict("records")):
        cif = values["cif"]
        split = values.get("split")
        yield RawCrystal(
            id=str(values[id_column]) if id_column else f"{source}-{i}",
            source=str(values["source"]) if isinstance(values.get("source"), str) else source,
            cif=cif if isinstance(cif, str) else None,
            split=split if isinstance(split, str) else "",
            properties={c: _clean(values[c]) for c in props if c != "source"},
        )


def _read_cif_file(path: Path) -> Iterator[RawCrystal]:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    yield RawCrystal(id=path.stem, source=path.parent.name or "cif", cif=text)


def _read_cif_dir(path: Path) -> Iterator[RawCrystal]:
    """Every file under the folder: CIFs to label, anything else as a skipped item with its reason."""
    for file in folder_files(path):
        relative = file.relative_to(path)
        ident = relative.with_suffix("").as_posix() if is_cif(file) else relative.as_posix()
        item = RawCrystal(id=ident, source=path.name)
        if not is_cif(file):
            item.error = f"not a CIF file: {relative.as_posix()} (only .cif files of a folder are read)"
        elif file.is_symlink() and not file.exists():
            item.error = f"unreadable file: {relative.as_posix()} is a dangling symlink"
        else:
            try:
                item.cif = file.read_text(errors="replace")
            except OSError as exc:
                item.error = f"unreadable file: {relative.as_posix()} ({exc.strerror or type(exc).__name__})"
        yield item


def _read_ase_db(path: Path) -> Iterator[RawCrystal]:
    from ase.db import connect
    from pymatgen.io.ase import AseAtomsAdaptor

    try:
        db = connect(str(path), type="db")
        rows = list(db.select())
    except Exception as exc:  # sqlite and ASE raise several types for a file that is not a database
        raise InputError(f"{path}: not a readable ASE database ({exc})") from None
    for row in rows:
        props = {k: _clean(v) for k, v in row.key_value_pairs.items() if isinstance(v, (int, float, str))}
        name = row.key_value_pairs.get("name") or row.get("unique_id") or row.id
        yield RawCrystal(
            id=str(name),
            source=path.stem,
            structure=AseAtomsAdaptor.get_structure(row.toatoms()).as_dict(),
            properties=props,
        )
