"""Defaults of the screening stage's relaxation (:mod:`xtalagent.tools.relax`, :mod:`~xtalagent.tools.screen`).

Kept apart from the modules that use them (and free of ASE and torch) so the CLI can show them as
option defaults without loading a potential.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RelaxSettings:
    """How the batched relaxer (:func:`xtalagent.tools.relax.relax_batch`) relaxes each structure."""

    #: Convergence: largest force (and cell force) component norm, eV/Å (CHGNet's StructOptimizer default).
    fmax: float = 0.1
    #: Step limit per structure (a design run uses fewer, see ``DesignSettings.relax_max_steps``).
    max_steps: int = 500
    #: Wall-time limit per structure (s), counted from when it enters the batch.
    timeout: float = 600.0
    #: Symmetry tolerance (Å) of ASE's FixSymmetry in the symmetry-constrained mode.
    fix_symprec: float = 0.01
    #: ASE optimiser: BFGS takes ~1.65x fewer steps than FIRE to the same fmax
    #: (bench/results/screen_throughput.json); FIRE reproduces CHGNet's StructOptimizer step by step.
    optimizer: str = "BFGS"
    #: Structures relaxed together: one forward pass of the potential per step for all of them.
    batch_size: int = 16
