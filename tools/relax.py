"""Batched FIRE relaxation: many structures advance together, the potential is called once per step.

Each structure keeps its own ASE objects — ``FixSymmetry`` (symmetry-constrained mode, default),
``FrechetCellFilter`` (cell relaxation) and ASE's own ``FIRE`` optimiser — so the per-structure
logic is exactly ASE's. Only the expensive part changes: at every step the energies, forces and
stresses of all active structures come from one :meth:`Potential.evaluate` call, are attached to
each ``Atoms`` as a ``SinglePointCalculator``, and every optimiser takes one step with them.
Structures leave the batch when they converge (max generalised force below ``fmax``), hit the step
limit, time out or fail; waiting structures take their place (continuous batching).

A failure (potential error, NaN/inf, runaway energy, force or volume, timeout) is recorded in the
structure's :class:`RelaxResult` with its reason; the batch goes on.

The per-structure timeout counts wall time since the structure entered the batch; since the batch
shares each forward pass, it is "time spent being relaxed", not CPU time of that structure alone.
"""

from __future__ import annotations

import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixSymmetry
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE
from xtalagent import config
from xtalagent.tools.potentials import Potential

#: Convergence: largest force (and cell force) component norm, eV/Å (CHGNet's StructOptimizer default).
FMAX: float = config.RELAX_FMAX
#: Step limit per structure.
MAX_STEPS: int = config.RELAX_MAX_STEPS
#: Wall-time limit per structure (s).
TIMEOUT: float = config.RELAX_TIMEOUT
#: Symmetry tolerance (Å) for FixSymmetry in the symmetry-constrained mode.
FIX_SYMPREC: float = config.RELAX_FIX_SYMPREC
#: Runaway guards: a structure beyond these is recorded as diverged.
MAX_FORCE: float = 1.0e3  # eV/Å
MIN_ENERGY_PER_ATOM: float = -50.0  # eV/atom; no element's reference is below about -15
VOLUME_PER_ATOM_LIMITS: tuple[float, float] = (1.0, 1000.0)  # Å^3


#: Statuses whose energy and structure are usable.
OK_STATUSES = ("converged", "unconverged", "single_point")


@dataclass
class RelaxResult:
    """Outcome of one relaxation. ``status``: converged, unconverged (step limit) or failed."""

    index: int
    atoms: Atoms
    status: str = "pending"
    energy: float = float("nan")  # eV, total, at ``atoms``
    steps: int = 0
    fmax: float = float("nan")
    seconds: float = 0.0
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    @property
    def energy_per_atom(self) -> float:
        return self.energy / len(self.atoms)


@dataclass
class _Job:
    result: RelaxResult
    atoms: Atoms
    optimizable: object
    opt: FIRE
    start: float = field(default_factory=time.perf_counter)


def _prepare(index: int, atoms: Atoms, symmetric: bool, relax_cell: bool, symprec: float) -> _Job:
    atoms = atoms.copy()
    atoms.calc = None
    atoms.set_constraint()
    if symmetric:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atoms.set_constraint(FixSymmetry(atoms, symprec=symprec))
    optimizable = FrechetCellFilter(atoms) if relax_cell else atoms
    opt = FIRE(optimizable, logfile=None)
    return _Job(RelaxResult(index, atoms), atoms, optimizable, opt)


def _runaway(atoms: Atoms, energy: float, forces: np.ndarray) -> str | None:
    n = len(atoms)
    if energy / n < MIN_ENERGY_PER_ATOM:
        return f"diverged: energy {energy / n:.1f} eV/atom"
    fmax = float(np.sqrt((forces**2).sum(axis=1)).max()) if n else 0.0
    if fmax > MAX_FORCE:
        return f"diverged: force {fmax:.3g} eV/Å"
    vol = abs(atoms.get_volume()) / n
    if not VOLUME_PER_ATOM_LIMITS[0] <= vol <= VOLUME_PER_ATOM_LIMITS[1]:
        return f"diverged: volume {vol:.3g} Å^3/atom"
    return None


def relax_batch(
    structures: Sequence[Atoms],
    potential: Potential,
    *,
    fmax: float = FMAX,
    max_steps: int = MAX_STEPS,
    timeout: float = TIMEOUT,
    symmetric: bool = True,
    relax_cell: bool = True,
    symprec: float = FIX_SYMPREC,
    batch_size: int = 16,
    on_done: Callable[[RelaxResult], None] | None = None,
) -> list[RelaxResult]:
    """Relax ``structures`` together; results come back in input order.

    ``on_done`` is called as soon as each structure finishes, so callers can persist results
    while the rest of the batch is still running (an interrupt then loses nothing finished).
    """
    results: list[RelaxResult | None] = [None] * len(structures)
    waiting = deque(range(len(structures)))
    active: list[_Job] = []

    def finish(job: _Job, status: str, failure: str | None = None) -> None:
        res = job.result
        res.status, res.failure = status, failure
        res.seconds = time.perf_counter() - job.start
        res.atoms = job.atoms.copy()
        res.atoms.set_constraint()
        res.atoms.calc = None
        results[res.index] = res
        if on_done is not None:
            on_done(res)

    while waiting or active:
        while waiting and len(active) < batch_size:
            i = waiting.popleft()
            try:
                active.append(_prepare(i, structures[i], symmetric, relax_cell, symprec))
            except Exception as exc:  # FixSymmetry/spglib on a broken cell
                job = _Job(RelaxResult(i, structures[i].copy()), structures[i].copy(), None, None)  # type: ignore[arg-type]
                finish(job, "failed", f"setup failed: {type(exc).__name__}: {exc}")
        if not active:
            break
        evaluations = potential.evaluate([job.atoms for job in active])
        still: list[_Job] = []
        for job, ev in zip(active, evaluations):
            res = job.result
            if ev.error is not None:
                finish(job, "failed", ev.error)
                continue
            if not ev.finite:
                finish(job, "failed", "non-finite energy, forces or stress (NaN/inf)")
                continue
            reason = _runaway(job.atoms, ev.energy, ev.forces)
            if reason:
                res.energy = ev.energy
                finish(job, "failed", reason)
                continue
            job.atoms.calc = SinglePointCalculator(job.atoms, energy=ev.energy, forces=ev.forces, stress=ev.stress)
            res.energy = ev.energy
            try:
                forces = np.asarray(job.optimizable.get_forces())
            except Exception as exc:
                finish(job, "failed", f"constraint/filter failed: {type(exc).__name__}: {exc}")
                continue
            res.fmax = float(np.sqrt((forces**2).sum(axis=1)).max())
            if res.fmax < fmax:
                finish(job, "converged")
            elif res.steps >= max_steps:
                finish(job, "unconverged", f"step limit ({max_steps}) reached, fmax {res.fmax:.3f} eV/Å")
            elif time.perf_counter() - job.start > timeout:
                finish(job, "failed", f"timeout after {timeout:g} s ({res.steps} steps)")
            else:
                try:
                    job.opt.step()  # gradient from the SinglePointCalculator just attached
                except Exception as exc:
                    finish(job, "failed", f"optimiser step failed: {type(exc).__name__}: {exc}")
                    continue
                res.steps += 1
                still.append(job)
        active = still
    return [r for r in results if r is not None]


def relax_one_by_one(structures: Sequence[Atoms], potential: Potential, **kwargs) -> list[RelaxResult]:
    """Same algorithm with batch size 1 (for comparisons and debugging)."""
    return relax_batch(structures, potential, batch_size=1, **kwargs)
