"""Batched relaxation: same trajectories as plain ASE, faster filter numerics, failures isolated."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from scipy.linalg import logm

from xtalagent.tools import relax
from xtalagent.tools.potentials import CalculatorPotential, Evaluation, Potential
from xtalagent.tools.relax import OPTIMIZERS, logm_3x3, relax_batch
from xtalagent.tools.settings import RelaxSettings


def _cells() -> list[Atoms]:
    """Small EMT metals, rattled and strained so every optimiser has work to do."""
    rng = np.random.default_rng(0)
    out = []
    for symbol, a, rep in (("Cu", 3.7, (2, 1, 1)), ("Al", 3.9, (1, 1, 1)), ("Ni", 3.45, (1, 2, 1))):
        atoms = bulk(symbol, "fcc", a=a, cubic=True).repeat(rep)
        atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.normal(scale=0.02, size=(3, 3))), scale_atoms=True)
        out.append(atoms)
    return out


def _emt() -> CalculatorPotential:
    return CalculatorPotential(EMT(), name="emt", reportable=False)


def test_logm_3x3_matches_scipy():
    rng = np.random.default_rng(1)
    for scale in (1e-8, 1e-3, 0.03, 0.15):
        for n in (1.0, 7.0, 24.0):
            for _ in range(50):
                m = n * (np.eye(3) + scale * rng.normal(size=(3, 3)))
                if np.linalg.det(m) > 0:
                    np.testing.assert_allclose(logm_3x3(m), logm(m).real, atol=1e-11)
    shear = np.array([[1.0, 0.05, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # defective: not diagonalisable
    np.testing.assert_allclose(logm_3x3(shear), logm(shear), atol=1e-14)
    far = np.diag([1.0, 3.0, 0.2])  # far from a multiple of the identity: scipy's own result
    np.testing.assert_allclose(logm_3x3(far), logm(far), atol=1e-14)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.slow
def test_batched_steps_are_ase_steps(name):
    """Each structure follows exactly the trajectory of ASE's optimiser run alone on it."""
    cells = _cells()
    batched = relax_batch(cells, _emt(), symmetric=False, optimizer=name, fmax=0.05, batch_size=2)
    for atoms, res in zip(cells, batched):
        ref = atoms.copy()
        ref.calc = EMT()
        opt = OPTIMIZERS[name](FrechetCellFilter(ref), logfile=None)
        opt.run(fmax=0.05, steps=RelaxSettings.max_steps)
        assert res.status == "converged"
        assert res.steps == opt.nsteps
        assert res.energy == pytest.approx(ref.get_potential_energy(), abs=1e-9)
        np.testing.assert_allclose(res.atoms.cell.array, ref.cell.array, atol=1e-9)
        np.testing.assert_allclose(res.atoms.positions, ref.positions, atol=1e-9)


def test_filter_forces_computed_once_per_step():
    atoms = _cells()[0]
    atoms.calc = EMT()
    plain, cached = FrechetCellFilter(atoms), relax._FrechetCellFilter(atoms)
    np.testing.assert_allclose(cached.get_forces(), plain.get_forces(), atol=1e-12)
    np.testing.assert_allclose(cached.get_positions(), plain.get_positions(), atol=1e-12)
    calls = []
    original = cached._utility.get_forces_frechet
    cached._utility.get_forces_frechet = lambda *a, **k: calls.append(1) or original(*a, **k)
    cached.get_forces()  # same atoms, same calculator as the first call above: cached
    assert not calls
    atoms.positions[0] += 0.01  # moved atoms: recomputed once
    moved = cached.get_forces()
    np.testing.assert_allclose(cached.get_forces(), moved)
    assert len(calls) == 1
    np.testing.assert_allclose(moved, plain.get_forces(), atol=1e-12)


class _ExplodesLater(Potential):
    """EMT, except structure ``bad`` (by atom count) returns NaN from its ``after``-th evaluation on."""

    name, checkpoint, reportable = "explodes", "test-double", False

    def __init__(self, bad: int, after: int) -> None:
        self.inner, self.bad, self.after, self.seen = _emt(), bad, after, 0

    def evaluate(self, structures):
        out = self.inner.evaluate(structures)
        for i, atoms in enumerate(structures):
            if len(atoms) == self.bad:
                self.seen += 1
                if self.seen >= self.after:
                    out[i] = Evaluation(float("nan"), np.full((len(atoms), 3), np.nan), np.zeros(6))
        return out


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_structure_exploding_mid_batch_is_isolated(name):
    cells = _cells()  # 8, 4 and 8 atoms; the 4-atom Al cell explodes at its 3rd evaluation
    alone = relax_batch(cells, _emt(), symmetric=False, optimizer=name)
    mixed = relax_batch(cells, _ExplodesLater(bad=4, after=3), symmetric=False, optimizer=name, batch_size=3)
    assert [r.status for r in mixed] == ["converged", "failed", "converged"]
    assert "NaN" in mixed[1].failure and mixed[1].steps == 2
    for i in (0, 2):
        assert mixed[i].steps == alone[i].steps
        assert mixed[i].energy == pytest.approx(alone[i].energy, abs=1e-9)


def test_step_limit_and_symmetric_mode():
    cells = _cells()
    res = relax_batch(cells, _emt(), symmetric=False, max_steps=2)
    assert all(r.status == "unconverged" and r.steps == 2 and "step limit" in r.failure for r in res)
    cu = bulk("Cu", "fcc", a=3.7, cubic=True)  # symmetric mode: stays cubic, relaxes the lattice constant
    (res,) = relax_batch([cu], _emt(), symmetric=True)
    assert res.status == "converged"
    lengths = res.atoms.cell.lengths()
    assert np.allclose(lengths, lengths[0], atol=1e-6) and abs(lengths[0] - 3.7) > 0.02


def test_unknown_optimizer_rejected():
    with pytest.raises(ValueError, match="unknown optimizer"):
        relax_batch(_cells(), _emt(), optimizer="GPMin")
