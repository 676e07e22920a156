"""Records that cross stage boundaries: plain, validated, JSON in and out.

A :class:`SymmetryConstraint` (group + Wyckoff sites + optional property targets) is what the
constraint generator returns and the structure generator consumes; a :class:`CrystalRecord` is one
labelled crystal of a dataset. Both validate themselves against the Wyckoff tables, so an invalid
object cannot travel between stages.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xtalagent.composition import check_element, format_counts, reduced_formula
from xtalagent.errors import InputError
from xtalagent.symmetry import check_spacegroup, wyckoff_info

#: Band gap targets accepted, eV (the widest gap in the MP training data is 16.6 eV).
BAND_GAP_RANGE: tuple[float, float] = (0.0, 20.0)
#: Formation energy targets accepted, eV/atom (MP's range is about -4.5 to 5.1).
FORMATION_ENERGY_RANGE: tuple[float, float] = (-10.0, 10.0)


class ConditioningProperties(BaseModel):
    """Target properties of a request; ``None`` means unconstrained.

    Targets must be finite and physical: a ``NaN`` or ``1e308`` would reach the model and change
    the ranking without a word.
    """

    model_config = ConfigDict(extra="forbid")

    band_gap: float | None = Field(
        default=None, ge=BAND_GAP_RANGE[0], le=BAND_GAP_RANGE[1], allow_inf_nan=False, description="PBE band gap, eV"
    )
    formation_energy: float | None = Field(
        default=None,
        ge=FORMATION_ENERGY_RANGE[0],
        le=FORMATION_ENERGY_RANGE[1],
        allow_inf_nan=False,
        description="formation energy, eV/atom",
    )


class SiteSpec(BaseModel):
    """One occupied Wyckoff orbit: an element on a position such as ``4a``."""

    model_config = ConfigDict(extra="forbid")

    element: str
    wyckoff: str

    @field_validator("element")
    @classmethod
    def _element(cls, value: str) -> str:
        return check_element(value)


class SymmetryConstraint(ConditioningProperties):
    """Space group + Wyckoff sites (+ targets): everything the structure generator needs.

    Validation guarantees: the group exists, every label exists in it (bare letters are
    normalised to ``4a`` form), and a position without free parameters hosts at most one orbit.
    """

    spacegroup: int
    sites: list[SiteSpec] = Field(min_length=1)

    @field_validator("spacegroup")
    @classmethod
    def _group(cls, value: int) -> int:
        return check_spacegroup(value)

    @model_validator(mode="after")
    def _wyckoff(self) -> SymmetryConstraint:
        used: Counter[str] = Counter()
        for site in self.sites:
            info = wyckoff_info(self.spacegroup, site.wyckoff)
            site.wyckoff = info.label
            used[info.label] += 1
            if info.dof == 0 and used[info.label] > 1:
                raise InputError(
                    f"Wyckoff position {info.label} of space group {self.spacegroup} has no free "
                    "parameters and can host only one orbit"
                )
        return self

    @property
    def counts(self) -> dict[str, int]:
        """Atoms per element in the conventional cell."""
        counts: dict[str, int] = {}
        for site in self.sites:
            mult = wyckoff_info(self.spacegroup, site.wyckoff).multiplicity
            counts[site.element] = counts.get(site.element, 0) + mult
        return counts

    @property
    def formula(self) -> str:
        return format_counts(self.counts)

    def check_counts(self, counts: dict[str, int]) -> None:
        """Raise :class:`InputError` unless the sites add up exactly to ``counts``."""
        mine = self.counts
        if mine != {k: v for k, v in counts.items() if v}:
            raise InputError(f"sites give {format_counts(mine)} but the composition is {format_counts(counts)}")


class WyckoffSite(SiteSpec):
    """A labelled site of a known crystal, with its representative position and free values."""

    multiplicity: int
    letter: str
    dof: int
    position: tuple[float, float, float]
    free_params: list[float] = Field(default_factory=list)


class CrystalRecord(BaseModel):
    """One symmetry-labelled crystal (conventional standard cell)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    source: str = ""
    split: str = ""
    formula: str  # cell formula of the conventional cell, e.g. Sc2Ni6
    reduced_formula: str
    elements: list[str]
    natoms: int
    spacegroup: int
    symprec: float
    lattice: tuple[float, float, float, float, float, float]
    sites: list[WyckoffSite]
    properties: dict[str, float | None] = Field(default_factory=dict)
    cif: str = ""

    @property
    def cell_counts(self) -> dict[str, int]:
        """Atoms per element in the conventional cell (the full formula, as CrystalGF reads it)."""
        counts: dict[str, int] = {}
        for site in self.sites:
            counts[site.element] = counts.get(site.element, 0) + site.multiplicity
        return counts

    def constraint(self, band_gap: float | None = None, formation_energy: float | None = None) -> SymmetryConstraint:
        """The symmetry constraint this crystal satisfies."""
        return SymmetryConstraint(
            spacegroup=self.spacegroup,
            sites=[SiteSpec(element=s.element, wyckoff=s.wyckoff) for s in self.sites],
            band_gap=band_gap,
            formation_energy=formation_energy,
        )

    def structure(self):
        """The conventional cell as a pymatgen Structure."""
        import warnings

        from pymatgen.core import Structure

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymatgen notes rounding of ideal coordinates
            return Structure.from_str(self.cif, fmt="cif")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CrystalRecord:
        """Rebuild from a dataset row (see :mod:`xtalagent.data.schema`)."""
        return cls.model_validate({k: row[k] for k in cls.model_fields if k in row})


def counts_summary(counts: dict[str, int]) -> tuple[str, str]:
    """(cell formula, reduced formula) of atom counts."""
    return format_counts(counts), reduced_formula(counts)
