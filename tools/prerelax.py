"""Descriptor pre-relaxation (LEGO-xtal): move only the symmetry-free variables of a candidate.

Each candidate is a pyxtal crystal. Its free variables are the lattice parameters allowed by the
space group and the free Wyckoff coordinates (``get_1d_rep_x``); pyxtal.lego's ``minimize_from_x``
optimises exactly these so that every site's SO(3) power spectrum approaches a reference
environment, so the space group is kept by construction (checked again on the result).

Success criterion, as in LEGO-xtal (``2_relax.py`` of MaterSim/LEGO-xtal, ``N_valid_env``): after
optimisation every site has a coordination number found for its element in the reference,
counted by pyxtal's ``check_validity`` with its default bond cutoffs (covalent radii, pyxtal's
"molecular" tolerance matrix; 1.87 Å for C–C). For sp2 carbon with graphite as reference that is
"every carbon is three-coordinated". We also report the descriptor distance and whether it falls
below :data:`DISTANCE_THRESHOLD_REL`, calibrated on the 135 SACADA sp2 carbons of up to 120 atoms
(all three-coordinated; 132 of them, 97.8 %, lie below 0.005 × |P_graphite|² = 1.46;
``python bench/experiments/2026-11-lego-prerelax/bench_lego_carbon.py --calibration-only``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Structure

from xtalagent import config
from xtalagent.composition import check_element
from xtalagent.errors import InputError, XtalAgentError

# --- thresholds and defaults (to move to core/config.py) ----------------------------------------
#: SO(3) power-spectrum settings of LEGO-xtal (pyxtal.lego builder defaults; rcut per system).
SO3_LMAX: int = 4
SO3_NMAX: int = 2
SO3_ALPHA: float = 1.5
#: Cutoff LEGO-xtal uses for sp2 carbon (Å), graphite C–C 1.42 Å.
LEGO_CARBON_RCUT: float = 2.1
#: Default cutoff = this factor × the longest nearest-neighbour distance in the references
#: (2.1 / 1.42: reproduces LEGO-xtal's carbon cutoff from graphite).
RCUT_FACTOR: float = 1.48
#: Minimiser stages (method, max iterations) of LEGO-xtal's pre-relaxation script.
LEGO_MINIMIZERS: tuple[tuple[str, int], ...] = (("Nelder-Mead", 100), ("L-BFGS-B", 400), ("L-BFGS-B", 200))
#: Descriptor distance (per atom, squared) relative to the mean squared norm of the reference
#: environments below which a structure counts as descriptor-converged (see module docstring).
DISTANCE_THRESHOLD_REL: float = 0.005
#: Budget of descriptor evaluations for one pre-relaxation (deterministic, unlike a time limit).
#: The minimiser uses finite-difference gradients, so one L-BFGS-B iteration costs n_free + 1
#: evaluations: LEGO-xtal's 700 iterations fit for up to ~6 free variables, and an 8-atom P1 cell
#: (30 variables) stops after ~160 iterations. One evaluation of a small cell takes 5-25 ms.
MAX_EVALUATIONS: int = 5000
#: Optional wall-time limit (s) on top of the budget; None = no limit (results then do not depend
#: on machine load).
MAX_SECONDS: float | None = None
#: Largest candidate (atoms in the conventional cell) pre-relaxed; LEGO-xtal goes up to 500.
MAX_ATOMS: int = 500
#: Largest number of known crystals taken from a labelled dataset as default references.
MAX_DEFAULT_REFERENCES: int = 5


def lego_available() -> tuple[bool, str]:
    """(True, "") if pyxtal.lego imports here, else (False, reason); SciPy 1.17 removed sph_harm."""
    try:
        import pyxtal.lego.builder  # noqa: F401
        import pyxtal.lego.SO3  # noqa: F401
    except Exception as exc:  # ImportError, or AttributeError from a changed SciPy
        return False, f"pyxtal.lego cannot be imported ({type(exc).__name__}: {exc}); it needs scipy<1.17"
    return True, ""


class PrerelaxResult(BaseModel):
    """Outcome of pre-relaxing one candidate; plain JSON."""

    model_config = ConfigDict(extra="forbid")

    id: str = ""
    formula: str = ""
    natoms: int = 0
    spacegroup_before: int = 0
    spacegroup_after: int = 0  # group the result was built in (kept by construction)
    spacegroup_detected_after: int = 0  # spglib at config.CHECK_SYMPREC; may be a supergroup
    symmetry_kept: bool = False  # every operation of spacegroup_before maps the result onto itself
    wyckoff: list[str] = Field(default_factory=list)
    n_free: int = 0  # free variables optimised (lattice + Wyckoff coordinates)
    evaluations: int = 0  # descriptor evaluations by the minimiser
    distance_before: float | None = None  # mean squared SO(3) distance per atom to the references
    distance_after: float | None = None
    distance_threshold: float | None = None  # absolute value of DISTANCE_THRESHOLD_REL for this reference
    distance_reached: bool = False
    coordination_after: dict[str, list[int]] = Field(default_factory=dict)  # element -> CN of each site
    target_coordination: dict[str, list[int]] = Field(default_factory=dict)
    reached: bool = False  # LEGO-xtal criterion: all site CNs as in the reference
    min_distance_after: float | None = None  # shortest interatomic distance, Å
    seconds: float = 0.0
    cif: str = ""  # relaxed structure
    failure: str | None = None


@dataclass
class ReferenceEnvironments:
    """SO(3) environments of reference crystals, per element, with their coordination numbers."""

    rcut: float
    descriptors: dict[str, np.ndarray]  # element -> (n_env, n_coef)
    coordination: dict[str, list[int]]  # element -> allowed CNs
    sources: list[str] = field(default_factory=list)
    lmax: int = SO3_LMAX
    nmax: int = SO3_NMAX
    alpha: float = SO3_ALPHA

    @property
    def elements(self) -> list[str]:
        return sorted(self.descriptors)

    def calculator(self):
        from pyxtal.lego.SO3 import SO3

        return SO3(lmax=self.lmax, nmax=self.nmax, rcut=self.rcut, alpha=self.alpha, weight_on=True)

    def distance_threshold(self) -> float:
        """Absolute descriptor-distance threshold: DISTANCE_THRESHOLD_REL × mean |P_ref|²."""
        norms = [float(np.mean(np.sum(d**2, axis=1))) for d in self.descriptors.values()]
        return DISTANCE_THRESHOLD_REL * float(np.mean(norms))


# --- inputs -------------------------------------------------------------------------------------


def to_pyxtal(candidate: Any, symprec: float = config.SYMPREC):
    """A built pyxtal crystal from a pyxtal object, pymatgen Structure or CrystalRecord.

    Structures are symmetrised with pyxtal at ``symprec``; a crystal without symmetry
    information (unbuilt pyxtal, failed symmetry search, molecular crystal) is an InputError.
    """
    from pyxtal import pyxtal

    from xtalagent.records import CrystalRecord

    if isinstance(candidate, CrystalRecord):
        if not candidate.cif:
            raise InputError(f"record {candidate.id!r} has no CIF")
        candidate = candidate.structure()
    if isinstance(candidate, pyxtal):
        if getattr(candidate, "molecular", False):
            raise InputError("molecular pyxtal crystals are not supported by pre-relaxation")
        if candidate.group is None or not candidate.atom_sites or candidate.lattice is None:
            raise InputError("pyxtal crystal has no symmetry information (space group, Wyckoff sites, lattice)")
        if not candidate.valid:
            raise InputError("pyxtal crystal is not valid (generation failed)")
        return candidate.copy()
    if isinstance(candidate, Structure):
        if len(candidate) == 0:
            raise InputError("structure has no atoms")
        if not candidate.is_ordered:
            raise InputError("partial occupancy (disordered structure)")
        for el in {sp.symbol for sp in candidate.species}:
            check_element(el)
        crystal = pyxtal()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                crystal.from_seed(candidate, tol=symprec)
        except Exception as exc:  # pyxtal raises many types for one failure
            raise InputError(f"symmetry search failed: {type(exc).__name__}: {exc}") from None
        if not crystal.valid or crystal.group is None:
            raise InputError("symmetry search failed: pyxtal returned no valid crystal")
        return crystal
    raise InputError(
        f"cannot pre-relax a {type(candidate).__name__}: give a pyxtal crystal, a pymatgen Structure or a CrystalRecord"
    )


def graphite():
    """Graphite (P6_3/mmc, a = 2.46 Å, c = 6.70 Å): LEGO-xtal's sp2 reference."""
    from pyxtal import pyxtal

    xtal = pyxtal()
    xtal.from_spg_wps_rep(194, ["2c", "2b"], [2.46, 6.70], ["C", "C"])
    return xtal


def _reference_structures(reference: Any, elements: Sequence[str]) -> tuple[list[Any], list[str]]:
    """Reference crystals (pyxtal or Structure) and their labels from any accepted input."""
    from xtalagent.records import CrystalRecord

    if reference is None:
        if set(elements) == {"C"}:
            return [graphite()], ["graphite (built)"]
        if config.REFERENCE_DATASET is not None:
            return _from_dataset(config.REFERENCE_DATASET, elements)
        return _from_shipped_set(elements)
    if isinstance(reference, str | Path):
        path = Path(reference)
        if not path.exists():
            raise InputError(f"reference dataset {path} does not exist")
        return _from_dataset(path, elements)
    if isinstance(reference, Structure | CrystalRecord) or hasattr(reference, "atom_sites"):
        reference = [reference]
    items, labels = [], []
    for i, ref in enumerate(reference):
        if isinstance(ref, CrystalRecord):
            items.append(ref.structure())
            labels.append(ref.id)
        else:
            items.append(ref)
            labels.append(f"reference[{i}]")
    if not items:
        raise InputError("empty reference list")
    return items, labels


def _from_dataset(path: Path, elements: Sequence[str]) -> tuple[list[Any], list[str]]:
    """Known crystals of a labelled dataset with exactly the candidate's elements (lowest energy first)."""
    from xtalagent.data import load_records

    wanted = set(elements)
    records = [r for r in load_records(path) if set(r.elements) == wanted]
    if not records:
        raise InputError(f"no crystal with elements {'-'.join(sorted(wanted))} in reference dataset {path}")

    def key(r) -> tuple[float, int]:
        props = r.properties
        energy = props.get("e_above_hull")
        if energy is None:
            energy = props.get("formation_energy_per_atom")
        return (float("inf") if energy is None else float(energy), r.natoms)

    records = sorted(records, key=key)[:MAX_DEFAULT_REFERENCES]
    return [r.structure() for r in records], [r.id for r in records]


def _from_shipped_set(elements: Sequence[str]) -> tuple[list[Any], list[str]]:
    """Known crystals of the shipped reference set with exactly the candidate's elements."""
    from xtalagent.tools.reference_set import with_elements

    known = with_elements(list(elements))[:MAX_DEFAULT_REFERENCES]
    if not known:
        raise InputError(
            f"no known crystal with elements {'-'.join(sorted(elements))} in the shipped reference set: "
            "pass reference structures or a labelled dataset (XTALAGENT_REFERENCE_DATASET)"
        )
    return [c.structure() for c in known], [c.id for c in known]


def _site_offsets(xtal) -> list[int]:
    """Index of the first atom of each Wyckoff site in ``xtal.to_ase(resort=False)``."""
    ids, count = [], 0
    for site in xtal.atom_sites:
        ids.append(count)
        count += site.wp.multiplicity
    return ids


def _nn_distances(xtal, radius: float = 6.0) -> list[float]:
    """Nearest-neighbour distance (Å, periodic images included) of the first atom of each site."""
    struct = xtal.to_pymatgen()
    out = []
    for i in _site_offsets(xtal):
        found = [n.nn_distance for n in struct.get_neighbors(struct[i], radius)]
        out.append(min(found) if found else min(struct.lattice.abc))
    return out


def build_references(
    reference: Any = None,
    elements: Sequence[str] | None = None,
    rcut: float | None = None,
) -> ReferenceEnvironments:
    """SO(3) environments of every reference site, per element.

    ``reference``: pymatgen Structures / pyxtal crystals / CrystalRecords, a labelled-dataset path,
    a ready :class:`ReferenceEnvironments`, or ``None`` (graphite for carbon, else the known
    crystals with the same elements in ``config.REFERENCE_DATASET`` or the shipped reference set).
    """
    if isinstance(reference, ReferenceEnvironments):
        return reference
    ok, reason = lego_available()
    if not ok:
        raise XtalAgentError(reason)
    elements = [check_element(e) for e in (elements or [])]
    if reference is None and not elements:
        raise InputError("give reference structures or the elements whose known crystals serve as reference")
    items, labels = _reference_structures(reference, elements)
    xtals = [to_pyxtal(item) for item in items]
    if rcut is None:
        rcut = RCUT_FACTOR * max(max(_nn_distances(x)) for x in xtals)
    if rcut <= 0:
        raise InputError(f"descriptor cutoff must be positive, got {rcut}")
    env = ReferenceEnvironments(rcut=float(rcut), descriptors={}, coordination={}, sources=labels)
    calc = env.calculator()
    per_element: dict[str, list[np.ndarray]] = {}
    cns: dict[str, set[int]] = {}
    for xtal in xtals:
        ids = _site_offsets(xtal)
        desc = calc.compute_p(xtal.to_ase(resort=False), ids)
        xtal.set_site_coordination()
        for site, row in zip(xtal.atom_sites, desc):
            el = str(site.specie)
            per_element.setdefault(el, []).append(row)
            cns.setdefault(el, set()).add(int(site.coordination))
    for el, rows in per_element.items():
        unique: list[np.ndarray] = []
        for row in rows:
            if not any(np.allclose(row, u, atol=1e-6) for u in unique):
                unique.append(row)
        env.descriptors[el] = np.array(unique)
        env.coordination[el] = sorted(cns[el])
    if elements:
        missing = sorted(set(elements) - set(env.descriptors))
        if missing:
            raise InputError(f"reference structures contain no {', '.join(missing)} environment")
    return env


# --- symmetry check -----------------------------------------------------------------------------


def keeps_symmetry(structure: Structure, spacegroup: int, tol: float | None = None) -> bool:
    """True if every operation of ``spacegroup`` (standard setting) maps ``structure`` onto itself.

    The structure must be in that group's conventional standard cell, as pyxtal writes it. ``tol``
    (Å, default ``config.CHECK_SYMPREC``): how far an operation may move an atom from an equal one.
    """
    from pyxtal.symmetry import Group

    tol = config.CHECK_SYMPREC if tol is None else tol

    frac = structure.frac_coords
    numbers = np.array([site.specie.Z for site in structure])
    matrix = structure.lattice.matrix
    for op in Group(spacegroup)[0].ops:
        moved = op.operate_multi(frac)
        for i, z in enumerate(numbers):
            diff = frac[numbers == z] - moved[i]
            diff -= np.round(diff)
            if np.min(np.linalg.norm(diff @ matrix, axis=1)) > tol:
                return False
    return True


# --- pre-relaxation -----------------------------------------------------------------------------


def _minimizers(max_steps: int | None) -> list[tuple[str, int]]:
    """LEGO-xtal's stages, scaled so their iterations add up to ``max_steps``."""
    if max_steps is None:
        return list(LEGO_MINIMIZERS)
    if max_steps < 1:
        raise InputError(f"max_steps must be at least 1, got {max_steps}")
    total = sum(n for _, n in LEGO_MINIMIZERS)
    return [(method, max(1, round(n * max_steps / total))) for method, n in LEGO_MINIMIZERS]


def _site_references(xtal, env: ReferenceEnvironments, calc) -> np.ndarray:
    """Per site: the reference environment of its element nearest to its current one."""
    current = calc.compute_p(xtal.to_ase(resort=False), _site_offsets(xtal))
    rows = []
    for site, p in zip(xtal.atom_sites, current):
        refs = env.descriptors[str(site.specie)]
        rows.append(refs[int(np.argmin(np.sum((refs - p) ** 2, axis=1)))])
    return np.array(rows)


def prerelax(
    candidate: Any,
    reference: Any = None,
    elements: Sequence[str] | None = None,
    max_steps: int | None = None,
    rcut: float | None = None,
    id: str = "",
    max_seconds: float | None = MAX_SECONDS,
    max_evaluations: int | None = MAX_EVALUATIONS,
) -> PrerelaxResult:
    """Pre-relax one candidate toward the reference environments, keeping its space group.

    Bad input (unknown element, no symmetry information, no reference for an element) raises
    :class:`InputError`; a failed optimisation returns a result with ``failure`` set.
    """
    start = time.perf_counter()
    xtal = to_pyxtal(candidate)
    cand_elements = sorted({str(s.specie) for s in xtal.atom_sites})
    for el in cand_elements:
        check_element(el)
    if elements is not None:
        given = [check_element(e) for e in elements]
        extra = sorted(set(cand_elements) - set(given))
        if extra:
            raise InputError(f"candidate contains {', '.join(extra)}, not among the given elements {given}")
    env = build_references(reference, elements or cand_elements, rcut)
    missing = sorted(set(cand_elements) - set(env.descriptors))
    if missing:
        raise InputError(f"no reference environment for {', '.join(missing)} (references: {', '.join(env.sources)})")

    natoms = int(sum(xtal.numIons))
    result = PrerelaxResult(
        id=id,
        formula=xtal.to_pymatgen().composition.formula.replace(" ", ""),
        natoms=natoms,
        spacegroup_before=int(xtal.group.number),
        wyckoff=[f"{s.specie}:{s.wp.get_label()}" for s in xtal.atom_sites],
        target_coordination={el: list(env.coordination[el]) for el in cand_elements},
        distance_threshold=env.distance_threshold(),
    )
    if natoms > MAX_ATOMS:
        result.failure = f"{natoms} atoms exceed MAX_ATOMS={MAX_ATOMS}"
        result.seconds = time.perf_counter() - start
        return result

    try:
        deadline = None if max_seconds is None else start + max_seconds
        _run(xtal, env, max_steps, result, _Budget(deadline, max_evaluations))
    except XtalAgentError:
        raise
    except _OverBudget as exc:
        result.failure = str(exc)
    except Exception as exc:  # pyxtal/scipy failures of one candidate: record and go on
        result.failure = f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - start
    return result


class _OverBudget(Exception):
    """Raised from inside the minimiser when the evaluation budget or the time limit is spent."""


@dataclass
class _Budget:
    deadline: float | None
    max_evaluations: int | None
    used: int = 0

    def wrap(self, calc):
        """The descriptor calculator, counting its evaluations against the budget."""
        compute = calc.compute_p

        def compute_p(*args, **kwargs):
            self.used += 1
            if self.max_evaluations is not None and self.used > self.max_evaluations:
                raise _OverBudget(f"evaluation budget: not finished within {self.max_evaluations} evaluations")
            if self.deadline is not None and time.perf_counter() > self.deadline:
                raise _OverBudget("time limit: not finished within max_seconds")
            return compute(*args, **kwargs)

        calc.compute_p = compute_p  # instance attribute: shadows the method for this object only
        return calc


def _run(
    xtal,
    env: ReferenceEnvironments,
    max_steps: int | None,
    result: PrerelaxResult,
    budget: _Budget,
) -> None:
    """The optimisation proper; fills ``result`` in place."""
    from pyxtal.lego.builder import minimize_from_x
    from pyxtal.lego.util import calculate_S

    from xtalagent.symmetry import detect_spacegroup

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if xtal.lattice.ltype in ("triclinic", "monoclinic"):
            xtal.optimize_lattice(standard=True)  # as builder.optimize_xtal: a well-conditioned cell
        calc = env.calculator()
        x0 = np.array(xtal.get_1d_rep_x(), dtype=float)
        result.n_free = len(x0)
        refs = _site_references(xtal, env, calc)
        result.distance_before = float(calculate_S(x0.copy(), xtal.copy(), refs, calc))
        # one group per site so that each site gets its own reference row (minimize_from_x
        # stacks ref_environments[i] for the sites of group i)
        groups = [[s.wp.get_label()] for s in xtal.atom_sites]
        species = [str(s.specie) for s in xtal.atom_sites]
        out = minimize_from_x(
            x0.copy(),
            3,
            xtal.group.number,
            groups,
            species,
            budget.wrap(env.calculator()),
            refs,
            opt_type="local",
            minimizers=_minimizers(max_steps),
            filename=None,
        )
        if out is None:
            result.failure = "optimisation left the lattice invalid (pyxtal could not rebuild the crystal)"
            return
        relaxed, _ = out
        result.evaluations = budget.used
        x1 = np.array(relaxed.get_1d_rep_x(), dtype=float)
        result.distance_after = float(calculate_S(x1.copy(), relaxed.copy(), refs, calc))
        assert result.distance_threshold is not None  # set from the reference above
        result.distance_reached = result.distance_after <= result.distance_threshold
        structure = relaxed.to_pymatgen()
        result.spacegroup_after = int(relaxed.group.number)
        result.spacegroup_detected_after = detect_spacegroup(structure)
        result.symmetry_kept = result.spacegroup_after == result.spacegroup_before and keeps_symmetry(
            structure, result.spacegroup_before
        )
        relaxed.set_site_coordination()
        cn: dict[str, list[int]] = {}
        for site in relaxed.atom_sites:
            cn.setdefault(str(site.specie), []).append(int(site.coordination))
        result.coordination_after = cn
        criteria = {"CN": dict(result.target_coordination), "cutoff": None, "exclude_ii": False}
        result.reached = bool(relaxed.check_validity(criteria)) and result.symmetry_kept
        dm = structure.distance_matrix
        result.min_distance_after = float(dm[np.triu_indices(len(structure), 1)].min()) if len(structure) > 1 else None
        result.cif = structure.to(fmt="cif")


def prerelax_many(
    candidates: Iterable[Any],
    reference: Any = None,
    elements: Sequence[str] | None = None,
    max_steps: int | None = None,
    rcut: float | None = None,
    ids: Sequence[str] | None = None,
    max_seconds: float | None = MAX_SECONDS,
    max_evaluations: int | None = MAX_EVALUATIONS,
) -> list[PrerelaxResult]:
    """Pre-relax many candidates; a bad candidate is recorded with its reason and the batch goes on.

    References are computed once (from ``reference`` or ``elements``); invalid references raise.
    """
    candidates = list(candidates)
    ids = list(ids) if ids is not None else [str(i) for i in range(len(candidates))]
    if len(ids) != len(candidates):
        raise InputError(f"{len(ids)} ids for {len(candidates)} candidates")
    if not isinstance(reference, ReferenceEnvironments):
        if elements is None:
            found: set[str] = set()
            for cand in candidates:
                try:
                    found |= {str(s.specie) for s in to_pyxtal(cand).atom_sites}
                except InputError:
                    continue
            elements = sorted(found)
        reference = build_references(reference, elements, rcut)
    results = []
    for cand, cid in zip(candidates, ids):
        try:
            results.append(
                prerelax(
                    cand,
                    reference,
                    elements,
                    max_steps,
                    id=cid,
                    max_seconds=max_seconds,
                    max_evaluations=max_evaluations,
                )
            )
        except InputError as exc:
            results.append(PrerelaxResult(id=cid, failure=f"input: {exc}"))
    return results


def summarize(results: Sequence[PrerelaxResult]) -> dict[str, Any]:
    """Counts and fractions of a batch (fraction reached among structures that ran)."""
    ran = [r for r in results if r.failure is None]
    reached = [r for r in ran if r.reached]
    return {
        "n": len(results),
        "n_ran": len(ran),
        "n_failed": len(results) - len(ran),
        "n_reached": len(reached),
        "fraction_reached": len(reached) / len(ran) if ran else None,
        "n_distance_reached": sum(r.distance_reached for r in ran),
        "n_symmetry_kept": sum(r.symmetry_kept for r in ran),
        "mean_seconds": float(np.mean([r.seconds for r in ran])) if ran else None,
        "failures": sorted({r.failure for r in results if r.failure}),
    }


def structure_hook(reference: Any = None, **kwargs: Any):
    """A ``Structure -> Structure`` pre-relaxation step for :func:`xtalagent.tools.screen.screen`.

    A structure whose pre-relaxation fails goes on unchanged: the ML relaxation still decides.
    """
    from pymatgen.core import Structure

    def hook(structure: Structure) -> Structure:
        hook.last_result = None  # type: ignore[attr-defined]
        result = prerelax(structure, reference=reference, **kwargs)
        hook.last_result = result  # type: ignore[attr-defined]  # read by screen() to report "reached"
        if result.failure or not result.cif:
            return structure
        return Structure.from_str(result.cif, fmt="cif")

    hook.last_result = None  # type: ignore[attr-defined]
    hook.__qualname__ = f"lego_prerelax(reference={reference!s})"
    return hook
