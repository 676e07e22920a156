"""Samplers that turn symmetry constraints into candidate structures, and the checked generate loop.

Two interchangeable samplers propose raw structures (``propose``: one candidate per constraint
entry, batched); :func:`generate` checks every candidate (:mod:`checks`), retries the failed ones
and reports what still fails after ``max_attempts`` instead of returning it as fine.

* :class:`DiffusionSampler` — the trained free-variable diffusion model (:mod:`model`).
* :class:`PyxtalSampler` — the classical baseline: PyXtal's random symmetric builder.

The default ``diffusion`` sampler of :func:`make_sampler` first transplants known prototypes
(:mod:`prototypes`: each constraint's first ``prototypes`` proposals take the geometry of the
closest known crystal with its site pattern), then lets the diffusion model sample the rest. Each
result says where its structure came from (:attr:`Generated.prototype`).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xtalagent.errors import InputError
from xtalagent.records import SymmetryConstraint
from xtalagent.structure_gen.checks import CheckResult, check_structure
from xtalagent.structure_gen.prototypes import PROTOTYPE_KEY
from xtalagent.structure_gen.settings import SamplerSettings

#: Shipped checkpoints (``structure_gen/checkpoints``); see the README there for how to rebuild them.
CHECKPOINT_DIR: Path = Path(__file__).resolve().parent / "checkpoints"
#: Checkpoint used when none is named: the general MP model if shipped, else the Perov-5 one.
DEFAULT_CHECKPOINTS: tuple[str, ...] = ("mp_20.pt", "perov_5.pt")
#: Attempts per requested structure before it is reported as failed (:class:`SamplerSettings`).
MAX_ATTEMPTS: int = SamplerSettings.max_attempts
#: Atoms per diffusion batch (all intra-cell pairs are edges, so this bounds memory and time).
DIFFUSION_BATCH_ATOMS: int = 4000
SAMPLERS: tuple[str, ...] = ("diffusion", "pyxtal")
#: Denoising steps of the diffusion sampler (respaced from the training schedule; None: all).
DIFFUSION_STEPS: int | None = SamplerSettings.steps
#: Noise scale of the reverse process (1: exact; below 1: sharper, towards the likeliest structures).
DIFFUSION_TEMPERATURE: float = SamplerSettings.temperature


@dataclass
class Generated:
    """One requested structure: what was produced, whether it passed, and how hard it was."""

    constraint_index: int
    sample_index: int
    structure: object | None  # pymatgen Structure; None when every attempt failed
    check: CheckResult | None
    attempts: int
    sampler: str
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    #: Id of the known crystal whose geometry the structure took (None: the sampler's own)
    prototype: str | None = None

    @property
    def ok(self) -> bool:
        return self.structure is not None and self.check is not None and self.check.ok

    @property
    def reason(self) -> str | None:
        """Why the slot failed (the last attempt's reasons), None when it passed."""
        if self.ok:
            return None
        return self.failures[-1] if self.failures else "not generated"


class PyxtalSampler:
    """PyXtal ``from_random`` with the exact group, species, counts and Wyckoff sites."""

    name = "pyxtal"

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def propose_one(self, constraint: SymmetryConstraint):
        from pyxtal import pyxtal

        species: list[str] = []
        sites: list[list[str]] = []
        counts: list[int] = []
        for site in constraint.sites:
            if site.element not in species:
                species.append(site.element)
                sites.append([])
                counts.append(0)
            i = species.index(site.element)
            sites[i].append(site.wyckoff)
        for el, c in constraint.counts.items():
            counts[species.index(el)] = c
        crystal = pyxtal()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                crystal.from_random(
                    3,
                    constraint.spacegroup,
                    species,
                    counts,
                    sites=sites,
                    random_state=int(self.rng.integers(2**31)),
                )
        except Exception:  # pyxtal signals "could not place atoms" with several exception types
            return None
        if not crystal.valid:
            return None
        return crystal.to_pymatgen()

    def propose(self, constraints: list[SymmetryConstraint]) -> list:
        return [self.propose_one(c) for c in constraints]


class DiffusionSampler:
    """The trained diffusion model: samples free lattice and Wyckoff coordinates, builds cells."""

    name = "diffusion"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        model=None,
        seed: int | None = None,
        steps: int | None = DIFFUSION_STEPS,
        temperature: float = DIFFUSION_TEMPERATURE,
        corrector: bool = True,
        step_lr: float | None = None,
    ) -> None:
        """``corrector``: one Langevin corrector step on the coordinates before each predictor step
        (DiffCSP's predictor-corrector sampler); ``step_lr``: its step size, None for the one the
        checkpoint was trained with (DiffCSP's 1e-5 on MP-20)."""
        import torch

        from xtalagent.structure_gen.train import load_model

        if model is None:
            path = Path(checkpoint) if checkpoint else default_checkpoint()
            if not path.exists():
                raise InputError(f"diffusion checkpoint {path} not found")
            model = load_model(path)
        if steps is not None and steps < 1:
            raise InputError(f"diffusion steps must be at least 1, got {steps}")
        if not 0.0 <= temperature <= 2.0:
            raise InputError(f"diffusion temperature must be in [0, 2], got {temperature}")
        if step_lr is not None and not step_lr > 0:
            raise InputError(f"corrector step size must be positive, got {step_lr}")
        self.model = model
        self.steps = steps
        self.temperature = temperature
        self.corrector = corrector
        self.step_lr = step_lr
        self.generator = torch.Generator().manual_seed(int(seed) if seed is not None else int(time.time_ns() % 2**31))

    def propose(self, constraints: list[SymmetryConstraint]) -> list:
        return self.sample_raw(constraints)

    def sample_raw(self, constraints: list[SymmetryConstraint]) -> list:
        """One structure per constraint (None if it cannot be built), batched by atom count."""
        from xtalagent.structure_gen.featurize import collate, example_from_constraint, lattice_from_vector
        from xtalagent.structure_gen.freeparams import build_structure

        examples = [example_from_constraint(c) for c in constraints]
        out: list = [None] * len(constraints)
        start = 0
        while start < len(examples):
            end, atoms = start, 0
            while end < len(examples) and (end == start or atoms + examples[end].natoms <= DIFFUSION_BATCH_ATOMS):
                atoms += examples[end].natoms
                end += 1
            chunk = examples[start:end]
            batch = collate(chunk)
            lat, free = self._sample(batch)
            lat, free = lat.numpy(), free.numpy()
            offset = 0
            for j, ex in enumerate(chunk):
                s = len(ex.orbit_dof)
                coords = [free[offset + k, : ex.orbit_dof[k]] for k in range(s)]
                offset += s
                try:
                    lattice = lattice_from_vector(ex.spacegroup, lat[j], ex.natoms)
                    out[start + j] = build_structure(constraints[start + j], lattice, coords)
                except Exception:  # degenerate lattice from a diverged sample: counts as a failure
                    out[start + j] = None
            start = end
        return out

    def _sample(self, batch: dict) -> tuple[Any, Any]:
        """One batched reverse diffusion; a ``step_lr`` override applies to this call only (the
        model reads its corrector step from its config, which stays the checkpoint's afterwards)."""
        from dataclasses import replace

        kept = self.model.cfg
        if self.step_lr is not None:
            self.model.cfg = replace(kept, step_lr=self.step_lr)
        try:
            return self.model.sample(
                batch,
                generator=self.generator,
                steps=self.steps,
                temperature=self.temperature,
                corrector=self.corrector,
            )
        finally:
            self.model.cfg = kept


def default_checkpoint() -> Path:
    for name in DEFAULT_CHECKPOINTS:
        if (CHECKPOINT_DIR / name).exists():
            return CHECKPOINT_DIR / name
    return CHECKPOINT_DIR / DEFAULT_CHECKPOINTS[0]


def make_sampler(
    name: str,
    checkpoint: str | Path | None = None,
    seed: int | None = None,
    steps: int | None = DIFFUSION_STEPS,
    temperature: float = DIFFUSION_TEMPERATURE,
    corrector: bool = True,
    step_lr: float | None = None,
    *,
    prototypes: int = SamplerSettings.prototypes,
    variant: str = "eval",
):
    """A sampler by name (``diffusion`` or ``pyxtal``).

    ``diffusion``: each constraint's first ``prototypes`` proposals are known prototypes
    (:class:`~xtalagent.structure_gen.prototypes.PrototypeSampler`, over the known crystals of the
    knowledge ``variant``: ``eval``, every benchmark's, the ``train`` split only; ``release`` every
    split), the rest come from the model. Without a ``checkpoint`` the model is chosen per
    constraint among the shipped ones
    (:class:`~xtalagent.structure_gen.routing.RoutedDiffusionSampler`: a specialist such as the
    Perov-5 model inside its training domain, the general MP model elsewhere); a named checkpoint
    is used for every constraint. ``pyxtal`` is the classical baseline, without prototypes.
    """
    if prototypes < 0:
        raise InputError(f"prototypes must be 0 or more, got {prototypes}")
    if name == "pyxtal":
        return PyxtalSampler(seed=seed)
    if name == "diffusion":
        options: dict[str, Any] = {
            "seed": seed,
            "steps": steps,
            "temperature": temperature,
            "corrector": corrector,
            "step_lr": step_lr,
        }
        model: Any = None
        if checkpoint is None:
            from xtalagent.structure_gen.routing import shipped_router

            model = shipped_router(**options)
        model = model or DiffusionSampler(checkpoint=checkpoint, **options)
        if not prototypes:
            return model
        from xtalagent.structure_gen.prototypes import PrototypeSampler, shipped_library

        return PrototypeSampler(model, shipped_library(variant), prototypes)
    raise InputError(f"unknown sampler {name!r} (choose from {', '.join(SAMPLERS)})")


def generate(
    constraints: list[SymmetryConstraint],
    n: int = 1,
    sampler=None,
    max_attempts: int = MAX_ATTEMPTS,
) -> list[Generated]:
    """``n`` checked structures per constraint; failures after ``max_attempts`` are reported.

    Every slot (constraint, sample) is proposed in one batch per attempt, so the diffusion
    sampler stays batched through the retries.
    """
    sampler = sampler or PyxtalSampler()
    slots = [(i, k) for i in range(len(constraints)) for k in range(n)]
    results: dict[tuple[int, int], Generated] = {
        slot: Generated(slot[0], slot[1], None, None, 0, sampler.name) for slot in slots
    }
    pending = list(slots)
    for _ in range(max_attempts):
        if not pending:
            break
        t0 = time.perf_counter()
        proposals = sampler.propose([constraints[i] for i, _ in pending])
        per = (time.perf_counter() - t0) / max(len(pending), 1)
        still = []
        for slot, structure in zip(pending, proposals):
            res = results[slot]
            res.attempts += 1
            res.seconds += per
            if structure is None:
                res.failures.append("sampler could not build a structure")
                still.append(slot)
                continue
            check = check_structure(structure, constraints[slot[0]])
            res.check = check
            if check.ok:
                res.structure = structure
                res.prototype = structure.properties.get(PROTOTYPE_KEY)
            else:
                res.failures.append("; ".join(check.reasons))
                still.append(slot)
        pending = still
    return [results[slot] for slot in slots]
