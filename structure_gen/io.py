"""Reading constraint files and writing generated structures (symmetrised CIFs + an index).

Input: JSONL as written by ``xtalagent constraints predict`` — one constraint per line
(``{"spacegroup": 194, "sites": [{"element": "Sc", "wyckoff": "2c"}], "band_gap": 0.0}``) or one
prediction per line (``{"id": 7, "candidates": [{"spacegroup": ..., "formula": ..., "sites": [...],
"score": ...}]}``, every candidate becomes a constraint). Output: one CIF per structure, written
with its space group and symmetry operations, and ``index.jsonl`` + ``index.csv`` that link each
file to its constraint and record the checks (failed requests are listed too, with reasons).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xtalagent import config
from xtalagent.composition import parse_counts, reduced_formula
from xtalagent.errors import InputError
from xtalagent.io import json_lines
from xtalagent.records import SymmetryConstraint
from xtalagent.structure_gen.freeparams import check_constraint
from xtalagent.structure_gen.samplers import Generated

_CONSTRAINT_KEYS = ("spacegroup", "sites", "band_gap", "formation_energy")


@dataclass
class ConstraintEntry:
    """A constraint and where it came from (line, prediction id, candidate rank)."""

    constraint: SymmetryConstraint
    line: int
    source_id: str | None = None
    candidate: int | None = None
    score: float | None = None


@dataclass
class SkippedLine:
    """A line of a constraint file that yields no constraint, and why (a failed request, bad JSON)."""

    line: int
    reason: str
    source_id: str | None = None


def _constraint_from_dict(data: Any, where: str) -> SymmetryConstraint:
    if not isinstance(data, dict) or "spacegroup" not in data or "sites" not in data:
        raise InputError(f"{where}: a constraint needs 'spacegroup' and 'sites'")
    try:
        constraint = check_constraint({k: data[k] for k in _CONSTRAINT_KEYS if k in data and data[k] is not None})
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    if data.get("formula"):
        # candidates may carry the cell formula (Sc2Ni6) or the reduced one (ScNi3); both must agree
        try:
            given = parse_counts(str(data["formula"]))
        except (ValueError, OverflowError) as exc:  # InputError, or a count too large for a float
            raise InputError(f"{where}: malformed formula {str(data['formula'])[:60]!r} ({exc})") from None
        if reduced_formula(given) != reduced_formula(constraint.counts):
            raise InputError(
                f"{where}: inconsistent composition: sites give {constraint.formula} but the formula is "
                f"{data['formula']}"
            )
    return constraint


def _source_id(data: Any) -> str | None:
    return None if not isinstance(data, dict) or data.get("id") is None else str(data["id"])


def parse_constraint_line(data: Any, line: int) -> list[ConstraintEntry]:
    """Entries of one JSONL line (a constraint, or a prediction with candidates); bad lines raise
    :class:`InputError` naming the line (a prediction that failed: its own error)."""
    where = f"line {line}"
    sid = _source_id(data)
    if isinstance(data, dict) and "candidates" in data:
        candidates = data["candidates"]
        if not isinstance(candidates, list):
            raise InputError(f"{where}: 'candidates' must be a list")
        if not candidates:
            if data.get("error"):
                raise InputError(f"{where}: request {sid} failed in 'constraints predict': {data['error']}")
            raise InputError(f"{where}: prediction {sid} has no candidates")
        score = [c.get("score") if isinstance(c, dict) else None for c in candidates]
        return [
            ConstraintEntry(_constraint_from_dict(c, f"{where} candidate {k}"), line, sid, k, score[k])
            for k, c in enumerate(candidates)
        ]
    if isinstance(data, dict) and data.get("error") and "spacegroup" not in data:
        raise InputError(f"{where}: request {sid} failed in 'constraints predict': {data['error']}")
    return [ConstraintEntry(_constraint_from_dict(data, where), line, sid)]


def load_constraints(path: str | Path) -> tuple[list[ConstraintEntry], list[SkippedLine]]:
    """The constraints of a JSONL file and the lines skipped, with reasons.

    One failed request among many (an ``{"id": ..., "error": ...}`` line of ``constraints
    predict``) or one bad line must not block the others, so such lines are skipped and returned;
    a missing or unreadable file, or one with no usable line at all, raises :class:`InputError`.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"constraint file {path} not found")
    if path.is_dir():
        raise InputError(f"constraint file {path} is a folder; give a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"constraint file {path} is not UTF-8 text (a binary file?)") from None
    except OSError as exc:
        raise InputError(f"constraint file {path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    entries, skipped = read_constraint_lines(text.splitlines())
    if not entries:
        detail = "; ".join(s.reason for s in skipped[:3])
        raise InputError(f"{path} holds no usable constraints" + (f" ({detail})" if detail else ""))
    return entries, skipped


def read_constraint_lines(lines: Iterable[str]) -> tuple[list[ConstraintEntry], list[SkippedLine]]:
    """The constraints of JSONL lines and the lines skipped, with reasons; never raises."""
    entries: list[ConstraintEntry] = []
    skipped: list[SkippedLine] = []
    for i, data, reason in json_lines(lines):
        if reason is not None:
            skipped.append(SkippedLine(i, f"line {i}: not JSON ({reason})"))
            continue
        try:
            entries.extend(parse_constraint_line(data, i))
        except InputError as exc:
            skipped.append(SkippedLine(i, str(exc), _source_id(data)))
    return entries, skipped


def read_constraints(path: str | Path) -> list[ConstraintEntry]:
    """All constraints of a JSONL file (blank lines skipped); any bad line raises InputError."""
    entries, skipped = load_constraints(path)
    if skipped:
        raise InputError(skipped[0].reason)
    return entries


def symmetrized_cif(structure, symprec: float = config.CHECK_SYMPREC) -> str:
    """CIF text with the space group and its operations, so CIF readers see the symmetry."""
    from pymatgen.io.cif import CifWriter

    return str(CifWriter(structure, symprec=symprec))


def write_results(
    entries: list[ConstraintEntry], results: list[Generated], out_dir: str | Path
) -> tuple[Path, int, int]:
    """Write CIFs of the passing structures and the index of all requests; (index, n_ok, n_failed)."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for res in results:
        entry = entries[res.constraint_index]
        c = entry.constraint
        name = f"c{res.constraint_index:04d}_s{res.sample_index:02d}_sg{c.spacegroup}_{c.formula}"
        row = {
            "constraint_index": res.constraint_index,
            "sample_index": res.sample_index,
            "line": entry.line,
            "id": entry.source_id,
            "candidate": entry.candidate,
            "spacegroup": c.spacegroup,
            "formula": c.formula,
            "constraint": c.model_dump_json(exclude_none=True),
            "sampler": res.sampler,
            "prototype": res.prototype,
            "attempts": res.attempts,
            "seconds": round(res.seconds, 4),
            "ok": res.ok,
            "cif": None,
        }
        if res.check is not None:
            row |= {k: v for k, v in res.check.as_dict().items() if k != "ok"}
            row["reasons"] = "; ".join(res.check.reasons)
        if res.ok:
            cif = out / f"{name}.cif"
            cif.write_text(symmetrized_cif(res.structure))
            row["cif"] = cif.name
            row["reasons"] = ""
        else:
            row["reasons"] = res.reason
        rows.append(row)
    index = out / "index.jsonl"
    index.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pd.DataFrame(rows).to_csv(out / "index.csv", index=False)
    n_ok = sum(r["ok"] for r in rows)
    return index, n_ok, len(rows) - n_ok
