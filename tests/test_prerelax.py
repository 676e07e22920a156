"""Descriptor pre-relaxation: symmetry kept, distance goes down, bad input refused."""

from __future__ import annotations

import numpy as np
import pytest

from xtalagent.errors import InputError
from xtalagent.tools.prerelax import lego_available

_OK, _REASON = lego_available()
pytestmark = [
    pytest.mark.skipif(not _OK, reason=_REASON),
    pytest.mark.filterwarnings("ignore:.*sph_harm.*:DeprecationWarning"),  # inside pyxtal.lego
]


@pytest.fixture(scope="module")
def graphite_env():
    from xtalagent.tools.prerelax import LEGO_CARBON_RCUT, build_references

    return build_references(None, ["C"], rcut=LEGO_CARBON_RCUT)


def _random_carbon(spg: int, n: int, seed: int):
    from pyxtal import pyxtal

    xtal = pyxtal()
    xtal.from_random(3, spg, ["C"], [n], random_state=seed)
    assert xtal.valid
    return xtal


def test_graphite_reference_is_sp2(graphite_env):
    assert graphite_env.coordination == {"C": [3]}
    assert graphite_env.descriptors["C"].shape[0] == 1  # 2b and 2c look alike within 2.1 Å
    assert graphite_env.rcut == pytest.approx(2.1)


@pytest.mark.parametrize("spg,n,seed", [(65, 8, 1), (12, 8, 1)])
def test_symmetry_kept(graphite_env, spg, n, seed):
    from pymatgen.core import Structure

    from xtalagent.tools.prerelax import keeps_symmetry, prerelax

    result = prerelax(_random_carbon(spg, n, seed), graphite_env, max_steps=80)
    assert result.failure is None
    assert result.spacegroup_before == spg
    assert result.spacegroup_after == spg
    assert result.symmetry_kept
    assert result.distance_after < result.distance_before
    relaxed = Structure.from_str(result.cif, fmt="cif")
    assert keeps_symmetry(relaxed, spg)
    assert result.natoms == len(relaxed) == n


def test_keeps_symmetry_detects_a_broken_structure():
    from xtalagent.tools.prerelax import graphite, keeps_symmetry

    structure = graphite().to_pymatgen()
    assert keeps_symmetry(structure, 194)
    structure.translate_sites([0], [0.05, 0.0, 0.03], frac_coords=True)
    assert not keeps_symmetry(structure, 194)


def test_distance_decreases_toward_own_reference(graphite_env):
    """Graphite with a stretched a and a squeezed c relaxes back to graphite's environment."""
    from pyxtal import pyxtal

    from xtalagent.tools.prerelax import prerelax

    strained = pyxtal()
    strained.from_spg_wps_rep(194, ["2c", "2b"], [2.46 * 1.12, 6.70 * 0.8], ["C", "C"])
    result = prerelax(strained, graphite_env, max_steps=100)
    assert result.failure is None
    assert result.distance_before > 10 * graphite_env.distance_threshold()
    assert result.distance_after < 0.01 * result.distance_before
    assert result.distance_reached and result.reached
    assert result.coordination_after == {"C": [3, 3]}


def test_user_reference_structure(fixtures):
    """A rutile reference from a CIF; a strained rutile goes back to its Ti and O environments."""
    from pymatgen.core import Structure

    from xtalagent.tools.prerelax import prerelax

    rutile = Structure.from_file(fixtures / "cifs" / "rutile_TiO2.cif")
    strained = rutile.copy()
    strained.apply_strain([0.08, 0.08, -0.06])
    result = prerelax(strained, [rutile], max_steps=60)
    assert result.failure is None
    assert result.spacegroup_before == result.spacegroup_after == 136
    assert result.distance_after < 0.1 * result.distance_before
    assert result.reached


def test_bad_input(graphite_env, fixtures):
    from pymatgen.core import Structure
    from pyxtal import pyxtal

    from xtalagent.tools.prerelax import build_references, prerelax

    carbon = _random_carbon(65, 8, 1)
    with pytest.raises(InputError, match="unknown element"):
        prerelax(carbon, elements=["Xx"])
    with pytest.raises(InputError, match="unknown element"):
        build_references(None, ["C", "Qq"])
    with pytest.raises(InputError, match="no symmetry information"):
        prerelax(pyxtal(), graphite_env)
    with pytest.raises(InputError, match="cannot pre-relax"):
        prerelax("C8", graphite_env)
    nacl = Structure.from_file(fixtures / "cifs" / "NaCl.cif")
    with pytest.raises(InputError, match="no C environment"):
        prerelax(carbon, [nacl])
    with pytest.raises(InputError, match="no reference environment for"):
        prerelax(nacl, graphite_env)
    with pytest.raises(InputError, match="does not exist"):
        prerelax(carbon, "/nonexistent/set.parquet")


def test_batch_records_failures_and_goes_on(graphite_env):
    from pyxtal import pyxtal

    from xtalagent.tools.prerelax import PrerelaxResult, prerelax_many, summarize

    results = prerelax_many([_random_carbon(227, 8, 2), pyxtal(), "junk"], graphite_env, max_steps=40)
    assert [r.id for r in results] == ["0", "1", "2"]
    assert results[0].failure is None
    assert "no symmetry information" in results[1].failure
    assert "cannot pre-relax" in results[2].failure
    summary = summarize(results)
    assert summary["n"] == 3 and summary["n_ran"] == 1 and summary["n_failed"] == 2
    PrerelaxResult.model_validate_json(results[0].model_dump_json())  # JSON round trip


def test_budget_and_time_limit_are_recorded_failures(graphite_env):
    from xtalagent.tools.prerelax import prerelax

    crystal = _random_carbon(65, 8, 1)
    result = prerelax(crystal, graphite_env, max_evaluations=5)
    assert result.failure and result.failure.startswith("evaluation budget")
    assert not result.reached
    result = prerelax(crystal, graphite_env, max_seconds=0.0)
    assert result.failure and result.failure.startswith("time limit")
    result = prerelax(crystal, graphite_env, max_steps=30)
    assert result.failure is None and 0 < result.evaluations


def test_reference_from_labelled_dataset(fixture_dataset):
    from xtalagent.data import load_records
    from xtalagent.tools.prerelax import build_references, prerelax

    record = next(r for r in load_records(fixture_dataset) if r.natoms <= 8 and len(r.elements) == 2)
    env = build_references(fixture_dataset, record.elements)
    assert set(env.descriptors) == set(record.elements)
    assert record.id in env.sources
    result = prerelax(record, env, max_steps=20)
    assert result.failure is None and result.spacegroup_before == record.spacegroup
    assert result.distance_before == pytest.approx(0.0, abs=1e-6)  # a crystal is its own reference
    with pytest.raises(InputError, match="no crystal with elements"):
        build_references(fixture_dataset, ["Og"])


def test_known_sp2_carbons_reach_the_target(shared_data, graphite_env):
    """Known sp2 carbons (SACADA) already satisfy LEGO-xtal's criterion and stay there."""
    from xtalagent.tools.lego_reference import load_sacada
    from xtalagent.tools.prerelax import prerelax

    entries = load_sacada(shared_data / "lego_sp2" / "sp2_sacada.db", max_atoms=8)
    assert entries
    from pymatgen.io.ase import AseAtomsAdaptor

    for entry, atoms in entries[:2]:
        result = prerelax(AseAtomsAdaptor.get_structure(atoms), graphite_env, max_steps=10)
        assert result.failure is None, result.failure
        assert result.reached, (entry, result.coordination_after)
        assert result.distance_after <= result.distance_before + 1e-9
        assert np.isfinite(result.distance_after)
