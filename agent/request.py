"""A design request in structured form: what the parser (offline) or a chat model (online) produces.

Everything downstream (constraint generation, filtering, screening, the report) reads this object
only, so the two ways of understanding words stay interchangeable and testable on their own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from xtalagent import config
from xtalagent.composition import check_element, parse_counts
from xtalagent.errors import InputError
from xtalagent.symmetry import check_spacegroup

CrystalSystem = Literal["triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic"]
CRYSTAL_SYSTEMS: tuple[str, ...] = CrystalSystem.__args__  # type: ignore[attr-defined]


class PropertyTarget(BaseModel):
    """A target on one property: a value with a tolerance, or bounds (either side may be open).

    ``value`` is what the constraint model is conditioned on; the bounds are what screening checks
    when the property can be computed (formation energy: yes; band gap: no potential predicts it,
    so it only conditions generation).
    """

    model_config = ConfigDict(extra="forbid")

    value: float | None = None
    tolerance: float | None = Field(default=None, ge=0)
    minimum: float | None = None
    maximum: float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PropertyTarget:
        if self.value is None and self.minimum is None and self.maximum is None:
            raise InputError("a property target needs a value or a bound")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise InputError(f"contradictory bounds: minimum {self.minimum} > maximum {self.maximum}")
        if self.value is not None and self.tolerance is None:
            if self.minimum is not None and self.value < self.minimum:
                raise InputError(f"target {self.value} is below the minimum {self.minimum}")
            if self.maximum is not None and self.value > self.maximum:
                raise InputError(f"target {self.value} is above the maximum {self.maximum}")
        return self

    def conditioning_value(self) -> float:
        """The single number the generators are conditioned on (centre of the wish)."""
        if self.value is not None:
            return self.value
        if self.minimum is not None and self.maximum is not None:
            return (self.minimum + self.maximum) / 2
        return self.minimum if self.minimum is not None else self.maximum  # type: ignore[return-value]

    def bounds(self) -> tuple[float | None, float | None]:
        """Accepted interval: value ± tolerance when a tolerance is given, else the explicit bounds."""
        lo, hi = self.minimum, self.maximum
        if self.value is not None and self.tolerance is not None:
            lo = self.value - self.tolerance if lo is None else max(lo, self.value - self.tolerance)
            hi = self.value + self.tolerance if hi is None else min(hi, self.value + self.tolerance)
        return lo, hi

    def accepts(self, x: float) -> bool:
        lo, hi = self.bounds()
        return (lo is None or x >= lo) and (hi is None or x <= hi)

    def describe(self, unit: str) -> str:
        parts = []
        if self.value is not None:
            parts.append(f"{self.value:g} {unit}" + (f" ± {self.tolerance:g}" if self.tolerance is not None else ""))
        if self.minimum is not None:
            parts.append(f"≥ {self.minimum:g} {unit}")
        if self.maximum is not None:
            parts.append(f"≤ {self.maximum:g} {unit}")
        return ", ".join(parts)


class DesignRequest(BaseModel):
    """What the user asked for, in units the pipeline uses (eV, eV/atom, atoms per conventional cell).

    Exactly one composition form: ``formula`` (full cell formula, counts literal), ``composition``
    (a ratio such as ``TiO2``; the number of formula units is chosen up to ``max_atoms``) or
    ``elements`` (the ratio is proposed too).
    """

    model_config = ConfigDict(extra="forbid")

    formula: str | None = None
    composition: str | None = None
    elements: list[str] | None = None
    band_gap: PropertyTarget | None = None
    formation_energy: PropertyTarget | None = None
    stable: bool = False
    crystal_systems: list[CrystalSystem] = Field(default_factory=list)
    spacegroups: list[int] = Field(default_factory=list)
    exclude_elements: list[str] = Field(default_factory=list)
    exclude_spacegroups: list[int] = Field(default_factory=list)
    exclude_crystal_systems: list[CrystalSystem] = Field(default_factory=list)
    max_atoms: int = Field(default=config.MAX_ATOMS_PER_CELL, ge=1, le=200)
    n_candidates: int = Field(default=config.DESIGN_N_CANDIDATES, ge=1, le=500)

    @field_validator("elements", "exclude_elements")
    @classmethod
    def _elements(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for symbol in value:
            check_element(symbol)
        if len(set(value)) != len(value):
            raise InputError(f"an element is repeated: {value}")
        return value

    @field_validator("formula", "composition")
    @classmethod
    def _formula(cls, value: str | None) -> str | None:
        if value is not None:
            parse_counts(value)
        return value

    @field_validator("spacegroups", "exclude_spacegroups")
    @classmethod
    def _groups(cls, value: list[int]) -> list[int]:
        return [check_spacegroup(g) for g in value]

    @model_validator(mode="after")
    def _consistent(self) -> DesignRequest:
        given = [n for n in ("formula", "composition", "elements") if getattr(self, n) is not None]
        if len(given) > 1:
            raise InputError(f"give one composition form, not {' and '.join(given)}")
        if self.elements is not None and not self.elements:
            raise InputError("no elements given")
        banned = set(self.exclude_elements) & set(self.composition_elements())
        if banned:
            raise InputError(f"the composition contains excluded element(s) {', '.join(sorted(banned))}")
        both = set(self.spacegroups) & set(self.exclude_spacegroups)
        if both:
            raise InputError(f"space group(s) {sorted(both)} both requested and excluded")
        both_sys = set(self.crystal_systems) & set(self.exclude_crystal_systems)
        if both_sys:
            raise InputError(f"crystal system(s) {sorted(both_sys)} both requested and excluded")
        if self.band_gap is not None:
            lo, hi = self.band_gap.bounds()
            if hi is not None and hi < 0:
                raise InputError("a band gap cannot be negative")
        if self.formula is not None:
            n = sum(parse_counts(self.formula).values())
            if n > self.max_atoms:
                raise InputError(f"formula {self.formula} has {n} atoms, more than the limit of {self.max_atoms}")
        return self

    def has_composition(self) -> bool:
        return any(getattr(self, n) is not None for n in ("formula", "composition", "elements"))

    def composition_elements(self) -> list[str]:
        if self.elements is not None:
            return list(self.elements)
        text = self.formula or self.composition
        return list(parse_counts(text)) if text else []


class ParseResult(BaseModel):
    """The parser's answer: the request it understood, what it could not place, what it must ask."""

    request: DesignRequest | None = None
    not_understood: list[str] = Field(default_factory=list)
    questions: list[str] = Field(default_factory=list)
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.request is not None and self.request.has_composition() and not self.questions and not self.error
