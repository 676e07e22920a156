"""Space-group and Wyckoff bookkeeping shared by every stage.

Wyckoff tables come from pyxtal (International Tables, standard settings); symmetry detection
uses pyxtal's ``from_seed`` on top of spglib, which also returns the conventional standard cell
and the free parameters of each site.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pymatgen.core import Structure

from xtalagent import config
from xtalagent.errors import InputError

TABLES_PATH = Path(__file__).parent / "resources" / "wyckoff_tables.json"
_LABEL = re.compile(r"^(\d+)([a-zA-Z])$")


@dataclass(frozen=True)
class WyckoffInfo:
    """One Wyckoff position of a space group (standard setting)."""

    label: str  # multiplicity + letter, e.g. "4a"
    multiplicity: int
    letter: str
    dof: int  # number of free coordinates; 0 means the position can host one orbit only


@cache
def _group(number: int):
    from pyxtal.symmetry import Group

    return Group(number)


def check_spacegroup(number: int) -> int:
    """Return ``number`` if it is a space group (1–230), else raise :class:`InputError`."""
    try:
        value = int(number)
    except (TypeError, ValueError):
        raise InputError(f"space group {number!r} is not a number between 1 and 230") from None
    if value != number or not 1 <= value <= 230:
        raise InputError(f"space group {number!r} does not exist (valid: 1-230)")
    return value


@cache
def _tables() -> dict[str, dict]:
    """Wyckoff tables of all 230 groups, exported from pyxtal (``python -m xtalagent.symmetry``).

    Loading pyxtal's Group objects takes seconds for all groups; the decoder needs every table at
    once, so a compact JSON export ships with the package (a test checks it against pyxtal).
    """
    return json.loads(TABLES_PATH.read_text())


@cache
def wyckoff_table(spacegroup: int) -> tuple[WyckoffInfo, ...]:
    """All Wyckoff positions of a group, general position first (as pyxtal lists them)."""
    entry = _tables()[str(check_spacegroup(spacegroup))]
    return tuple(WyckoffInfo(label, mult, letter, dof) for label, mult, letter, dof in entry["positions"])


def export_tables(path: Path | None = None) -> None:
    """Regenerate the shipped Wyckoff tables from pyxtal."""
    tables = {}
    for number in range(1, 231):
        group = _group(number)
        rows = [[wp.get_label(), int(wp.multiplicity), wp.letter, int(wp.get_dof())] for wp in group.Wyckoff_positions]
        tables[number] = {"symbol": group.symbol, "positions": rows}
    (path or TABLES_PATH).write_text(json.dumps(tables, separators=(",", ":")))


@cache
def wyckoff_by_label(spacegroup: int) -> dict[str, WyckoffInfo]:
    return {w.label: w for w in wyckoff_table(spacegroup)}


def spacegroup_symbol(spacegroup: int) -> str:
    return _tables()[str(check_spacegroup(spacegroup))]["symbol"]


def crystal_system(spacegroup: int) -> str:
    """Crystal system name (triclinic ... cubic); trigonal and hexagonal kept apart."""
    n = check_spacegroup(spacegroup)
    bounds = [
        (2, "triclinic"),
        (15, "monoclinic"),
        (74, "orthorhombic"),
        (142, "tetragonal"),
        (167, "trigonal"),
        (194, "hexagonal"),
        (230, "cubic"),
    ]
    return next(name for upper, name in bounds if n <= upper)


@cache
def equivalent_labellings(spacegroup: int) -> tuple[tuple[dict[str, str], str], ...]:
    """(letter -> letter, coset operation) for each coset of the group in its Euclidean normalizer,
    identity first: Wyckoff assignments that describe the same crystal, and the operation (an origin
    shift such as ``x+1/2,y,z``) that moves one onto the other (pyxtal ``get_alternatives``). Only
    the identity where pyxtal has no table for the group."""
    try:
        table = _group(spacegroup).get_alternatives()
        rows, ops = table["Transformed WP"], table["Coset Representative"]
    except Exception:  # pyxtal has no table for a few groups
        return ()
    base = rows[0].split()
    return tuple((dict(zip(base, row.split())), op) for row, op in zip(rows, ops))


def wyckoff_info(spacegroup: int, label: str) -> WyckoffInfo:
    """Look up a Wyckoff label such as ``4a`` (a bare letter such as ``a`` is accepted too)."""
    table = wyckoff_by_label(spacegroup)
    text = str(label).strip()
    if text in table:
        return table[text]
    match = _LABEL.match(text)
    letter = match.group(2) if match else text
    for info in table.values():
        if info.letter == letter:
            if match and int(match.group(1)) != info.multiplicity:
                raise InputError(
                    f"Wyckoff position {text!r} does not exist in space group {spacegroup}: "
                    f"letter {letter} has multiplicity {info.multiplicity} there"
                )
            return info
    valid = ", ".join(sorted(table, key=lambda s: _LABEL.match(s).group(2)))  # type: ignore[union-attr]
    raise InputError(f"Wyckoff position {text!r} does not exist in space group {spacegroup} (valid: {valid})")


@dataclass(frozen=True)
class LabelledSite:
    element: str
    wyckoff: WyckoffInfo
    position: tuple[float, float, float]
    free_params: tuple[float, ...]


@dataclass(frozen=True)
class SymmetryLabel:
    """What symmetry detection finds for one structure (conventional standard cell)."""

    spacegroup: int
    lattice: tuple[float, float, float, float, float, float]  # a, b, c, alpha, beta, gamma
    sites: tuple[LabelledSite, ...]
    conventional: Structure


def label_structure(structure: Structure, symprec: float = config.SYMPREC) -> SymmetryLabel:
    """Find space group, conventional standard cell and Wyckoff sites of an ordered structure.

    Raises :class:`InputError` for disordered structures and when the symmetry search fails, so
    callers can record the reason and go on.
    """
    if not structure.is_ordered:
        raise InputError("partial occupancy (disordered structure)")
    from pyxtal import pyxtal

    crystal = pyxtal()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            crystal.from_seed(structure, tol=symprec)
    except Exception as exc:  # pyxtal raises many types for one failure: symmetry not found
        raise InputError(f"symmetry search failed: {type(exc).__name__}: {exc}") from None
    if not crystal.valid or crystal.group is None:
        raise InputError("symmetry search failed: pyxtal returned no valid crystal")
    number = int(crystal.group.number)
    table = wyckoff_by_label(number)
    sites = []
    for site in crystal.atom_sites:
        label = site.wp.get_label()
        if label not in table:  # non-standard setting; should not happen after from_seed
            raise InputError(f"symmetry search returned non-standard Wyckoff label {label} in group {number}")
        x, y, z = (float(v) for v in site.position)
        pos = (x, y, z)
        free = tuple(float(v) for v in site.wp.get_free_xyzs(site.position))
        sites.append(LabelledSite(str(site.specie), table[label], pos, free))
    a, b, c, alpha, beta, gamma = (float(v) for v in crystal.lattice.get_para(degree=True))
    return SymmetryLabel(number, (a, b, c, alpha, beta, gamma), tuple(sites), crystal.to_pymatgen())


def detect_spacegroup(structure: Structure, symprec: float = config.CHECK_SYMPREC) -> int:
    """spglib space group number of a structure (0 if spglib finds none)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        return int(SpacegroupAnalyzer(structure, symprec=symprec).get_space_group_number())
    except Exception:
        return 0


if __name__ == "__main__":
    export_tables()
