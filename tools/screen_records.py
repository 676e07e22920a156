"""Records of the screening stage: its settings, a candidate, the report (shared by the serial
and the Ray screening paths and the writers)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pymatgen.core import Structure

from xtalagent import config
from xtalagent.tools.settings import RelaxSettings

#: Bumped whenever per-structure results change meaning, so caches are recomputed.
CACHE_VERSION: int = 3  # 2: optimiser in the key; MP2020 hull table; 3: band gap

SUMMARY_COLUMNS = [
    "rank", "id", "formula", "natoms", "requested_spacegroup", "final_spacegroup", "symmetry_kept",
    "crystal_system", "status", "energy_eV", "energy_per_atom", "e_form", "e_hull", "band_gap", "band_gap_std",
    "meets_band_gap", "steps", "fmax",
    "valid_structure", "valid_composition", "phonon_stable", "stable", "unique", "novel", "sun",
    "prerelax_reached", "prerelax_used", "potential", "checkpoint", "failure", "cif", "source",
]  # fmt: skip


@dataclass
class ScreenSettings:
    """Everything that changes a per-structure result (hashed into the cache key)."""

    potential: str = "auto"
    checkpoint: str | None = None
    relax: bool = True
    symmetric: bool = True
    fmax: float = RelaxSettings.fmax
    max_steps: int = RelaxSettings.max_steps
    timeout: float = RelaxSettings.timeout
    optimizer: str = RelaxSettings.optimizer
    stability: bool = True
    hull_table: str | None = None
    phonons: bool = False
    symprec: float = config.CHECK_SYMPREC
    prerelax: str | None = None  # name of the pre-relaxation hook, if any
    band_gap_model: str | None = None  # name of the band-gap model, if any

    def key(self) -> str:
        blob = json.dumps({**asdict(self), "version": CACHE_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class StructureCandidate:
    id: str
    source: str
    cif_text: str = ""
    structure: Structure | None = None
    requested_spacegroup: int | None = None
    error: str | None = None

    @property
    def input_hash(self) -> str:
        return hashlib.sha256(self.cif_text.encode()).hexdigest()[:16]


@dataclass
class ScreenReport:
    out: Path
    rows: list[dict[str, Any]]
    n_candidates: int
    n_cached: int
    n_relaxed: int
    n_failed: int
    sun_rate: float | None
    symmetry_by_system: dict[str, dict[str, float]]
    provenance: dict[str, Any]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
