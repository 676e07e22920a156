"""The records a design round passes between its stages, and its settings.

Kept apart from the stage code so that the report, the chat session and the benchmarks can read a
run (:class:`DesignRun`) without importing the stages that made it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from xtalagent import config
from xtalagent.agent.request import DesignRequest
from xtalagent.records import SymmetryConstraint
from xtalagent.structure_gen.settings import SamplerSettings
from xtalagent.tools.settings import RelaxSettings

#: 2: classifier; 3: ratio classifier; 4: band gap, known phases; 5: C1 slots; 6: routing; 7: prototypes
PIPELINE_VERSION: int = 7

Progress = Callable[[str, int, int], None]  # (stage, done, total)
Log = Callable[[str], None]


class DesignSettings(BaseModel):
    """How the pipeline runs (models, sampler, potential); hashed with the request for caching."""

    model_config = ConfigDict(extra="forbid")

    top_k: int = Field(default=config.DESIGN_CONSTRAINT_TOP_K, ge=1, le=50)
    constraint_model: str | None = None  # local folder; None: the embedded default
    constraint_endpoint: str | None = None  # OpenAI-compatible server with the two adapters
    sampler: Literal["auto", "diffusion", "pyxtal"] = "auto"
    diffusion_checkpoint: str | None = None
    #: Structures per constraint transplanted from the closest known prototypes (of the ``variant``'s
    #: known crystals) before the diffusion model samples the rest (0: the model alone).
    prototypes: int = Field(default=SamplerSettings.prototypes, ge=0, le=20)
    prerelax: Literal["auto", "on", "off"] = "auto"  # auto: see prerelax_decision
    potential: str = "auto"
    potential_checkpoint: str | None = None
    relax_max_steps: int = Field(default=config.DESIGN_RELAX_MAX_STEPS, ge=1)
    relax_fmax: float = Field(default=RelaxSettings.fmax, gt=0)
    seed: int = 0
    #: ``release``: the known crystals of every split inform the constraints and the lookups (what
    #: users get); ``eval``: the ``train`` split only (every reported benchmark).
    variant: Literal["release", "eval"] = "release"
    #: Known phases of the requested chemistry relaxed beside the candidates (0: none).
    known_phases: int = Field(default=8, ge=0, le=50)
    #: Half-width of the window a bare band-gap value ("near 3 eV") is checked in, eV.
    band_gap_window: float = Field(default=0.5, gt=0, le=5)
    #: Half-width of the window a bare formation-energy value is checked in, eV/atom.
    formation_energy_window: float = Field(default=0.1, gt=0, le=2)
    #: Subtracted from a requested band gap before it conditions generation and is checked (eV): the
    #: gaps here are PBE-level and PBE underestimates measured gaps (TiO2: about 2 eV against 3 eV
    #: measured). 0 (default): the request is read as a PBE gap. Never applied silently: the
    #: report states it.
    band_gap_offset: float = Field(default=0.0, ge=0, le=5)
    #: Predict band gaps with the shipped model (when present).
    band_gap: bool = True
    #: Structures generated per requested candidate. Above 1, the potential's single-point energy of
    #: every generated structure (no relaxation; a fraction of a second each) picks the requested
    #: number to relax (:func:`~xtalagent.agent.screening.triage_order`); the rest are listed as
    #: generated but not relaxed. 3, measured on 14 MP val formula + formation-energy requests
    #: (bench/experiments/2026-12-design-triage): the share of candidates within 0.05 eV/atom of the
    #: target went from 54 % (no triage) to 66 % picking 5 of 10, 74 % picking 3 of 10.
    oversample: int = Field(default=3, ge=1, le=5)
    #: Relax on this Ray cluster ("local": start one here; see tools/distributed.py). Where the
    #: structures are relaxed does not change the results, so it is left out of the key.
    ray_address: str | None = Field(default=None, exclude=True)

    def key(self, request: DesignRequest) -> str:
        blob = json.dumps(
            {"request": request.model_dump(), "settings": self.model_dump(), "v": PIPELINE_VERSION}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ConstraintChoice(BaseModel):
    """A constraint candidate with its id in this run (C1 is the model's best)."""

    id: str
    spacegroup: int
    spacegroup_symbol: str
    crystal_system: str
    formula: str
    sites: list[dict[str, str]]
    score: float

    def constraint(self, band_gap: float | None = None, formation_energy: float | None = None) -> SymmetryConstraint:
        return SymmetryConstraint.model_validate(
            {
                "spacegroup": self.spacegroup,
                "sites": self.sites,
                "band_gap": band_gap,
                "formation_energy": formation_energy,
            }
        )

    def label(self) -> str:
        sites = ", ".join(f"{s['element']} {s['wyckoff']}" for s in self.sites)
        return f"{self.formula} in {self.spacegroup_symbol} (#{self.spacegroup}): {sites}"


class GeneratedStructure(BaseModel):
    """One requested structure slot: the structure (CIF) if every check passed, else why not."""

    id: str
    constraint_id: str
    spacegroup: int
    formula: str
    sampler: str
    ok: bool
    attempts: int
    seconds: float
    cif: str = ""  # relative to the run folder
    failure: str | None = None
    #: Id of the known crystal whose geometry (elements substituted) the structure took; None: sampled.
    prototype: str | None = None
    #: The potential's single-point formation energy (eV/atom) when the round triaged its structures.
    triage_e_form: float | None = None
    #: Whether screening relaxes it (False: left out by the triage of an oversampled round).
    selected: bool = True


@dataclass
class StageTimes:
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + seconds, 2)


@dataclass
class DesignRun:
    """Everything one pipeline run produced (also what the report is written from)."""

    out: Path
    request: DesignRequest
    settings: DesignSettings
    prompt: str | None = None
    not_understood: list[str] = field(default_factory=list)
    constraints: list[ConstraintChoice] = field(default_factory=list)
    constraint_model: str = ""
    constraint_prior: bool = False  # known crystals like the request voted (neighbour prior)
    constraint_classifier: bool = False  # the composition classifier voted for the group
    constraint_ratio_vote: bool = False  # elements-only: the likeliest ratios' rankings voted for the group
    sampler: str = ""
    sampler_note: str = ""
    structures: list[GeneratedStructure] = field(default_factory=list)
    prerelax: list[dict[str, Any]] = field(default_factory=list)
    prerelax_note: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    known_rows: list[dict[str, Any]] = field(default_factory=list)  # the known phases, screened alike
    band_gap_model: str | None = None  # name of the model behind the band-gap column, if any
    band_gap_metrics: dict[str, Any] = field(default_factory=dict)  # its measured error
    screen_summary: dict[str, Any] = field(default_factory=dict)
    times: StageTimes = field(default_factory=StageTimes)
    wanted: int = 0  # candidates asked for in this round (structures generated: wanted x oversample)
    failures: list[str] = field(default_factory=list)
