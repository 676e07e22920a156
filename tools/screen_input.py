"""Reading screening candidates: a folder of CIFs, one CIF, or a JSONL/CSV index."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pymatgen.core import Structure

from xtalagent import config
from xtalagent.errors import InputError
from xtalagent.symmetry import check_spacegroup, detect_spacegroup
from xtalagent.tools.screen_records import StructureCandidate


def read_cif(text: str) -> Structure:
    """A CIF's structure, read without pymatgen's warnings; a disordered one is an InputError
    (neither a potential nor the band-gap model takes partial occupancies)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structure = Structure.from_str(text, fmt="cif")
    if not structure.is_ordered:
        raise InputError("partial occupancy (disordered structure)")
    return structure


def _index_rows(source: Path) -> tuple[list[dict[str, Any]], Path]:
    """The rows of a candidate source (each with ``cif_path``) and the folder their paths are relative to."""
    if not source.exists():
        raise InputError(f"{source} does not exist")
    if source.is_dir():
        files = sorted(source.glob("*.cif"))
        if not files:
            raise InputError(f"no .cif files in {source}")
        return [{"cif_path": f.name} for f in files], source
    suffix = source.suffix.lower()
    if suffix == ".cif":
        return [{"cif_path": source.name}], source.parent
    if suffix not in (".jsonl", ".csv"):
        raise InputError(f"{source}: expected a folder of CIFs, a .cif, or a .jsonl/.csv index with 'cif_path'")
    if suffix == ".jsonl":
        try:
            rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}: invalid JSON line: {exc}") from None
    else:
        rows = pd.read_csv(source).to_dict("records")
    if not rows or any("cif_path" not in r for r in rows):
        raise InputError(f"{source}: every row needs a 'cif_path' column")
    return rows, source.parent


def _candidate(row: dict[str, Any], cid: str, path: Path, source: Path) -> StructureCandidate:
    """One candidate: its CIF read (or why not) and its requested group (given, else detected)."""
    cand = StructureCandidate(id=cid, source=str(path))
    group = row.get("requested_spacegroup", row.get("spacegroup"))
    if group is not None and not (isinstance(group, float) and np.isnan(group)):
        try:
            cand.requested_spacegroup = check_spacegroup(int(group))
        except (TypeError, ValueError) as exc:
            raise InputError(f"{source}, row {cid}: requested space group {group!r} is invalid ({exc})") from None
    try:
        cand.cif_text = path.read_text()
        cand.structure = read_cif(cand.cif_text)
    except FileNotFoundError:
        cand.error = f"file not found: {path}"
    except Exception as exc:
        cand.error = f"unreadable CIF: {type(exc).__name__}: {exc}".splitlines()[0]
    if cand.structure is not None and cand.requested_spacegroup is None:
        cand.requested_spacegroup = detect_spacegroup(cand.structure, config.CHECK_SYMPREC) or None
    return cand


def read_candidates(source: Path | str, limit: int | None = None) -> list[StructureCandidate]:
    """Candidates from a folder of CIFs, a single CIF, or a JSONL/CSV index with ``cif_path``."""
    source = Path(source)
    rows, base = _index_rows(source)
    out: list[StructureCandidate] = []
    seen: dict[str, int] = {}
    for row in rows[:limit] if limit is not None else rows:
        path = Path(str(row["cif_path"]))
        path = path if path.is_absolute() else base / path
        cid = str(row.get("id") or path.stem)
        seen[cid] = seen.get(cid, 0) + 1
        if seen[cid] > 1:
            cid = f"{cid}_{seen[cid]}"
        out.append(_candidate(row, cid, path, source))
    return out
