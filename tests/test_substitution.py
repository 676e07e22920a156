"""The data-mined substitution distances and how the prototype part uses them."""

from __future__ import annotations

import pytest

from xtalagent.finetune.neighbour_prior import NeighbourPrior, prototype_order
from xtalagent.finetune.substitution import CAP, substitution_distances

ROCK_SALT = ((4, 4), 225, ((0, "4a"), (1, "4b")))
CESIUM_CHLORIDE = ((1, 1), 221, ((0, "1a"), (1, "1b")))


def test_elements_that_swap_in_one_template_are_close_and_others_far():
    row, distance = substitution_distances(
        [
            (ROCK_SALT, ("Na", "Cl")),
            (ROCK_SALT, ("K", "Cl")),
            (ROCK_SALT, ("Na", "Br")),
            (ROCK_SALT, ("K", "Br")),
            (CESIUM_CHLORIDE, ("Cs", "Cl")),
            (CESIUM_CHLORIDE, ("Cs", "I")),
        ]
    )
    assert distance[row["Na"], row["K"]] < CAP and distance[row["Cl"], row["Br"]] < CAP
    assert distance[row["Na"], row["K"]] == distance[row["K"], row["Na"]]  # symmetric
    assert distance[row["Na"], row["Cl"]] == CAP  # a cation never took an anion's place
    assert distance[row["Na"], row["Cs"]] == CAP  # never in the same template
    assert distance[row["Na"], row["Na"]] == 0
    unknown = len(distance) - 1  # elements no crystal has
    assert distance[unknown, row["Na"]] == CAP and distance[unknown, unknown] == CAP


def test_more_swaps_mean_a_smaller_distance():
    often = [(ROCK_SALT, (a, "Cl")) for a in ("Na", "K")] * 6
    once = [(CESIUM_CHLORIDE, ("Cs", "Cl")), (CESIUM_CHLORIDE, ("Rb", "Cl"))]
    row, distance = substitution_distances(often + once)
    assert 0 <= distance[row["Na"], row["K"]] < distance[row["Cs"], row["Rb"]] <= CAP


def test_prototype_distance_adds_the_weighted_substitution_distance():
    known = [
        ("Na4Cl4", 225, "Na:4a Cl:4b"),
        ("K4Cl4", 225, "K:4a Cl:4b"),
        ("Na4Br4", 225, "Na:4a Br:4b"),
        ("Li4Cl4", 216, "Li:4a Cl:4c"),
    ]
    prior = NeighbourPrior(known)
    elements, counts = ("K", "Br"), (4, 4)
    index, pettifor = prior._prototype_matches("formula", elements, counts)
    same, weighted = prior._prototype_matches("formula", elements, counts, substitution_weight=2.0)
    assert same.tolist() == index.tolist()
    mine = prototype_order("formula", elements, counts)
    for i, base, total in zip(index.tolist(), pettifor.tolist(), weighted.tolist()):
        formula = known[i][0]
        theirs = prototype_order("formula", *_cell(formula))
        extra = sum(prior.substitution[_row(prior, a), _row(prior, b)] for a, b in zip(mine, theirs))
        assert total == pytest.approx(base + 2.0 * extra)
    # K<->Li was never seen to swap, K<->Na was: the lithium crystal moves away
    li = [known[i][0] for i in index.tolist()].index("Li4Cl4")
    assert weighted[li] - pettifor[li] > max(w - p for j, (w, p) in enumerate(zip(weighted, pettifor)) if j != li)


def _cell(formula: str) -> tuple[dict[str, int], list[int]]:
    from xtalagent.composition import parse_counts

    cell = parse_counts(formula)
    return cell, list(cell.values())


def _row(prior: NeighbourPrior, element: str) -> int:
    return prior.substitution_row.get(element, len(prior.substitution) - 1)


def test_an_element_no_known_crystal_has_is_far_from_every_element():
    prior = NeighbourPrior([("Na4Cl4", 225, "Na:4a Cl:4b"), ("K4Cl4", 225, "K:4a Cl:4b")])
    elements, counts = ("Fr", "Cl"), (4, 4)  # francium is in no known crystal
    _, pettifor = prior._prototype_matches("formula", elements, counts)
    _, weighted = prior._prototype_matches("formula", elements, counts, substitution_weight=1.0)
    assert (weighted - pettifor).tolist() == pytest.approx([CAP, CAP])  # Fr->Na/K at CAP, Cl->Cl at 0
