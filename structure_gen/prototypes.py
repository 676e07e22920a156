"""Known prototypes as structure proposals: the geometry of the closest known crystal with the same
site pattern, its elements substituted.

Why: a symmetry constraint (group + Wyckoff letters per element) very often names a known
structure type. On 200 seeded MP-20 ``val`` crystals, 75 % had a ``train`` crystal with the same
group and the same Wyckoff letters per element (elements anonymised), and transplanting that
crystal's lattice shape and free coordinates matched 67.5 % of all 200 (StructureMatcher, the CSP
protocol), against 46-48 % for the diffusion model alone; for monoclinic crystals 15 of 38
against 0 (``bench/experiments/2026-12-structure-templates``). This is template-based crystal
structure prediction by element substitution (CSPML, TCSP); the diffusion model samples whatever
has no known prototype, and every sample after a constraint's first ``prototypes``.

How a proposal is made:

* **Which crystals.** The shipped reference set (:mod:`xtalagent.tools.reference_set`), by
  knowledge variant: ``eval`` (every benchmark) the ``train`` split only, ``release`` every split.
* **Which template.** Same :func:`~xtalagent.structure_gen.routing.site_pattern`. Elements with
  the same Wyckoff letters are paired in Mendeleev-number order (Ti with Zr, O with S), and the
  templates are ranked by the summed Mendeleev-number difference of the pairs (closest chemistry
  first, then id, so the ranking is deterministic).
* **Geometry.** The template's free coordinates per site and its lattice shape; the volume is
  scaled by the ratio of the two compositions' summed element volumes, fitted by least squares
  on the same crystals (:class:`ElementVolumes`), since matching is scale-free but relaxation is not.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

from xtalagent.composition import mendeleev_number
from xtalagent.records import SymmetryConstraint
from xtalagent.structure_gen.routing import SitePattern, labels_by_element, pattern_of_sites, site_pattern
from xtalagent.symmetry import equivalent_labellings, wyckoff_info

logger = logging.getLogger(__name__)

#: Key a transplanted structure carries in ``Structure.properties``: the template's id.
PROTOTYPE_KEY: str = "prototype"


class KnownCrystalLike(Protocol):
    """What a template needs (:class:`xtalagent.tools.reference_set.KnownCrystal` has it)."""

    @property
    def id(self) -> str: ...

    @property
    def spacegroup(self) -> int: ...

    @property
    def lattice(self) -> tuple[float, ...]: ...

    @property
    def sites(self) -> tuple[tuple[str, str, tuple[float, ...]], ...]:  # (element, wyckoff, free coordinates)
        ...


def _pattern_of(crystal: KnownCrystalLike) -> SitePattern:
    return pattern_of_sites(crystal.spacegroup, ((el, w) for el, w, _ in crystal.sites))


def pair_elements(wanted: dict[str, tuple[str, ...]], template: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Element of the constraint -> element of the template: same Wyckoff letters, paired in
    Mendeleev-number order among elements that share their letters."""
    groups_w: dict[tuple[str, ...], list[str]] = defaultdict(list)
    groups_t: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for element, letters in wanted.items():
        groups_w[letters].append(element)
    for element, letters in template.items():
        groups_t[letters].append(element)
    pairs: dict[str, str] = {}
    for letters, elements in groups_w.items():
        mine = sorted(elements, key=mendeleev_number)
        theirs = sorted(groups_t.get(letters, []), key=mendeleev_number)
        if len(mine) != len(theirs):
            raise ValueError(f"template lacks the letters {letters}")
        pairs.update(zip(mine, theirs))
    return pairs


def chemical_distance(pairs: dict[str, str]) -> float:
    """Summed Mendeleev-number difference of paired elements (0: the same elements)."""
    return sum(abs(mendeleev_number(a) - mendeleev_number(b)) for a, b in pairs.items())


class ElementVolumes:
    """Volume per atom of each element (Å^3), fitted so that a cell's volume is about the sum over
    its atoms; used for ratios of two compositions only, where the errors of the fit largely cancel."""

    def __init__(self, crystals: Sequence[KnownCrystalLike]) -> None:
        from pymatgen.core import Lattice

        from xtalagent.structure_gen.freeparams import orbit_map

        elements = sorted({el for c in crystals for el, _, _ in c.sites})
        column = {el: i for i, el in enumerate(elements)}
        rows = np.zeros((len(crystals), len(elements)))
        volumes = np.zeros(len(crystals))
        for i, crystal in enumerate(crystals):
            for element, wyckoff, _ in crystal.sites:
                rows[i, column[element]] += orbit_map(crystal.spacegroup, wyckoff).multiplicity
            volumes[i] = Lattice.from_parameters(*crystal.lattice).volume
        fitted, *_ = np.linalg.lstsq(rows, volumes, rcond=None) if len(crystals) else (np.zeros(0),)
        self.volume = {el: float(v) for el, v in zip(elements, fitted)}
        self.fallback = float(np.median(fitted)) if len(fitted) else 15.0

    def of(self, element: str) -> float:
        return max(self.volume.get(element, self.fallback), 1.0)


@dataclass(frozen=True)
class Template:
    """One known crystal ranked for a constraint, with how its elements map onto the constraint's.

    ``relabelled``: the crystal has the constraint's site pattern only in another, equivalent
    labelling of the group's Wyckoff positions; it holds that labelling of the constraint and the
    normalizer operation (an origin shift, ``x+1/2,y,z``) that carries it back."""

    crystal: KnownCrystalLike
    pairs: dict[str, str]  # constraint element -> template element
    distance: float
    relabelled: tuple[SymmetryConstraint, str] | None = None


def _relabel(constraint: SymmetryConstraint, letters: dict[str, str]) -> SymmetryConstraint | None:
    """The constraint with its Wyckoff letters mapped (multiplicities follow from the new letters)."""
    sites = []
    for site in constraint.sites:
        letter = wyckoff_info(constraint.spacegroup, site.wyckoff).letter
        sites.append({"element": site.element, "wyckoff": letters.get(letter, letter)})
    try:
        return SymmetryConstraint.model_validate({"spacegroup": constraint.spacegroup, "sites": sites})
    except ValueError:  # an equivalent labelling that puts two orbits on one fixed position
        return None


class PrototypeLibrary:
    """Known crystals indexed by site pattern: the templates of a constraint, and transplants."""

    def __init__(self, crystals: Sequence[KnownCrystalLike]) -> None:
        self.index: dict[SitePattern, list[KnownCrystalLike]] = defaultdict(list)
        for crystal in crystals:
            self.index[_pattern_of(crystal)].append(crystal)
        self.volumes = ElementVolumes(crystals)
        self.size = len(crystals)

    def templates(self, constraint: SymmetryConstraint) -> list[Template]:
        """Every known crystal with the constraint's site pattern, closest chemistry first; when
        there is none, those with the pattern of an equivalent labelling of the constraint."""
        ranked = self._ranked(constraint, None)
        if not ranked:
            seen: set[str] = set()  # a crystal may fit several labellings; one is enough
            for letters, op in equivalent_labellings(constraint.spacegroup)[1:]:  # [0]: the identity
                other = _relabel(constraint, letters)
                if other is not None and site_pattern(other) in self.index:
                    fresh = [t for t in self._ranked(other, (other, op)) if t.crystal.id not in seen]
                    seen.update(t.crystal.id for t in fresh)
                    ranked += fresh
        return sorted(ranked, key=lambda t: (t.distance, t.crystal.id))

    def _ranked(
        self, constraint: SymmetryConstraint, relabelled: tuple[SymmetryConstraint, str] | None
    ) -> list[Template]:
        wanted = labels_by_element((s.element, s.wyckoff) for s in constraint.sites)
        out = []
        for crystal in self.index.get(site_pattern(constraint), []):
            pairs = pair_elements(wanted, labels_by_element((el, w) for el, w, _ in crystal.sites))
            out.append(Template(crystal, pairs, chemical_distance(pairs), relabelled))
        return out

    def transplant(self, constraint: SymmetryConstraint, template: Template):
        """The constraint's structure on the template's geometry (pymatgen Structure), the template's
        id in ``structure.properties[PROTOTYPE_KEY]``."""
        from xtalagent.structure_gen.freeparams import build_structure

        labelled, lattice, coords = self.geometry(constraint, template)
        structure = build_structure(labelled, lattice, coords)
        if template.relabelled is not None:
            structure = _carry_back(structure, template.relabelled[1], constraint)
        structure.properties[PROTOTYPE_KEY] = template.crystal.id
        return structure

    def geometry(
        self, constraint: SymmetryConstraint, template: Template
    ) -> tuple[SymmetryConstraint, np.ndarray, list[np.ndarray]]:
        """(the constraint as the template labels it, lattice a..γ, free coordinates per site): the
        template's geometry on the constraint's sites, its volume scaled to the constraint's atoms."""
        from xtalagent.structure_gen.freeparams import orbit_map

        if template.relabelled is not None:
            constraint = template.relabelled[0]

        pool: dict[tuple[str, str], list[tuple[float, ...]]] = defaultdict(list)
        for element, wyckoff, free in template.crystal.sites:
            pool[(element, wyckoff)].append(free)
        taken: dict[tuple[str, str], int] = defaultdict(int)
        coords = []
        ours = theirs = 0.0
        for site in constraint.sites:
            key = (template.pairs[site.element], site.wyckoff)
            coords.append(np.asarray(pool[key][taken[key]], dtype=float))
            taken[key] += 1
            m = orbit_map(constraint.spacegroup, site.wyckoff).multiplicity
            ours += m * self.volumes.of(site.element)
            theirs += m * self.volumes.of(key[0])
        lattice = np.asarray(template.crystal.lattice, dtype=float).copy()
        lattice[:3] *= (ours / theirs) ** (1 / 3)
        return constraint, lattice, coords


def _carry_back(structure, operation: str, constraint: SymmetryConstraint):
    """The structure moved by the inverse of a normalizer operation, so that its sites take the
    constraint's labels (checked: the operation or its inverse, whichever gives them)."""
    from pymatgen.core import Structure
    from pymatgen.core.operations import SymmOp

    from xtalagent.structure_gen.checks import check_structure

    op = SymmOp.from_xyz_str(operation)
    for candidate in (op.inverse, op):
        frac = [candidate.operate(site.frac_coords) for site in structure]
        moved = Structure(structure.lattice, structure.species, frac)
        if check_structure(moved, constraint).ok:
            return moved
    raise ValueError(f"{operation} does not carry the relabelled template back")


@lru_cache(maxsize=2)
def shipped_library(variant: str = "eval") -> PrototypeLibrary:
    """The library over the shipped reference set (``eval``: ``train`` crystals only)."""
    from xtalagent.tools.reference_set import known_crystals

    return PrototypeLibrary(known_crystals(variant=variant))


class PrototypeSampler:
    """Known prototypes first, then another sampler: each constraint's first ``prototypes``
    proposals are transplants of its closest templates (one template per proposal, never the same
    twice, retries included), everything after them comes from ``fallback``."""

    def __init__(self, fallback: Any, library: PrototypeLibrary, prototypes: int = 1) -> None:
        self.fallback = fallback
        self.library = library
        self.prototypes = prototypes
        self.name = fallback.name
        self._used: dict[str, int] = defaultdict(int)
        self._templates: dict[str, list[Template]] = {}

    def __getattr__(self, name: str) -> Any:  # checkpoint_for and the like stay the fallback's
        if name == "fallback":
            raise AttributeError(name)
        return getattr(self.fallback, name)

    def propose(self, constraints: list[SymmetryConstraint]) -> list:
        out: list = [None] * len(constraints)
        rest: list[int] = []
        for i, constraint in enumerate(constraints):
            structure = self._next_transplant(constraint)
            if structure is None:
                rest.append(i)
            else:
                out[i] = structure
        if rest:
            for i, structure in zip(rest, self.fallback.propose([constraints[i] for i in rest])):
                out[i] = structure
        return out

    def skip(self, constraint: SymmetryConstraint, n: int) -> None:
        """Count ``n`` proposals of ``constraint`` as made (a later round of the same design, which
        should not transplant the same prototypes again)."""
        self._used[self._key(constraint)] += n

    @staticmethod
    def _key(constraint: SymmetryConstraint) -> str:
        return constraint.model_dump_json(include={"spacegroup", "sites"})

    def _next_transplant(self, constraint: SymmetryConstraint):
        key = self._key(constraint)
        while self._used[key] < self.prototypes:
            n = self._used[key]
            self._used[key] += 1
            if key not in self._templates:
                self._templates[key] = self.library.templates(constraint)
            templates = self._templates[key]
            if n >= len(templates):
                self._used[key] = self.prototypes
                return None
            try:
                return self.library.transplant(constraint, templates[n])
            except Exception as exc:  # a template that cannot be built is skipped, like a failed sample
                logger.debug("prototype %s failed for %s: %s", templates[n].crystal.id, key, exc)
        return None
