import json

import pytest
from pydantic import ValidationError

from xtalagent.composition import format_counts, parse_counts
from xtalagent.errors import InputError
from xtalagent.records import SymmetryConstraint


def test_constraint_roundtrip_and_counts():
    c = SymmetryConstraint(
        spacegroup=194, sites=[{"element": "Sc", "wyckoff": "2c"}, {"element": "Ni", "wyckoff": "h"}], band_gap=0.0
    )
    assert c.sites[1].wyckoff == "6h"  # bare letter normalised
    assert c.counts == {"Sc": 2, "Ni": 6} and c.formula == "Sc2Ni6"
    again = SymmetryConstraint.model_validate(json.loads(c.model_dump_json()))
    assert again == c
    c.check_counts(parse_counts("Sc2Ni6"))
    with pytest.raises(InputError, match="composition is"):
        c.check_counts(parse_counts("ScNi3"))


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"spacegroup": 231, "sites": [{"element": "Na", "wyckoff": "1a"}]}, "1-230"),
        ({"spacegroup": 225, "sites": [{"element": "Na", "wyckoff": "4q"}]}, "does not exist"),
        ({"spacegroup": 225, "sites": [{"element": "Qq", "wyckoff": "4a"}]}, "unknown element"),
        (
            {"spacegroup": 225, "sites": [{"element": "Na", "wyckoff": "4a"}, {"element": "Cl", "wyckoff": "4a"}]},
            "only one orbit",
        ),
        ({"spacegroup": 225, "sites": []}, "at least 1"),
    ],
)
def test_invalid_constraints_are_rejected(payload, message):
    with pytest.raises(ValidationError, match=message):
        SymmetryConstraint.model_validate(payload)


def test_free_position_may_repeat():
    c = SymmetryConstraint(spacegroup=1, sites=[{"element": "O", "wyckoff": "1a"}] * 3)
    assert c.counts == {"O": 3}


@pytest.mark.parametrize("text", ["", "Sc2Ni", "2Sc", "Sc-Ni", "Xx2", "Sc0.5Ni", "sc2"])
def test_formula_parsing_errors(text):
    if text == "Sc2Ni":
        assert parse_counts(text) == {"Sc": 2, "Ni": 1}
        return
    with pytest.raises(InputError):
        parse_counts(text)


def test_formula_format():
    assert parse_counts("Ba1Nd1Co2O5") == {"Ba": 1, "Nd": 1, "Co": 2, "O": 5}
    assert format_counts({"Ni": 6, "Sc": 2}) == "Sc2Ni6"
