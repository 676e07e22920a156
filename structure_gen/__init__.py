"""Structure generator: symmetry-conditioned diffusion over free lattice and Wyckoff variables (issue #4).

Python API::

    from xtalagent.structure_gen import sample
    results = sample([{"spacegroup": 225, "sites": [{"element": "Na", "wyckoff": "4a"},
                                                    {"element": "Cl", "wyckoff": "4b"}]}], n=3)
    [r.structure for r in results if r.ok]   # checked pymatgen Structures

Modules: ``freeparams`` (free variables <-> structure), ``featurize`` (tensors), ``model``
(denoiser + diffusion), ``train`` (loop, checkpoints), ``samplers`` (diffusion / PyXtal + checked
generate loop), ``checks``, ``matching``, ``evaluate`` (eval-csp), ``io`` (JSONL in, CIF out),
``commands`` (CLI functions).
"""

from __future__ import annotations

from pathlib import Path


def sample(
    constraints: list,
    n: int = 1,
    sampler: str = "diffusion",
    checkpoint: str | Path | None = None,
    seed: int | None = None,
    max_attempts: int | None = None,
    steps: int | None = None,
    temperature: float | None = None,
):
    """``n`` checked structures per constraint (dicts or SymmetryConstraint); list of ``Generated``.

    Entries whose every attempt failed have ``ok == False``, ``structure is None`` and the reasons
    in ``failures``. ``steps`` and ``temperature`` tune the diffusion sampler (defaults in
    ``xtalagent.structure_gen.settings``).
    """
    from xtalagent.structure_gen.freeparams import check_constraint
    from xtalagent.structure_gen.samplers import (
        DIFFUSION_STEPS,
        DIFFUSION_TEMPERATURE,
        MAX_ATTEMPTS,
        generate,
        make_sampler,
    )

    checked = [check_constraint(c) for c in constraints]
    chosen = make_sampler(
        sampler,
        checkpoint=checkpoint,
        seed=seed,
        steps=steps or DIFFUSION_STEPS,
        temperature=DIFFUSION_TEMPERATURE if temperature is None else temperature,
    )
    return generate(checked, n=n, sampler=chosen, max_attempts=max_attempts or MAX_ATTEMPTS)


__all__ = ["sample"]
