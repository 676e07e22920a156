"""Constraint requests and candidates: the JSONL contract of ``xtalagent constraints predict``.

Input line:  ``{"id": 7, "formula": "Sc2Ni6", "band_gap": 0.0}`` — or ``"elements": ["Sc", "Ni"]``
or ``"composition": "ScNi3"`` instead of ``formula``; ``"formation_energy"`` instead of or beside
``band_gap``; an optional ``"spacegroup"``.
Output line: ``{"id": 7, "candidates": [{"spacegroup": 194, "formula": "Sc2Ni6", "sites":
[{"element": "Sc", "wyckoff": "2c"}, ...], "score": -0.42}, ...]}``, best first, or
``{"id": 7, "error": "..."}``.

Targets must be finite and physical (:data:`BAND_GAP_RANGE`, :data:`FORMATION_ENERGY_RANGE`): a
``NaN`` or ``1e308`` would otherwise be fed to the model and change the ranking without a word.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xtalagent import config
from xtalagent.composition import check_element, parse_counts, reduced_counts
from xtalagent.errors import InputError
from xtalagent.finetune.wyckoff_solver import ExactCounts, FreeCounts, RatioCounts, Target
from xtalagent.records import BAND_GAP_RANGE, FORMATION_ENERGY_RANGE, SiteSpec, SymmetryConstraint
from xtalagent.symmetry import check_spacegroup

#: Atoms a formula request may name when it does not set ``max_atoms`` itself. A formula names the
#: conventional cell, which is larger than the ``max_atoms`` the model picks for ratios: the largest
#: conventional cell of the MP training data holds 208 atoms.
FORMULA_MAX_ATOMS: int = 240


def counts_of(text: Any, field: str) -> dict[str, int]:
    """Atom counts of a formula field; any parsing failure becomes one :class:`InputError` line."""
    if not isinstance(text, str):
        raise InputError(f"'{field}' must be a string such as 'TiO2'")
    try:
        return parse_counts(text)
    except (ValueError, OverflowError) as exc:  # InputError is a ValueError; a huge count overflows float
        if isinstance(exc, InputError):
            raise
        raise InputError(f"malformed {field} {text[:60]!r}: counts must be whole numbers") from None


class Pattern(StrEnum):
    """How the composition is given (CrystalGF's request patterns plus the ratio form)."""

    FORMULA = "formula"  # full cell formula: exactly these atoms in the conventional cell
    ELEMENTS = "elements"  # elements only: the model proposes the ratio
    COMPOSITION = "composition"  # a ratio: the model chooses the number of formula units


def electronegativity_order(elements: list[str]) -> tuple[str, ...]:
    """Elements in pymatgen's formula order, the canonical order of prompts and answers."""
    from pymatgen.core import Element

    return tuple(sorted(elements, key=lambda el: (Element(el).X, el)))


class ConstraintRequest(BaseModel):
    """One request: a composition in one of three forms, optional targets and group."""

    model_config = ConfigDict(extra="forbid")

    id: Any = None
    formula: str | None = None
    elements: list[str] | None = None
    composition: str | None = None
    band_gap: float | None = Field(
        default=None, ge=BAND_GAP_RANGE[0], le=BAND_GAP_RANGE[1], allow_inf_nan=False, description="eV"
    )
    formation_energy: float | None = Field(
        default=None,
        ge=FORMATION_ENERGY_RANGE[0],
        le=FORMATION_ENERGY_RANGE[1],
        allow_inf_nan=False,
        description="eV/atom",
    )
    spacegroup: int | None = None
    max_atoms: int = Field(default=config.MAX_ATOMS_PER_CELL, ge=1, le=500)

    @field_validator("elements")
    @classmethod
    def _elements(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise InputError("'elements' is empty")
        for symbol in value:
            check_element(symbol)
        if len(set(value)) != len(value):
            raise InputError(f"'elements' repeats an element: {value}")
        return value

    @field_validator("spacegroup")
    @classmethod
    def _group(cls, value: int | None) -> int | None:
        return None if value is None else check_spacegroup(value)

    @model_validator(mode="after")
    def _one_composition(self) -> ConstraintRequest:
        given = [name for name in ("formula", "elements", "composition") if getattr(self, name) is not None]
        if len(given) != 1:
            raise InputError(
                "give exactly one of 'formula', 'elements' or 'composition'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.formula is not None:
            atoms = sum(counts_of(self.formula, "formula").values())
            explicit = "max_atoms" in self.model_fields_set
            limit = self.max_atoms if explicit else FORMULA_MAX_ATOMS
            if atoms > limit:
                raise InputError(
                    f"formula {self.formula} names {atoms} atoms in the cell, more than the limit of {limit}"
                    + ("" if explicit else " (a request may set 'max_atoms', at most 500, for a larger cell)")
                )
        if self.composition is not None:
            counts_of(self.composition, "composition")  # its size against max_atoms: target()
        return self

    @property
    def pattern(self) -> Pattern:
        if self.formula is not None:
            return Pattern.FORMULA
        if self.elements is not None:
            return Pattern.ELEMENTS
        return Pattern.COMPOSITION

    def target(self) -> Target:
        """The composition target the decoder must satisfy."""
        if self.pattern is Pattern.ELEMENTS:
            return FreeCounts(electronegativity_order(list(self.elements or ())), self.max_atoms)
        if self.formula is not None:
            counts = counts_of(self.formula, "formula")
        else:
            counts = counts_of(self.composition, "composition")
        order = electronegativity_order(list(counts))
        if self.pattern is Pattern.FORMULA:
            return ExactCounts(order, tuple(counts[el] for el in order))
        reduced, _ = reduced_counts(counts)
        ratio = tuple(reduced[el] for el in order)
        if sum(ratio) > self.max_atoms:
            raise InputError(
                f"composition {self.composition} needs {sum(ratio)} atoms per formula unit, "
                f"more than max_atoms={self.max_atoms}"
            )
        return RatioCounts(order, ratio, self.max_atoms)


class ConstraintCandidate(BaseModel):
    """One valid answer: group, sites (canonical order), the cell formula they give, a score."""

    spacegroup: int
    formula: str
    sites: list[SiteSpec]
    score: float

    def constraint(self, band_gap: float | None = None, formation_energy: float | None = None) -> SymmetryConstraint:
        return SymmetryConstraint(
            spacegroup=self.spacegroup, sites=self.sites, band_gap=band_gap, formation_energy=formation_energy
        )


class Prediction(BaseModel):
    id: Any = None
    candidates: list[ConstraintCandidate] = Field(default_factory=list)
    error: str | None = None
