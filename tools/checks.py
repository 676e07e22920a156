"""Validity, uniqueness, novelty and Γ-phonon checks of candidate structures.

* structural validity: shortest interatomic distance ≥ ``config.MIN_INTERATOMIC_DISTANCE`` and
  volume per atom inside ``config.VOLUME_PER_ATOM_RANGE`` (CDVAE uses 0.5 Å as well);
* composition validity: SMACT charge neutrality with the Pauling electronegativity test, metals-
  only compositions (alloys) counted valid — ``smact.screening.smact_validity``, which is the
  metric CDVAE and its successors report;
* uniqueness among candidates and novelty against reference structures: pymatgen
  ``StructureMatcher`` with its default tolerances (as in MatterGen / DiffCSP evaluations);
* Γ-point phonon stability: finite differences of the potential's forces in the given cell
  (no supercell, so only Γ); a mode is unstable if its frequency is imaginary beyond
  :data:`PHONON_IMAG_TOL_THZ` (acoustic modes and numerical noise stay below that).
* S.U.N.: stable (e_hull ≤ threshold), unique and novel; the rate is over all candidates given.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Structure

from xtalagent import config

#: Stability threshold on e_hull (eV/atom) for the S.U.N. "stable" flag. 0.1 eV/atom is the usual
#: metastability window (MatterGen) and about twice the ML potential's e_hull error.
STABLE_E_HULL: float = 0.1
#: Finite-difference displacement (Å) for Γ phonons.
PHONON_DELTA: float = 0.01
#: Imaginary frequencies smaller than this (THz) are treated as numerical noise.
PHONON_IMAG_TOL_THZ: float = 0.3


@dataclass(frozen=True)
class Check:
    ok: bool
    reason: str = ""


def structure_validity(
    structure: Structure,
    min_distance: float = config.MIN_INTERATOMIC_DISTANCE,
    volume_range: tuple[float, float] = config.VOLUME_PER_ATOM_RANGE,
) -> Check:
    """Shortest distance and volume per atom inside sane bounds."""
    n = len(structure)
    if n == 0:
        return Check(False, "empty structure")
    vol = structure.volume / n
    if not volume_range[0] <= vol <= volume_range[1]:
        return Check(False, f"volume {vol:.2f} Å^3/atom outside {volume_range[0]:g}-{volume_range[1]:g}")
    # neighbour list includes periodic images (an atom too close to its own image counts too)
    distances = structure.get_neighbor_list(r=min_distance, exclude_self=True)[3]
    if len(distances):
        return Check(False, f"shortest distance {float(distances.min()):.3f} Å < {min_distance:g} Å")
    return Check(True)


def composition_validity(composition: Composition | str) -> Check:
    """SMACT charge neutrality + electronegativity (alloys valid), CDVAE's composition metric."""
    from smact.screening import smact_validity

    comp = Composition(composition)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok = bool(smact_validity(comp, use_pauling_test=True, include_alloys=True))
    return Check(ok, "" if ok else "no charge-neutral, electronegativity-balanced oxidation-state assignment (SMACT)")


def _matcher() -> StructureMatcher:
    return StructureMatcher()


def unique_flags(structures: Sequence[Structure | None]) -> list[bool]:
    """First structure of each group of matching structures is unique; order = priority (e.g. by energy)."""
    matcher = _matcher()
    kept: list[Structure] = []
    flags = []
    for s in structures:
        if s is None:
            flags.append(False)
            continue
        dup = any(
            k.composition.reduced_composition == s.composition.reduced_composition and matcher.fit(k, s) for k in kept
        )
        flags.append(not dup)
        if not dup:
            kept.append(s)
    return flags


def novel_flags(structures: Sequence[Structure | None], references: Sequence[Structure]) -> list[bool | None]:
    """True if no reference structure matches (compared within the same reduced formula only)."""
    matcher = _matcher()
    by_formula: dict[str, list[Structure]] = {}
    for ref in references:
        by_formula.setdefault(ref.composition.reduced_formula, []).append(ref)
    flags: list[bool | None] = []
    for s in structures:
        if s is None:
            flags.append(None)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            same = by_formula.get(s.composition.reduced_formula, [])
            flags.append(not any(matcher.fit(s, r) for r in same))
    return flags


@dataclass(frozen=True)
class GammaPhonons:
    stable: bool
    min_frequency_thz: float  # most negative = most imaginary (imaginary shown as negative)
    n_imaginary: int


def gamma_phonons(atoms: Atoms, potential, delta: float = PHONON_DELTA) -> GammaPhonons:
    """Γ-point frequencies from central differences of the potential's forces (one batched call)."""
    from ase.units import _amu, _e

    n = len(atoms)
    displaced = []
    for i in range(n):
        for k in range(3):
            for sign in (1, -1):
                a = atoms.copy()
                a.calc = None
                a.set_constraint()
                a.positions[i, k] += sign * delta
                displaced.append(a)
    evals = potential.evaluate(displaced)
    if any(not e.finite for e in evals):
        raise ValueError("potential failed on a displaced structure")
    fc = np.zeros((3 * n, 3 * n))
    for row in range(3 * n):
        plus, minus = evals[2 * row].forces, evals[2 * row + 1].forces
        fc[row] = -(plus - minus).reshape(-1) / (2 * delta)
    fc = 0.5 * (fc + fc.T)
    masses = np.repeat(atoms.get_masses(), 3)
    dyn = fc / np.sqrt(np.outer(masses, masses))  # eV/Å^2/amu
    eig = np.linalg.eigvalsh(dyn)
    # ω = sqrt(eig) in sqrt(eV/Å^2/amu) -> Hz -> THz
    to_thz = np.sqrt(_e / (1e-20 * _amu)) / (2 * np.pi) / 1e12
    freqs = np.sign(eig) * np.sqrt(np.abs(eig)) * to_thz
    imag = int((freqs < -PHONON_IMAG_TOL_THZ).sum())
    return GammaPhonons(imag == 0, float(freqs.min()), imag)


def sun_rate(stable: Sequence[bool | None], unique: Sequence[bool], novel: Sequence[bool | None]) -> float | None:
    """Fraction of candidates that are stable, unique and novel (None if novelty is unknown)."""
    if not stable:
        return None
    if any(n is None for n in novel):
        return None
    hits = sum(bool(s) and bool(u) and bool(n) for s, u, n in zip(stable, unique, novel))
    return hits / len(stable)
