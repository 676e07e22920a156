"""The validity mask: every answer the decoder can produce is valid, and every valid one reachable."""

from collections import Counter

import pytest

from xtalagent.finetune.wyckoff_solver import (
    ExactCounts,
    FreeCounts,
    RatioCounts,
    State,
    feasible_groups,
    positions,
    site_labels,
)
from xtalagent.records import SymmetryConstraint
from xtalagent.symmetry import wyckoff_table


def enumerate_all(target, spacegroup, limit=5000):
    """Every complete assignment the decoder can reach (depth-first over allowed_next)."""
    found, stack = [], [State.empty(len(target.elements))]
    while stack and len(found) < limit:
        state = stack.pop()
        if state.sites and target.can_end(spacegroup, state):
            found.append(state)
        for element, pos in target.allowed_next(spacegroup, state):
            stack.append(state.add(spacegroup, element, pos))
    return found


def brute_force(spacegroup, counts):
    """Reference: all multisets of (element, position) matching counts, by exhaustive search."""
    table = positions(spacegroup)
    results = set()

    def rec(element, remaining, start, used, chosen):
        if element == len(counts):
            results.add(tuple(chosen))
            return
        if remaining == 0:
            rec(element + 1, counts[element + 1] if element + 1 < len(counts) else 0, 0, used, chosen)
            return
        for pos in table[start:]:
            if pos.multiplicity > remaining or (pos.fixed and pos.index in used):
                continue
            rec(
                element,
                remaining - pos.multiplicity,
                pos.index + pos.fixed,
                used | {pos.index} if pos.fixed else used,
                [*chosen, (element, pos.index)],
            )

    rec(0, counts[0], 0, frozenset(), [])
    return results


def test_positions_are_alphabetical_and_complete():
    for group in (1, 2, 62, 136, 194, 225, 227, 230):
        table = positions(group)
        assert [p.label[-1] for p in table] == sorted((p.label[-1] for p in table), key=lambda c: (c.lower(), c))
        assert {p.label for p in table} == {w.label for w in wyckoff_table(group)}


@pytest.mark.parametrize("group", list(range(1, 231)))
def test_every_group_decodes_only_valid_answers(group):
    """For each group, pick a composition the group can host and check every reachable answer."""
    table = positions(group)
    small = sorted(table, key=lambda p: p.multiplicity)
    counts = (small[0].multiplicity, small[min(1, len(small) - 1)].multiplicity)
    target = ExactCounts(("Na", "Cl"), counts)
    states = enumerate_all(target, group, limit=400)
    if not target.feasible(group):
        assert states == []
        return
    assert states, f"group {group} is feasible but no answer was reachable"
    for state in states:
        sites = [{"element": e, "wyckoff": w} for e, w in site_labels(group, state, target.elements)]
        constraint = SymmetryConstraint(spacegroup=group, sites=sites)  # raises if invalid
        assert constraint.counts == {"Na": counts[0], "Cl": counts[1]}
        fixed = [
            w for _, w in site_labels(group, state, target.elements) if table[[p.label for p in table].index(w)].fixed
        ]
        assert len(fixed) == len(set(fixed))


@pytest.mark.parametrize("group, counts", [(194, (2, 6)), (136, (2, 4)), (225, (4, 4)), (62, (4, 4, 12)), (2, (2, 2))])
def test_decoder_reaches_exactly_the_valid_assignments(group, counts):
    elements = ("Sc", "Ni", "O")[: len(counts)]
    target = ExactCounts(elements, counts)
    reached = {state.sites for state in enumerate_all(target, group, limit=100000)}
    assert reached == brute_force(group, counts)


def test_known_hosts():
    assert 194 in feasible_groups(ExactCounts(("Sc", "Ni"), (2, 6)))
    assert 136 in feasible_groups(ExactCounts(("Ti", "O"), (2, 4)))
    assert 225 not in feasible_groups(ExactCounts(("Ti", "O"), (1, 2)))  # smallest orbit of Fm-3m is 4
    assert feasible_groups(ExactCounts(("Ti", "O"), (1, 2))) and all(
        g < 195 for g in feasible_groups(ExactCounts(("Ti", "O"), (1, 2)))
    )


def test_ratio_target_chooses_formula_units():
    target = RatioCounts(("Ti", "O"), (1, 2), max_atoms=12)
    assert target.options == [(1, 2), (2, 4), (3, 6), (4, 8)]
    totals = Counter(sum(s.so_far) for s in enumerate_all(target, 136, limit=100000))
    assert set(totals) <= {3, 6, 9, 12} and 6 in totals
    assert all(s.so_far[1] == 2 * s.so_far[0] for s in enumerate_all(target, 136, limit=100000))


def test_free_target_gives_each_element_a_site_within_the_limit():
    target = FreeCounts(("Sc", "Ni"), max_atoms=8)
    states = enumerate_all(target, 194, limit=100000)
    assert states
    for state in states:
        assert all(n > 0 for n in state.so_far) and sum(state.so_far) <= 8
    assert not FreeCounts(("Na", "Cl", "K"), max_atoms=8).feasible(225)  # 3 orbits of >= 4 atoms
