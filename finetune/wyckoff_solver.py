"""Which Wyckoff assignments are possible: the validity mask behind strict decoding.

A site assignment is a sequence of (element, Wyckoff position) in canonical order — elements in
the order of the request, positions alphabetically (``a`` first) and non-decreasing within an
element — so every multiset of sites has exactly one spelling. It is valid when every position
exists in the group, a position without free parameters hosts at most one orbit, and the
multiplicities add up to the element counts.

Three kinds of composition targets cover the request patterns:

* :class:`ExactCounts` — a full cell formula (``Sc2Ni6``);
* :class:`RatioCounts` — a ratio (``ScNi3``) whose number of formula units is free, up to a cell
  size;
* :class:`FreeCounts` — elements only; every element gets at least one site, up to a cell size.

The decoder asks :meth:`Target.allowed_next` which single site may come next so that a valid
completion still exists, and :meth:`Target.can_end` whether the assignment may stop here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

from xtalagent.symmetry import wyckoff_table


@dataclass(frozen=True)
class Position:
    """A Wyckoff position in canonical (alphabetical) order."""

    index: int
    label: str
    multiplicity: int
    fixed: bool  # no free parameters: at most one orbit


@cache
def positions(spacegroup: int) -> tuple[Position, ...]:
    """Positions of a group sorted alphabetically by letter (``a`` first)."""
    table = sorted(wyckoff_table(spacegroup), key=lambda w: (w.letter.lower(), w.letter))
    return tuple(Position(i, w.label, w.multiplicity, w.dof == 0) for i, w in enumerate(table))


@cache
def _label_index(spacegroup: int) -> dict[str, int]:
    return {p.label: p.index for p in positions(spacegroup)}


@lru_cache(maxsize=2_000_000)
def _fill(spacegroup: int, counts: tuple[int, ...], start: int, used: frozenset[int]) -> bool:
    """Can ``counts`` (remaining atoms per element, current element first) be completed?

    The current element may only use positions with index >= ``start``; later elements start
    from 0. ``used`` holds fixed positions already taken.
    """
    if not counts:
        return True
    remaining, rest = counts[0], counts[1:]
    if remaining == 0:
        return _fill(spacegroup, rest, 0, used)
    for pos in positions(spacegroup)[start:]:
        if pos.multiplicity > remaining or (pos.fixed and pos.index in used):
            continue
        next_used = used | {pos.index} if pos.fixed else used
        next_start = pos.index + 1 if pos.fixed else pos.index
        if _fill(spacegroup, (remaining - pos.multiplicity, *rest), next_start, next_used):
            return True
    return False


@dataclass(frozen=True)
class State:
    """A partial assignment: sites so far, atoms per element so far, fixed positions taken."""

    sites: tuple[tuple[int, int], ...] = ()  # (element index, position index)
    so_far: tuple[int, ...] = ()
    used: frozenset[int] = frozenset()

    @classmethod
    def empty(cls, n_elements: int) -> State:
        return cls((), (0,) * n_elements, frozenset())

    def add(self, spacegroup: int, element: int, pos: Position) -> State:
        so_far = list(self.so_far)
        so_far[element] += pos.multiplicity
        used = self.used | {pos.index} if pos.fixed else self.used
        return State((*self.sites, (element, pos.index)), tuple(so_far), used)

    def cursor(self) -> tuple[int, int]:
        """(current element, first position index it may still use)."""
        if not self.sites:
            return 0, 0
        element, index = self.sites[-1]
        return element, index  # same index allowed again only if that position is free


class Target:
    """A composition target; subclasses say which completions are valid."""

    elements: tuple[str, ...]

    def feasible(self, spacegroup: int) -> bool:
        return self.can_complete(spacegroup, State.empty(len(self.elements)))

    def can_complete(self, spacegroup: int, state: State) -> bool:
        raise NotImplementedError

    def can_end(self, spacegroup: int, state: State) -> bool:
        raise NotImplementedError

    def allowed_next(self, spacegroup: int, state: State) -> list[tuple[int, Position]]:
        """Every (element index, position) that may come next and still be completed."""
        current, last = state.cursor()
        elements = [0] if not state.sites else [current]
        if state.sites and current + 1 < len(self.elements) and self._may_leave(state, current):
            elements.append(current + 1)
        table = positions(spacegroup)
        options = []
        for element in elements:
            for pos in table:
                continuing = bool(state.sites) and element == current
                if continuing and (pos.index < last or (pos.index == last and table[last].fixed)):
                    continue  # canonical order: non-decreasing positions within an element
                if pos.fixed and pos.index in state.used:
                    continue
                if self.can_complete(spacegroup, state.add(spacegroup, element, pos)):
                    options.append((element, pos))
        return options

    def _may_leave(self, state: State, element: int) -> bool:
        """May the decoder move past ``element`` now? (every element gets at least one site)"""
        raise NotImplementedError


@dataclass(frozen=True)
class ExactCounts(Target):
    elements: tuple[str, ...]
    counts: tuple[int, ...]

    def can_complete(self, spacegroup: int, state: State) -> bool:
        return _complete_exact(spacegroup, self.counts, state)

    def can_end(self, spacegroup: int, state: State) -> bool:
        return state.so_far == self.counts

    def _may_leave(self, state: State, element: int) -> bool:
        return state.so_far[element] == self.counts[element]


def _complete_exact(spacegroup: int, counts: tuple[int, ...], state: State) -> bool:
    if any(have > want for have, want in zip(state.so_far, counts)):
        return False
    current, last = state.cursor()
    if any(state.so_far[i] != counts[i] for i in range(current)):
        return False
    remaining = tuple(counts[i] - state.so_far[i] for i in range(current, len(counts)))
    if not state.sites:
        return _fill(spacegroup, remaining, 0, state.used)
    table = positions(spacegroup)
    start = last + 1 if table[last].fixed else last
    return _fill(spacegroup, remaining, start, state.used)


@dataclass(frozen=True)
class RatioCounts(Target):
    """A ratio whose cell holds ``z`` formula units for some ``z`` with at most ``max_atoms`` atoms."""

    elements: tuple[str, ...]
    ratio: tuple[int, ...]
    max_atoms: int

    @property
    def options(self) -> list[tuple[int, ...]]:
        per_unit = sum(self.ratio)
        return [tuple(z * r for r in self.ratio) for z in range(1, self.max_atoms // per_unit + 1)]

    def can_complete(self, spacegroup: int, state: State) -> bool:
        return any(_complete_exact(spacegroup, counts, state) for counts in self.options)

    def can_end(self, spacegroup: int, state: State) -> bool:
        return state.so_far in self.options

    def _may_leave(self, state: State, element: int) -> bool:
        return any(state.so_far[: element + 1] == counts[: element + 1] for counts in self.options)


@dataclass(frozen=True)
class FreeCounts(Target):
    """Elements only: each gets at least one site; the cell holds at most ``max_atoms`` atoms."""

    elements: tuple[str, ...]
    max_atoms: int

    def can_complete(self, spacegroup: int, state: State) -> bool:
        total = sum(state.so_far)
        if total > self.max_atoms:
            return False
        needing = len(self.elements) - (state.cursor()[0] + 1 if state.sites else 0)
        return _place_singles(spacegroup, needing, self.max_atoms - total, state.used)

    def can_end(self, spacegroup: int, state: State) -> bool:
        return (
            bool(state.sites) and state.sites[-1][0] == len(self.elements) - 1 and sum(state.so_far) <= self.max_atoms
        )

    def _may_leave(self, state: State, element: int) -> bool:
        return state.so_far[element] > 0


@lru_cache(maxsize=200_000)
def _place_singles(spacegroup: int, n: int, budget: int, used: frozenset[int]) -> bool:
    """Can ``n`` more elements get one site each within ``budget`` atoms?"""
    if n == 0:
        return budget >= 0
    table = positions(spacegroup)
    smallest_free = min(p.multiplicity for p in table if not p.fixed)  # the general position is free
    fixed = sorted(p.multiplicity for p in table if p.fixed and p.index not in used)
    # cheapest placement: the smallest multiplicities, fixed positions once each, free ones repeatedly
    cheapest = sorted(fixed[:n] + [smallest_free] * n)[:n]
    return sum(cheapest) <= budget


def site_labels(spacegroup: int, state: State, elements: tuple[str, ...]) -> list[tuple[str, str]]:
    """The (element, Wyckoff label) list of a state."""
    table = positions(spacegroup)
    return [(elements[e], table[i].label) for e, i in state.sites]


def canonical_sites(spacegroup: int, sites: list[tuple[str, str]], elements: tuple[str, ...]) -> list[tuple[str, str]]:
    """Sort (element, label) pairs into the canonical order the decoder produces."""
    index = _label_index(spacegroup)
    order = {el: i for i, el in enumerate(elements)}
    return sorted(sites, key=lambda s: (order[s[0]], index[s[1]]))


def feasible_groups(target: Target) -> list[int]:
    """All space groups that can host the target."""
    return [g for g in range(1, 231) if target.feasible(g)]
