"""Formula helpers of ``xtalagent.composition``: the one reduction of atom counts used by the finetune code."""

from __future__ import annotations

import pytest
from pymatgen.core import Composition

from xtalagent.composition import reduced_counts
from xtalagent.errors import InputError


@pytest.mark.parametrize(
    ("counts", "expected", "factor"),
    [
        ({"Li": 4, "Fe": 4, "P": 4, "O": 16}, {"Li": 1, "Fe": 1, "P": 1, "O": 4}, 4),
        ({"Sc": 2, "Ni": 6}, {"Sc": 1, "Ni": 3}, 2),
        ({"Ti": 1, "O": 2}, {"Ti": 1, "O": 2}, 1),
        ({"C": 8}, {"C": 1}, 8),
    ],
)
def test_reduced_counts_divides_by_the_common_factor_and_keeps_the_order(counts, expected, factor):
    reduced, found = reduced_counts(counts)
    assert reduced == expected and found == factor
    assert list(reduced) == list(counts)


@pytest.mark.parametrize("formula", ["Li4Fe4P4O16", "Sc2Ni6", "Ba2Nd2Co4O10", "Mg3Si6O18", "TiO2", "Cu8"])
def test_reduced_counts_agrees_with_pymatgen_on_ordinary_formulas(formula):
    composition = Composition(formula)
    reduced, factor = reduced_counts({el.symbol: int(n) for el, n in composition.items()})
    expected, expected_factor = composition.get_reduced_composition_and_factor()
    assert factor == expected_factor
    assert Composition(reduced) == expected


@pytest.mark.parametrize(("formula", "factor"), [("O8", 8), ("Li4O4", 4), ("H2O2", 2)])
def test_reduced_counts_fully_reduces_what_pymatgen_keeps_molecular(formula, factor):
    """pymatgen keeps O2 / Li2O2 / H2O2; the ratio vocabularies of the trained models do not."""
    composition = Composition(formula)
    _, found = reduced_counts({el.symbol: int(n) for el, n in composition.items()})
    assert found == factor
    assert composition.get_reduced_composition_and_factor()[1] == factor / 2


def test_reduced_counts_refuses_an_empty_cell():
    with pytest.raises(InputError):
        reduced_counts({"Ti": 0})
