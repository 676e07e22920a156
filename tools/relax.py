"""Batched relaxation: many structures advance together, the potential is called once per step.

Each structure keeps its own ASE objects — ``FixSymmetry`` (symmetry-constrained mode, default),
``FrechetCellFilter`` (cell relaxation) and an ASE optimiser (``BFGS`` by default; ``FIRE``, as in
CHGNet's ``StructOptimizer``, and ``LBFGS`` on request) — so the per-structure logic is ASE's. Only
the expensive part changes: at every step the energies, forces and stresses of all active
structures come from one :meth:`Potential.evaluate` call, are attached to each ``Atoms`` as a
``SinglePointCalculator``, and every optimiser takes one step with them. Structures leave the batch
when they converge (max generalised force below ``fmax``, the criterion of ASE's ``Optimizer.run``),
hit the step limit, time out or fail; waiting structures take their place (continuous batching).

Why BFGS by default: with the same convergence criterion it needs about half the steps of FIRE
on near-equilibrium crystals (MP cells rattled by 0.05-0.2 Å and strained by 3-10 %: mean 12-30
steps vs 21-46) and reaches the same energies (mean |ΔE| < 1 meV/atom); see
``xtalagent bench screen throughput``. From random starting points the two optimisers can end in
different local minima (either way), as any two optimisers can.

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
from ase.optimize import BFGS, FIRE, LBFGS
from ase.optimize.optimize import Optimizer

from xtalagent.tools.potentials import Evaluation, Potential
from xtalagent.tools.settings import RelaxSettings

#: Runaway guards: a structure beyond these is recorded as diverged.
MAX_FORCE: float = 1.0e3  # eV/Å
MIN_ENERGY_PER_ATOM: float = -50.0  # eV/atom; no element's reference is below about -15
VOLUME_PER_ATOM_LIMITS: tuple[float, float] = (1.0, 1000.0)  # Å^3


#: ASE optimisers that take exactly one energy/force evaluation per step (line searches would not fit
#: the one-forward-pass-per-step batch). All use ASE's default parameters.
OPTIMIZERS: dict[str, type[Optimizer]] = {"FIRE": FIRE, "BFGS": BFGS, "LBFGS": LBFGS}

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


def logm_3x3(m: np.ndarray) -> np.ndarray:
    """Matrix logarithm of a real 3x3 matrix with positive determinant close to a multiple of the identity.

    ``FrechetCellFilter`` takes ``scipy.linalg.logm`` of the deformation gradient (and of N times it)
    two to three times per step, about 3 ms each on this CPU — as much as a third of a batched CHGNet
    step for a 10-atom cell. For these near-identity matrices the same logarithm comes from
    ``log(M) = log(c) I + 2 artanh(Z)``, ``Z = (M/c - I)(M/c + I)^-1``, ``c = det(M)^(1/3)``, summed
    to machine precision in a few 3x3 products (~30 µs). Anything else (det <= 0, ``M/c`` far from
    the identity, non-finite input) goes to ``scipy.linalg.logm`` unchanged. Tested against scipy.
    """
    from scipy.linalg import logm

    m = np.asarray(m, dtype=float)
    det = float(np.linalg.det(m)) if m.shape == (3, 3) else float("nan")
    if not (np.isfinite(det) and det > 0 and np.all(np.isfinite(m))):
        return logm(m)
    c = det ** (1.0 / 3.0)
    x = m / c
    eye = np.eye(3)
    if np.abs(x - eye).sum(axis=1).max() > 0.5:  # infinity norm: far from identity, let scipy handle it
        return logm(m)
    z = np.linalg.solve((x + eye).T, (x - eye).T).T  # (X - I)(X + I)^-1; the factors commute
    z2 = z @ z
    term, out = z, z.copy()
    for k in range(3, 200, 2):  # ||Z|| <= 1/3 here: each term shrinks by at least 9x
        term = term @ z2
        out += term / k
        if np.abs(term).max() < 1e-18:
            break
    return 2.0 * out + np.log(c) * eye


class _FrechetCellFilter(FrechetCellFilter):
    """ASE's ``FrechetCellFilter`` with the same generalised forces, computed once per step.

    The batch loop reads the forces for the convergence check and the optimiser reads them again
    for its step; both see the same atoms and calculator, so the second read returns the first
    result instead of recomputing (9 ``expm_frechet`` calls and a matrix log). ``logm`` is
    :func:`logm_3x3`. Nothing else differs from ASE.
    """

    def __init__(self, atoms: Atoms) -> None:
        super().__init__(atoms)
        self._utility.logm = logm_3x3
        self._cache: tuple[object, np.ndarray, np.ndarray, np.ndarray] | None = None

    def get_forces(self, **kwargs) -> np.ndarray:
        if kwargs:  # e.g. apply_constraint=False: not what the optimiser and the loop read, no caching
            return super().get_forces(**kwargs)
        atoms = self.atoms
        c = self._cache
        if (
            c is not None
            and c[0] is atoms.calc
            and np.array_equal(c[1], atoms.positions)
            and np.array_equal(c[2], atoms.cell.array)
        ):
            return c[3].copy()
        forces = super().get_forces()
        self._cache = (atoms.calc, atoms.positions.copy(), atoms.cell.array.copy(), forces.copy())
        return forces


@dataclass
class _Job:
    result: RelaxResult
    atoms: Atoms
    optimizable: Atoms | FrechetCellFilter
    opt: Optimizer
    start: float = field(default_factory=time.perf_counter)


def _prepare(
    index: int, atoms: Atoms, symmetric: bool, relax_cell: bool, symprec: float, optimizer: type[Optimizer]
) -> _Job:
    atoms = atoms.copy()
    atoms.calc = None
    atoms.set_constraint()
    if symmetric:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atoms.set_constraint(FixSymmetry(atoms, symprec=symprec))
    optimizable = _FrechetCellFilter(atoms) if relax_cell else atoms
    opt = optimizer(optimizable, logfile=None)  # type: ignore[arg-type]  # ASE optimizers take filters
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


def _advance(
    job: _Job, ev: Evaluation, *, fmax: float, max_steps: int, timeout: float
) -> tuple[str, str | None] | None:
    """One optimiser step of ``job`` from its fresh evaluation ``ev``; returns the job's final
    (status, failure) when it stops here, None when it goes on."""
    res = job.result
    if ev.error is not None:
        return "failed", ev.error
    if not ev.finite:
        return "failed", "non-finite energy, forces or stress (NaN/inf)"
    assert ev.forces is not None  # finite, so evaluated
    reason = _runaway(job.atoms, ev.energy, ev.forces)
    res.energy = ev.energy
    if reason:
        return "failed", reason
    job.atoms.calc = SinglePointCalculator(job.atoms, energy=ev.energy, forces=ev.forces, stress=ev.stress)
    try:
        forces = np.asarray(job.optimizable.get_forces())
    except Exception as exc:
        return "failed", f"constraint/filter failed: {type(exc).__name__}: {exc}"
    res.fmax = float(np.sqrt((forces**2).sum(axis=1)).max())
    if res.fmax < fmax:
        return "converged", None
    if res.steps >= max_steps:
        return "unconverged", f"step limit ({max_steps}) reached, fmax {res.fmax:.3f} eV/Å"
    if time.perf_counter() - job.start > timeout:
        return "failed", f"timeout after {timeout:g} s ({res.steps} steps)"
    try:
        job.opt.step()  # gradient from the SinglePointCalculator just attached
    except Exception as exc:
        return "failed", f"optimiser step failed: {type(exc).__name__}: {exc}"
    res.steps += 1
    return None


def relax_batch(
    structures: Sequence[Atoms],
    potential: Potential,
    *,
    fmax: float = RelaxSettings.fmax,
    max_steps: int = RelaxSettings.max_steps,
    timeout: float = RelaxSettings.timeout,
    symmetric: bool = True,
    relax_cell: bool = True,
    symprec: float = RelaxSettings.fix_symprec,
    batch_size: int = RelaxSettings.batch_size,
    optimizer: str = RelaxSettings.optimizer,
    on_done: Callable[[RelaxResult], None] | None = None,
) -> list[RelaxResult]:
    """Relax ``structures`` together; results come back in input order.

    Defaults are :class:`~xtalagent.tools.settings.RelaxSettings`'s (``symprec`` is its ``fix_symprec``).
    ``optimizer``: a name in :data:`OPTIMIZERS` (ASE's class with its default parameters).
    Convergence is the same for all: largest row norm of the filter's generalised forces below ``fmax``.

    ``on_done`` is called as soon as each structure finishes, so callers can persist results
    while the rest of the batch is still running (an interrupt then loses nothing finished).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r} (choose from {', '.join(OPTIMIZERS)})")
    opt_class = OPTIMIZERS[optimizer]
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
                active.append(_prepare(i, structures[i], symmetric, relax_cell, symprec, opt_class))
            except Exception as exc:  # FixSymmetry/spglib on a broken cell
                job = _Job(RelaxResult(i, structures[i].copy()), structures[i].copy(), None, None)  # type: ignore[arg-type]
                finish(job, "failed", f"setup failed: {type(exc).__name__}: {exc}")
        if not active:
            break
        evaluations = potential.evaluate([job.atoms for job in active])
        still: list[_Job] = []
        for job, ev in zip(active, evaluations):
            outcome = _advance(job, ev, fmax=fmax, max_steps=max_steps, timeout=timeout)
            if outcome is None:
                still.append(job)
            else:
                finish(job, *outcome)
        active = still
    return [r for r in results if r is not None]


def relax_one_by_one(structures: Sequence[Atoms], potential: Potential, **kwargs) -> list[RelaxResult]:
    """Same algorithm with batch size 1 (for comparisons and debugging)."""
    return relax_batch(structures, potential, batch_size=1, **kwargs)
