"""Checks every generated structure passes before it is returned as fine.

A structure passes when spglib (at ``config.CHECK_SYMPREC``) finds exactly the requested space
group and the requested Wyckoff sites (element + letter per orbit, up to the letter permutations of
the group's Euclidean normaliser, e.g. 1a <-> 1b in Pm-3m), its shortest interatomic distance is
above ``config.MIN_INTERATOMIC_DISTANCE``, no two atoms are closer than
``config.MIN_COVALENT_RATIO`` times the sum of their covalent radii (real crystals stay above it;
generated cells below it are overlapping atoms, and were measured to match their target less than
5 % of the time) and its volume per atom is inside ``config.VOLUME_PER_ATOM_RANGE``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from xtalagent import config
from xtalagent.records import SymmetryConstraint
from xtalagent.symmetry import equivalent_labellings, wyckoff_info


@dataclass
class CheckResult:
    """Outcome of :func:`check_structure`; ``reasons`` is empty when ``ok``."""

    ok: bool
    spacegroup: int
    sites_match: bool
    min_distance: float
    volume_per_atom: float
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "detected_spacegroup": self.spacegroup,
            "sites_match": self.sites_match,
            "min_distance": round(self.min_distance, 4),
            "volume_per_atom": round(self.volume_per_atom, 3),
            "reasons": self.reasons,
        }


def _letter_permutations(spacegroup: int) -> tuple[dict[str, str], ...]:
    """Letter maps of the Euclidean normaliser: Wyckoff assignments that describe the same crystal."""
    return tuple(letters for letters, _ in equivalent_labellings(spacegroup))


def _site_multiset(spacegroup: int, sites: list[tuple[str, str]]) -> Counter:
    return Counter((el, wyckoff_info(spacegroup, letter).letter) for el, letter in sites)


def sites_equivalent(spacegroup: int, found: list[tuple[str, str]], wanted: list[tuple[str, str]]) -> bool:
    """Whether two (element, Wyckoff letter) lists are the same up to the normaliser's letter maps."""
    target = _site_multiset(spacegroup, wanted)
    if _site_multiset(spacegroup, found) == target:
        return True
    for perm in _letter_permutations(spacegroup):
        mapped = [(el, perm.get(wyckoff_info(spacegroup, lab).letter, lab)) for el, lab in found]
        if _site_multiset(spacegroup, mapped) == target:
            return True
    return False


def detect_sites(structure, symprec: float = config.CHECK_SYMPREC) -> tuple[int, list[tuple[str, str]]]:
    """spglib space group and (element, Wyckoff letter) per orbit of a structure's own cell."""
    import spglib

    cell = (
        np.asarray(structure.lattice.matrix),
        np.asarray(structure.frac_coords),
        [site.specie.Z for site in structure],
    )
    try:
        data = spglib.get_symmetry_dataset(cell, symprec=symprec)  # type: ignore[arg-type]  # arrays are fine
    except spglib.error.SpglibError:  # e.g. "too close distance between atoms": no group, a failed check
        return 0, []
    if data is None:
        return 0, []
    species = [site.specie.symbol for site in structure]
    orbits: dict[int, tuple[str, str]] = {}
    for i, rep in enumerate(data.equivalent_atoms):
        orbits.setdefault(int(rep), (species[i], str(data.wyckoffs[i])))
    return int(data.number), list(orbits.values())


def _pyxtal_sites(structure, symprec: float) -> tuple[int, list[tuple[str, str]]]:
    from xtalagent.errors import InputError
    from xtalagent.symmetry import label_structure

    try:
        label = label_structure(structure, symprec=symprec)
    except InputError:
        return 0, []
    return label.spacegroup, [(s.element, s.wyckoff.letter) for s in label.sites]


def _pair_distances(structure) -> np.ndarray:
    """Shortest periodic distance (Å) of every atom pair, inf on the diagonal."""
    dm = np.array(structure.distance_matrix)
    np.fill_diagonal(dm, np.inf)
    return dm


def min_distance(structure, pair_distances: np.ndarray | None = None) -> float:
    """Shortest interatomic distance (Å) including periodic images; inf for one atom."""
    if len(structure) < 2:
        lat = structure.lattice
        return float(min(lat.abc))
    dm = _pair_distances(structure) if pair_distances is None else pair_distances
    return min(float(dm.min()), float(min(structure.lattice.abc)))


def _covalent_radius(symbol: str) -> float:
    from pymatgen.analysis.molecule_structure_comparator import CovalentRadius

    return float(CovalentRadius.radius.get(symbol, 1.5))


def closest_contact(structure, pair_distances: np.ndarray | None = None) -> tuple[float, str]:
    """Smallest distance / (sum of covalent radii) over all atom pairs, and the pair that has it."""
    if len(structure) < 2:
        return float("inf"), ""
    dm = _pair_distances(structure) if pair_distances is None else pair_distances
    symbols = [site.specie.symbol for site in structure]
    radii = np.array([_covalent_radius(s) for s in symbols])
    ratio = dm / (radii[:, None] + radii[None, :])
    i, j = np.unravel_index(int(np.argmin(ratio)), ratio.shape)
    return float(ratio[i, j]), f"{symbols[i]}-{symbols[j]} {dm[i, j]:.2f} Å"


def check_structure(
    structure,
    constraint: SymmetryConstraint,
    symprec: float = config.CHECK_SYMPREC,
    min_covalent_ratio: float = config.MIN_COVALENT_RATIO,
) -> CheckResult:
    """Re-detect symmetry and sites, measure distances and volume; list every failed check."""
    reasons: list[str] = []
    n = len(structure)
    vpa = float(structure.volume / n) if n else float("nan")
    try:
        pairs = _pair_distances(structure) if n > 1 else None
    except (np.linalg.LinAlgError, ValueError):  # a needle or flat cell from a diverged sample
        return CheckResult(False, 0, False, 0.0, vpa, [f"degenerate cell {structure.lattice.abc}"])
    dmin = min_distance(structure, pairs) if n else 0.0
    if dmin < config.MIN_INTERATOMIC_DISTANCE:
        reasons.append(f"shortest distance {dmin:.3f} Å < {config.MIN_INTERATOMIC_DISTANCE} Å")
    elif min_covalent_ratio > 0:
        ratio, pair = closest_contact(structure, pairs)
        if ratio < min_covalent_ratio:
            reasons.append(f"atoms overlap: {pair} is {ratio:.2f} x their covalent radii (< {min_covalent_ratio})")
    low, high = config.VOLUME_PER_ATOM_RANGE
    if not low <= vpa <= high:
        reasons.append(f"volume per atom {vpa:.2f} Å^3 outside [{low}, {high}]")
    wanted = [(s.element, s.wyckoff) for s in constraint.sites]
    group, found = detect_sites(structure, symprec)
    match = group == constraint.spacegroup and sites_equivalent(group, found, wanted)
    if group == constraint.spacegroup and not match:  # spglib may pick another cell choice; ask pyxtal
        group2, found2 = _pyxtal_sites(structure, symprec)
        match = group2 == constraint.spacegroup and sites_equivalent(group2, found2, wanted)
    if group != constraint.spacegroup:
        reasons.append(f"detected space group {group}, requested {constraint.spacegroup}")
    elif not match:
        reasons.append(f"detected Wyckoff sites {sorted(found)} differ from the requested {sorted(wanted)}")
    return CheckResult(not reasons, group, match, dmin, vpa, reasons)
