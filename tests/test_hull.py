"""Formation energy and e_hull: exact arithmetic on a toy table, and known MP stable/unstable compounds."""

from __future__ import annotations

import pandas as pd
import pytest

from xtalagent.errors import InputError
from xtalagent.tools.hull import ReferenceHull, StabilityModel, formation_energy, load_element_refs


def test_shipped_element_refs_are_mp_gga_per_atom():
    refs = load_element_refs()
    assert len(refs) == 89
    assert refs["O"] == pytest.approx(-4.9467, abs=1e-3)  # MP O2 entry / atoms
    assert refs["Ti"] == pytest.approx(-7.8955, abs=1e-3)


def test_formation_energy_arithmetic():
    refs = {"Na": -1.0, "Cl": -2.0}
    # 2 NaCl in the cell: total -10 eV, references 2*(-1) + 2*(-2) = -6 -> (-10 + 6) / 4
    assert formation_energy("Na2Cl2", -10.0, refs) == pytest.approx(-1.0)
    with pytest.raises(InputError, match="no elemental reference"):
        formation_energy("NaXe", -1.0, refs)


def test_toy_hull_exact(tmp_path):
    table = tmp_path / "hull.csv"
    pd.DataFrame({"formula": ["AlNi", "AlNi", "Al3Ni"], "e_form": [-0.6, -0.5, -0.2]}).to_csv(table, index=False)
    hull = ReferenceHull.from_csv(table)
    assert hull.e_above_hull("AlNi", -0.6) == pytest.approx(0.0, abs=1e-9)
    assert hull.e_above_hull("AlNi", -0.7) == pytest.approx(-0.1, abs=1e-9)  # below the hull: negative
    # Al3Ni (-0.2) lies above the Al-AlNi tie line (-0.3 at x_Ni = 1/4): 0.1 above
    assert hull.e_above_hull("Al3Ni", -0.2) == pytest.approx(0.1, abs=1e-9)
    assert hull.e_above_hull("AlNi3", 0.0) == pytest.approx(0.3, abs=1e-9)  # Ni side: tie line AlNi-Ni


def test_bad_hull_table(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"name": ["x"], "energy": [1.0]}).to_csv(bad, index=False)
    with pytest.raises(InputError, match="formula column"):
        ReferenceHull.from_csv(bad)
    with pytest.raises(InputError, match="not found"):
        ReferenceHull.from_csv(tmp_path / "missing.csv")


@pytest.fixture(scope="module")
def default_model() -> StabilityModel:
    return StabilityModel()


def test_default_hull_known_stable_and_unstable(default_model, fixtures):
    """MP's own formation energies scored on the shipped hull: a stable compound sits on it, an unstable above."""
    crystals = pd.read_csv(fixtures / "crystals.csv").set_index("formula")
    hull = default_model.hull
    stable = crystals.loc["BaZnO2"]  # MP e_above_hull 0
    assert stable.e_above_hull == 0
    assert abs(hull.e_above_hull("BaZnO2", stable.formation_energy_per_atom)) < 0.02
    unstable = crystals.loc["TiOF"]  # MP e_above_hull 0.072
    assert hull.e_above_hull("TiOF", unstable.formation_energy_per_atom) == pytest.approx(0.072, abs=0.03)
    # a rock-salt NaCl 1 eV/atom less bound than MP's is 1 eV/atom above the hull
    e_nacl = hull.hull_energy("NaCl")
    assert hull.e_above_hull("NaCl", e_nacl + 1.0) == pytest.approx(1.0, abs=1e-6)


def test_stability_model_from_total_energy(default_model):
    refs = default_model.refs
    e_form_target = -2.0
    energy = 8 * e_form_target + 4 * (refs["Na"] + refs["Cl"])  # Na4Cl4 at e_form -2.0
    e_form, e_hull = default_model.evaluate("Na4Cl4", energy)
    assert e_form == pytest.approx(e_form_target)
    assert e_hull == pytest.approx(e_form_target - default_model.hull.hull_energy("NaCl"))


def test_mp2020_constants_are_pymatgens():
    """The conversion uses pymatgen's published correction constants, nothing fitted."""
    from pymatgen.entries.compatibility import MP2020_COMPAT_CONFIG, MP_COMPAT_CONFIG

    from xtalagent.tools import mp2020

    new = MP2020_COMPAT_CONFIG["Corrections"]
    old = MP_COMPAT_CONFIG
    assert mp2020._MP2020_U == new["GGAUMixingCorrections"]["O"]
    assert mp2020._LEGACY_U == old["Advanced"]["UCorrections"]["O"]
    assert mp2020._MP2020_OXIDE == new["CompositionCorrections"]["oxide"]
    assert mp2020._LEGACY_OXIDE == old["OxideCorrections"]["oxide"]
    assert mp2020._MP2020_SULFIDE == new["CompositionCorrections"]["S"]
    assert mp2020._LEGACY_SULFIDE == old["SulfideCorrections"]["sulfide"]
    for el in ("F", "Cl", "Br", "I", "N", "Se"):
        assert mp2020._MP2020_ANION[el] == new["CompositionCorrections"][el]
    gas = old["Advanced"]["CompoundEnergies"]
    assert mp2020._LEGACY_GAS_MU == {k.rstrip("2"): v for k, v in gas.items()}


def test_mp2020_conversion_moves_only_corrected_chemistries():
    from xtalagent.tools.hull import load_element_refs
    from xtalagent.tools.mp2020 import legacy_to_mp2020

    refs = load_element_refs()
    assert legacy_to_mp2020("NaAl", -0.1, refs) == -0.1  # an intermetallic: no correction in either scheme
    # an oxide: only the oxide constant changes (-0.687 vs -0.70229 eV per O), 2 of 3 atoms are O
    assert legacy_to_mp2020("TiO2", -3.5, refs) == pytest.approx(-3.5 + (2 / 3) * (-0.687 + 0.70229))


def test_default_hull_keeps_sodium_nitride():
    from xtalagent.tools.hull import ReferenceHull

    assert any(f == "NaN" for f, _ in ReferenceHull.default().formation_energies("N-Na"))
