"""Checks on known good and bad structures."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from xtalagent.tools import checks
from xtalagent.tools.potentials import CalculatorPotential


@pytest.fixture(scope="module")
def nacl(fixtures) -> Structure:
    return Structure.from_file(fixtures / "cifs" / "NaCl.cif")


def test_structure_validity(nacl):
    assert checks.structure_validity(nacl).ok
    close = nacl.copy()
    close.translate_sites([1], nacl[0].coords - nacl[1].coords + np.array([0.1, 0, 0]), frac_coords=False)
    result = checks.structure_validity(close)
    assert not result.ok and "shortest distance 0.100" in result.reason
    sparse = nacl.copy()
    sparse.scale_lattice(nacl.volume * 20)
    assert "volume" in checks.structure_validity(sparse).reason
    tiny = Structure(Lattice.cubic(0.4), ["Na"], [[0, 0, 0]])  # atom 0.4 Å from its own image
    assert not checks.structure_validity(tiny).ok


def test_composition_validity():
    assert checks.composition_validity("NaCl").ok
    assert checks.composition_validity("TiO2").ok
    assert checks.composition_validity("Cu3Au").ok  # alloys count as valid (CDVAE)
    assert not checks.composition_validity("NaCl2").ok
    assert not checks.composition_validity("NaO3").ok


def test_unique_and_novel(nacl, fixtures):
    rutile = Structure.from_file(fixtures / "cifs" / "rutile_TiO2.cif")
    bigger = nacl.copy()
    bigger.make_supercell([2, 1, 1])  # same crystal, other cell
    assert checks.unique_flags([nacl, rutile, bigger, None]) == [True, True, False, False]
    assert checks.novel_flags([nacl, rutile, None], [bigger]) == [False, True, None]


def test_sun_rate():
    assert checks.sun_rate([True, True, False, True], [True, False, True, True], [True, True, True, False]) == 0.25
    assert checks.sun_rate([True], [True], [None]) is None


class _Tether(Calculator):
    """Each atom on a spring of stiffness k (eV/Å^2) to its start position: all modes at sqrt(k/m)."""

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, x0: np.ndarray, k: float) -> None:
        super().__init__()
        self.x0, self.k = x0, k

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions - self.x0
        self.results = {"energy": 0.5 * self.k * (d**2).sum(), "forces": -self.k * d, "stress": np.zeros(6)}


@pytest.mark.parametrize("k", [2.0, -2.0])
def test_gamma_phonons_harmonic(nacl, k):
    from ase.units import _amu, _e

    atoms = AseAtomsAdaptor.get_atoms(nacl.get_primitive_structure())
    pot = CalculatorPotential(_Tether(atoms.positions.copy(), k), name="tether")
    ph = checks.gamma_phonons(atoms, pot)
    m_max = atoms.get_masses().max()  # softest mode belongs to the heaviest atom (Cl)
    f = np.sqrt(abs(k) * _e / (1e-20 * m_max * _amu)) / (2 * np.pi) / 1e12
    assert ph.stable is (k > 0)
    if k > 0:
        assert ph.min_frequency_thz == pytest.approx(f, rel=1e-3)
    else:
        assert ph.n_imaginary == 6
