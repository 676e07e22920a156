"""Potentials: provenance, choice, and batched evaluation equal to one-at-a-time evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import read

from xtalagent.errors import InputError
from xtalagent.tools import potentials
from xtalagent.tools.potentials import CHGNetPotential, load_potential


@pytest.fixture(scope="session")
def chgnet() -> CHGNetPotential:
    potentials.limit_threads(1)
    return load_potential("chgnet")


def _fixture_atoms(fixtures, names=("NaCl", "rutile_TiO2", "wurtzite_ZnO")):
    return [read(fixtures / "cifs" / f"{n}.cif") for n in names]


def test_chgnet_provenance(chgnet):
    prov = chgnet.provenance
    assert prov["potential"] == "chgnet"
    assert prov["checkpoint"] == potentials.CHGNET_MODEL
    assert prov["package_version"] not in ("", "unknown")
    assert chgnet.label == f"chgnet:{potentials.CHGNET_MODEL}"


def test_chgnet_batched_matches_calculator(chgnet, fixtures):
    from chgnet.model.dynamics import CHGNetCalculator

    structures = _fixture_atoms(fixtures)
    batched = chgnet.evaluate(structures)
    calc = CHGNetCalculator(model=chgnet.model, use_device="cpu")
    for atoms, ev in zip(structures, batched):
        a = atoms.copy()
        a.calc = calc
        assert ev.energy == pytest.approx(a.get_potential_energy(), abs=1e-4)
        np.testing.assert_allclose(ev.forces, a.get_forces(), atol=1e-4)
        np.testing.assert_allclose(ev.stress, a.get_stress(), atol=1e-5)


def test_chgnet_fast_gradients_match_predict_graph(chgnet, fixtures):
    """One backward pass for forces and stress gives CHGNet's own predict_graph numbers."""
    structures = _fixture_atoms(fixtures, ("NaCl", "rutile_TiO2", "wurtzite_ZnO", "triclinic_P1"))
    rng = np.random.default_rng(0)
    for a in structures:  # off equilibrium so that forces and stresses are not ~0
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        a.set_cell(a.cell.array @ (np.eye(3) + rng.normal(scale=0.02, size=(3, 3))), scale_atoms=True)
    slow = CHGNetPotential(model=chgnet.model, fast=False)
    assert chgnet.fast
    for fast_ev, slow_ev in zip(chgnet.evaluate(structures), slow.evaluate(structures)):
        assert fast_ev.energy == pytest.approx(slow_ev.energy, abs=1e-5)
        np.testing.assert_allclose(fast_ev.forces, slow_ev.forces, atol=2e-4)
        np.testing.assert_allclose(fast_ev.stress, slow_ev.stress, atol=2e-5)
        assert np.abs(fast_ev.forces).max() > 0.05 and np.abs(fast_ev.stress).max() > 1e-3


def test_chgnet_bad_structures_isolated(chgnet, fixtures):
    good, coincident, isolated = _fixture_atoms(fixtures, ("NaCl", "NaCl", "NaCl"))
    coincident.positions[1] = coincident.positions[0]
    isolated.set_cell(isolated.cell * 20, scale_atoms=True)
    evs = chgnet.evaluate([good, coincident, isolated])
    assert evs[0].finite
    assert not evs[1].finite
    assert evs[2].error and "isolated" in evs[2].error


def test_auto_falls_back_to_chgnet_without_mattersim_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setattr(potentials, "MATTERSIM_CACHE", tmp_path)
    assert not potentials.mattersim_available()
    assert load_potential("auto").name == "chgnet"


def test_explicit_choices_fail_clearly(monkeypatch, tmp_path):
    with pytest.raises(InputError, match="unknown potential"):
        load_potential("mace")
    pytest.importorskip("mattersim.forcefield.potential")
    monkeypatch.setattr(potentials, "MATTERSIM_CACHE", tmp_path)
    with pytest.raises(InputError, match="checkpoint not found"):
        load_potential("mattersim")


def test_mattersim_plumbing_random_weights(fixtures):
    """MatterSim code path with a random-weight M3Gnet: batched equals MatterSimCalculator (never a reported energy)."""
    pytest.importorskip("mattersim.forcefield.potential")
    import torch
    from mattersim.forcefield.m3gnet.m3gnet import M3Gnet
    from mattersim.forcefield.potential import MatterSimCalculator
    from mattersim.forcefield.potential import Potential as MSPotential

    torch.manual_seed(0)
    ms = MSPotential(M3Gnet(device="cpu"), device="cpu")
    pot = potentials.MatterSimPotential(potential=ms, reportable=False)
    assert pot.provenance["potential"] == "mattersim" and pot.provenance["reportable"] is False
    structures = _fixture_atoms(fixtures)
    evs = pot.evaluate(structures)
    calc = MatterSimCalculator(potential=ms, device="cpu")
    for atoms, ev in zip(structures, evs):
        a = atoms.copy()
        a.calc = calc
        assert ev.energy == pytest.approx(a.get_potential_energy(), rel=1e-5, abs=1e-5)
        np.testing.assert_allclose(ev.forces, a.get_forces(), atol=1e-5)
        np.testing.assert_allclose(ev.stress, a.get_stress(), atol=1e-6)
