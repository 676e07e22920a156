"""Symmetry wishes and exclusions: crystal systems ("cubic", "not hexagonal", "hexagonal instead of
cubic"), space groups by number ("space group 225", "no space group 1") and by Hermann–Mauguin
symbol ("Fm-3m (225)", "avoid P1 and P-1"), and the multi-turn "any symmetry"."""

from __future__ import annotations

import re

from xtalagent.errors import InputError
from xtalagent.symmetry import check_spacegroup

from .hermann_mauguin import HM_START, hm_at
from .state import ParseState
from .vocabulary import COUNT_ADJ, COUNT_NOUN, SYSTEM_WORDS, SYSTEMS

# a number that belongs to another setting ("225, 10 candidates", "62 or 14, 8 atoms"): ends a list
_OTHER_SETTING = (
    rf"(?!\d|\.\d|\s*-?\s*(?i:(?:{COUNT_ADJ}\s+)*{COUNT_NOUN}\b|atoms?\b|m?ev\b|more\b|of\s+them\b|"
    r"formula\s+units?\b|%|k\b))"
)

_EXCLUDED_AFTER = re.compile(
    r"(?i:\s*,?\s+(?:is\s+|are\s+)?(?:excluded|not\s+allowed|forbidden|not\s+wanted|disallowed)\b)"
)
_NEG_PREFIX = (
    r"(?P<neg>(?i:\b(?:no\s+more|no\s+longer|not\s+anymore|not|no|non|never|excluding|exclude|excluded|except(?:\s+for)?|avoid|avoiding|without|"
    r"other\s+than|anything\s+but|but\s+not|nothing)(?:\s+|-)(?:(?:in|a|an|any|the)\s+)?))?"
    r"(?P<drop>(?i:\b(?:instead\s+of|rather\s+than)\s+(?:(?:a|an|the)\s+)?))?"
)

_CLEAR = re.compile(
    r"(?i:\bany\s+(?:crystal\s+system|symmetry|space[\s-]*group|lattice)s?(?:\s+is\s+(?:fine|ok|okay))?\b|"
    r"\b(?:no|drop|remove|forget|ignore)\s+(?:the\s+)?(?:symmetry|space[\s-]*group|crystal[\s-]*system)\s*"
    r"(?:constraint|requirement|restriction|wish|preference|condition)?s?\b(?!\s*(?:#|no\b|number|\d|[A-Z]))|"
    r"\bsymmetry\s+(?:does\s*n[o']t|doesn't)\s+matter\b)"
)
_NUMBER_LIST = rf"(?P<nums>\d+(?:\s*(?:,|or|and|/|&)\s*(?:#\s*)?\d+{_OTHER_SETTING})*)"
_GROUP_WORD = (
    r"(?i:space[\s_-]*groups?|spacegroups?|sg|spg|s\.g\.|groups?)"
    r"(?:\s*(?:#|(?i:no\b\.?|number|num\b\.?|nr\b\.?)|:|=|of|is))*\s*"
)
_GROUP_NUMBERS = re.compile(
    rf"{_NEG_PREFIX}(?<![\w]){_GROUP_WORD}#?\s*{_NUMBER_LIST}\b(?!\.\d)(?P<post>{_EXCLUDED_AFTER.pattern})?"
)
_JOINED = re.compile(r"\s*(?:,|/|&|(?i:and|or|nor))?\s*(?:(?i:and|or|nor)\s+)?(?:(?i:the)\s+)?")
_NUMBER_IN_PARENTHESES = re.compile(r"\s*\(\s*(?i:no\.?|#|sg|space\s+group)?\s*(\d+)\s*\)")
_PREFIX_BEFORE_SYMBOL = re.compile(rf"{_NEG_PREFIX}(?:(?i:space[\s-]*group|sg|symmetry)\s*)?$")
_UNKNOWN_SYMBOL = re.compile(
    r"(?i:\b(?:space[\s-]*group|spacegroup|sg)\s*(?:symbol\s*)?(?::|=|is)?\s*)(?P<sym>[A-Z][\w/-]*)"
)
_SYSTEM_SEP = r"(?:\s*(?:,|/)\s*(?:(?i:or|and|nor)\s+)?|\s+(?i:or|and|nor)\s+)"
_SYSTEM_LIST = re.compile(
    rf"{_NEG_PREFIX}(?P<list>(?i:{SYSTEMS})(?:{_SYSTEM_SEP}(?:(?i:a|an|any)\s+)?(?i:{SYSTEMS}))*)\b"
    rf"(?P<post>(?i:\s+(?:structures?|ones|phases|crystals))?{_EXCLUDED_AFTER.pattern})?"
)


def read_symmetry(state: ParseState) -> None:
    for m in state.find(_CLEAR):
        state.symmetry.clear = True
        state.take(*m.span())
    _read_group_numbers(state)
    _read_hm_symbols(state)
    for m in state.find(_UNKNOWN_SYMBOL):  # "space group" followed by something that is not a group
        state.errors.append(f"space group {m.group('sym')!r} is not a known symbol or number (e.g. 'Fm-3m' or 225)")
        state.take(*m.span())
    _read_crystal_systems(state)


def _read_group_numbers(state: ParseState) -> None:
    """Space groups by number, with optional negation: "space groups 225 and 221", "no space group 1"."""
    for m in state.find(_GROUP_NUMBERS):
        numbers = [int(n) for n in re.findall(r"\d+", m.group("nums"))]
        try:
            for n in numbers:
                check_spacegroup(n)
        except InputError as exc:
            state.errors.append(str(exc))
        else:
            _add_groups(state, numbers, m)
        state.take(*m.span())


def _add_groups(state: ParseState, numbers: list[int], m: re.Match[str]) -> None:
    if m.group("neg") or m.groupdict().get("post"):
        target = state.symmetry.excluded_groups
    elif m.group("drop"):
        return
    else:
        target = state.symmetry.groups
    target.extend(n for n in numbers if n not in target)


def _read_hm_symbols(state: ParseState) -> None:
    """Hermann–Mauguin symbols; a list after a negation is negated as a whole ("not P1 or P-1")."""
    pos = 0
    last: tuple[int, str] = (-1, "")  # end and role (neg/drop/wish) of the previous symbol
    while (found := _next_symbol(state, pos)) is not None:
        start, end, number = found
        start, end, role = _symbol_role(state.view(), start, end, last)
        target = {"neg": state.symmetry.excluded_groups, "wish": state.symmetry.groups}.get(role)
        if target is not None and number not in target:
            target.append(number)
        last = (end, role)
        state.take(start, end)
        pos = end


def _next_symbol(state: ParseState, pos: int) -> tuple[int, int, int] | None:
    """(start, end, number) of the next symbol at or after ``pos``, with a "(225)" after it checked."""
    view = state.view()
    while m := HM_START.search(view, pos):
        found = hm_at(view, m.start())
        if not found:
            pos = m.start() + 1
            continue
        end, number = found
        paren = _NUMBER_IN_PARENTHESES.match(view, end)
        if paren:
            if int(paren.group(1)) != number:
                state.errors.append(f"{view[m.start() : end]} is space group {number}, not {paren.group(1)}")
            end = paren.end()
        return m.start(), end, number
    return None


def _symbol_role(view: str, start: int, end: int, last: tuple[int, str]) -> tuple[int, int, str]:
    """(start, end, role) of a symbol with its negation: "not P1", "P1 excluded", "P1 or P-1" after one."""
    before = view[max(0, start - 60) : start]
    pre = _PREFIX_BEFORE_SYMBOL.search(before)
    post = _EXCLUDED_AFTER.match(view, end)
    sep = _JOINED.fullmatch(view, last[0], start) if last[0] >= 0 else None
    if post:
        return start, post.end(), "neg"
    if pre and (pre.group("neg") or pre.group("drop")):
        return start - (len(before) - pre.start()), end, "neg" if pre.group("neg") else "drop"
    if sep and last[1] in ("neg", "drop"):
        return start, end, last[1]
    return start, end, "wish"


def _read_crystal_systems(state: ParseState) -> None:
    """Crystal systems, with optional negation: "cubic", "not cubic", "hexagonal instead of cubic"."""
    symmetry = state.symmetry
    for m in state.find(_SYSTEM_LIST):
        names = [SYSTEM_WORDS[w.lower()] for w in re.findall(rf"(?i:{SYSTEMS})", m.group("list"))]
        if m.group("neg") or m.group("post"):
            target = symmetry.excluded_systems
        elif m.group("drop"):
            target = symmetry.dropped_systems
        else:
            target = symmetry.systems
        target.extend(n for n in names if n not in target)
        state.take(*m.span())
