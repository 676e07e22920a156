import pytest
from pymatgen.core import Structure

from xtalagent.errors import InputError
from xtalagent.symmetry import crystal_system, label_structure, wyckoff_info, wyckoff_table


def _sites(label):
    return sorted((s.element, s.wyckoff.label) for s in label.sites)


def test_nacl_is_225_with_4a_4b(fixtures):
    label = label_structure(Structure.from_file(fixtures / "cifs" / "NaCl.cif"))
    assert label.spacegroup == 225
    assert _sites(label) == [("Cl", "4b"), ("Na", "4a")] or _sites(label) == [("Cl", "4a"), ("Na", "4b")]
    assert len(label.conventional) == 8


def test_rutile_is_136_with_2a_4f(fixtures):
    label = label_structure(Structure.from_file(fixtures / "cifs" / "rutile_TiO2.cif"))
    assert label.spacegroup == 136
    assert _sites(label) == [("O", "4f"), ("Ti", "2a")]
    o_site = next(s for s in label.sites if s.element == "O")
    assert o_site.wyckoff.dof == 1 and o_site.free_params == pytest.approx((0.3049,), abs=1e-3)


def test_wurtzite_is_186(fixtures):
    label = label_structure(Structure.from_file(fixtures / "cifs" / "wurtzite_ZnO.cif"))
    assert label.spacegroup == 186
    assert _sites(label) == [("O", "2b"), ("Zn", "2b")]


def test_random_cell_is_p1(fixtures):
    label = label_structure(Structure.from_file(fixtures / "cifs" / "triclinic_P1.cif"))
    assert label.spacegroup == 1
    assert all(s.wyckoff.label == "1a" and len(s.free_params) == 3 for s in label.sites)


def test_disorder_is_rejected(fixtures):
    structure = Structure.from_file(fixtures / "bad" / "partial_occupancy.cif")
    with pytest.raises(InputError, match="partial occupancy"):
        label_structure(structure)


def test_wyckoff_tables():
    table = wyckoff_table(194)
    assert [w.label for w in table][-4:] == ["2d", "2c", "2b", "2a"]
    assert wyckoff_info(194, "h").label == "6h"
    assert wyckoff_info(225, "4a").dof == 0
    with pytest.raises(InputError, match="does not exist"):
        wyckoff_info(225, "4z")
    with pytest.raises(InputError, match="multiplicity"):
        wyckoff_info(225, "8a")
    with pytest.raises(InputError, match="1-230"):
        wyckoff_table(231)
    assert crystal_system(194) == "hexagonal" and crystal_system(166) == "trigonal"


def test_shipped_tables_match_pyxtal(tmp_path):
    from xtalagent.symmetry import TABLES_PATH, export_tables

    fresh = tmp_path / "tables.json"
    export_tables(fresh)
    assert fresh.read_text() == TABLES_PATH.read_text()
