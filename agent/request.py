"""A design request in structured form: what the parser (offline) or a chat model (online) produces.

Everything downstream (constraint generation, filtering, screening, the report) reads this object
only, so the two ways of understanding words stay interchangeable and testable on their own.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from xtalagent import config
from xtalagent.composition import check_element, parse_counts
from xtalagent.errors import InputError
from xtalagent.symmetry import check_spacegroup

CrystalSystem = Literal["triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic"]
CRYSTAL_SYSTEMS: tuple[str, ...] = CrystalSystem.__args__  # type: ignore[attr-defined]

# Plausible values a request may name: a band gap is never negative and no crystal's exceeds ~14 eV
# (LiF); formation energies lie within about -4.5 (fluorides) and +4 eV/atom. Anything outside is a
# typo or a unit mistake, and would only push the constraint model off its training range.
PROPERTY_LIMITS: dict[str, tuple[float, float, str]] = {
    "band_gap": (0.0, 20.0, "eV"),
    "formation_energy": (-10.0, 5.0, "eV/atom"),
}
# Settings shown whenever the user stated them, even at their default value (see ``_keep_stated``).
STATED_SETTINGS = ("stable", "max_atoms", "n_candidates")
#: The largest cell any request may ask for (a cell formula up to it sets its own limit).
MAX_ATOMS_LIMIT: int = 200


class PropertyTarget(BaseModel):
    """A target on one property: a value with a tolerance, or bounds (either side may be open).

    ``value`` is what the constraint model is conditioned on; the bounds are what screening checks
    when the property can be computed (formation energy: yes; band gap: no potential predicts it,
    so it only conditions generation).
    """

    model_config = ConfigDict(extra="forbid")

    value: float | None = Field(default=None, allow_inf_nan=False)
    tolerance: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    minimum: float | None = Field(default=None, allow_inf_nan=False)
    maximum: float | None = Field(default=None, allow_inf_nan=False)

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
    max_atoms: int = Field(default=config.MAX_ATOMS_PER_CELL, ge=1, le=MAX_ATOMS_LIMIT)
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
        for name in PROPERTY_LIMITS:
            _check_limits(name, getattr(self, name))
        if self.formula is not None:
            n = sum(parse_counts(self.formula).values())
            if n > self.max_atoms and "max_atoms" not in self.model_fields_set and n <= MAX_ATOMS_LIMIT:
                # a cell formula states its own size: the default limit (meant for ratios and
                # element requests, where the model chooses the size) does not refuse it
                self.__dict__["max_atoms"] = n
            if n > self.max_atoms:
                raise InputError(f"formula {self.formula} has {n} atoms, more than the limit of {self.max_atoms}")
        return self

    @model_serializer(mode="wrap")
    def _keep_stated(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        """``exclude_defaults`` still shows the settings the user stated ("10 candidates", "at most 20 atoms")."""
        data = handler(self)
        if info.exclude_defaults and isinstance(data, dict):
            for name in STATED_SETTINGS:
                if name in self.model_fields_set and name not in data and not _excluded(name, info):
                    data[name] = getattr(self, name)
        return data

    def has_composition(self) -> bool:
        return any(getattr(self, n) is not None for n in ("formula", "composition", "elements"))

    def composition_elements(self) -> list[str]:
        if self.elements is not None:
            return list(self.elements)
        text = self.formula or self.composition
        return list(parse_counts(text)) if text else []


def _check_limits(name: str, target: PropertyTarget | None) -> None:
    """Refuse a target outside the plausible range of its property (a negative band gap, 1e308 eV)."""
    if target is None:
        return
    low, high, unit = PROPERTY_LIMITS[name]
    label = name.replace("_", " ")
    for key in ("value", "minimum", "maximum"):
        x = getattr(target, key)
        if x is None:
            continue
        what = f"a {label} of {x:g} {unit}" if key == "value" else f"a {label} {key} of {x:g} {unit}"
        if name == "band_gap" and x < 0:
            raise InputError(f"{what} is impossible: a band gap cannot be negative")
        if not low <= x <= high:
            raise InputError(f"{what} is outside the plausible range {low:g} to {high:g} {unit}")


def _excluded(name: str, info: SerializationInfo) -> bool:
    include, exclude = info.include, info.exclude
    return (include is not None and name not in include) or (exclude is not None and name in exclude)


class ParseResult(BaseModel):
    """The parser's answer: the request it understood, what it could not place, what it must ask."""

    request: DesignRequest | None = None
    not_understood: list[str] = Field(default_factory=list)
    questions: list[str] = Field(default_factory=list)
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.request is not None and self.request.has_composition() and not self.questions and not self.error
