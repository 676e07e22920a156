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
from dataclasses import dataclass
from pathlib import Path

from xtalagent import config
from xtalagent.composition import parse_counts, reduced_formula
from xtalagent.errors import InputError
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


def _constraint_from_dict(data: dict, where: str) -> SymmetryConstraint:
    if not isinstance(data, dict) or "spacegroup" not in data or "sites" not in data:
        raise InputError(f"{where}: a constraint needs 'spacegroup' and 'sites'")
    try:
        constraint = check_constraint({k: data[k] for k in _CONSTRAINT_KEYS if k in data and data[k] is not None})
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    if data.get("formula"):
        # candidates may carry the cell formula (Sc2Ni6) or the reduced one (ScNi3); both must agree
        given = parse_counts(str(data["formula"]))
        if reduced_formula(given) != reduced_formula(constraint.counts):
            raise InputError(
                f"{where}: inconsistent composition: sites give {constraint.formula} but the formula is "
                f"{data['formula']}"
            )
    return constraint


def parse_constraint_line(data: dict, line: int) -> list[ConstraintEntry]:
    """Entries of one JSONL line (a constraint, or a prediction with candidates)."""
    where = f"line {line}"
    if isinstance(data, dict) and "candidates" in data:
        sid = None if data.get("id") is None else str(data["id"])
        if not data["candidates"]:
            raise InputError(f"{where}: prediction {sid} has no candidates")
        return [
            ConstraintEntry(_constraint_from_dict(c, f"{where} candidate {k}"), line, sid, k, c.get("score"))
            for k, c in enumerate(data["candidates"])
        ]
    sid = None if not isinstance(data, dict) or data.get("id") is None else str(data["id"])
    return [ConstraintEntry(_constraint_from_dict(data, where), line, sid)]


def read_constraints(path: str | Path) -> list[ConstraintEntry]:
    """All constraints of a JSONL file (blank lines skipped); bad lines raise InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"constraint file {path} not found")
    entries: list[ConstraintEntry] = []
    for i, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{i}: not JSON ({exc.msg})") from None
        entries.extend(parse_constraint_line(data, i))
    if not entries:
        raise InputError(f"{path} holds no constraints")
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
    rows = []
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
