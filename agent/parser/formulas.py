"""Formulas in running text: "TiO2" is a ratio (``composition``); "exactly Sc2Ni6 in the cell",
"Sc2Ni6 per unit cell" or "2 formula units of ScNi3" are a cell ``formula``.

A formula-shaped word is found with a regular expression (:data:`FORMULA`) and classified by
:func:`classify_formula`; the arithmetic on formulas (parentheses, multiples) is
pymatgen's :class:`~pymatgen.core.Composition` (reduced ratios: the project's exact
:func:`~xtalagent.composition.reduced_counts`). Composition's parser is forgiving (it reads "D" as H, drops
zero counts), so only formulas whose every symbol is an element reach it; the strict check of the
counts is :func:`xtalagent.composition.parse_counts`.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pymatgen.core import Composition
from pymatgen.util.string import formula_double_format

from xtalagent.composition import MAX_COUNT, parse_counts, reduced_counts
from xtalagent.errors import InputError

from .state import Mention, ParseState
from .vocabulary import ENGLISH_CAPS, NUMBER, element_data, int_word

# element symbols with counts, and parenthesised groups after the first symbol ("Ca(OH)2")
FORMULA = r"(?<![\w'’/-])[A-Z][a-z]?\d*(?:\.\d+)?(?:[A-Z][a-z]?\d*(?:\.\d+)?|\((?:[A-Z][a-z]?\d*)+\)\d*)*(?![\w'’])"
#: formula: a real formula; lone: one element symbol; placeholder: "ABO3"; acronym: "DFT"; error:
#: an unknown two-letter symbol or a bad count; none: a word that is no formula
FormulaKind = Literal["formula", "lone", "placeholder", "acronym", "error", "none"]
_SYMBOL_COUNT = re.compile(r"([A-Z][a-z]?)(\d*(?:\.\d+)?)")


def expand_parentheses(token: str) -> str:
    """``Ca(OH)2`` -> ``CaO2H2``: the elements in the order typed, counts of 1 left out.

    A token with a symbol that is no element, a zero count or an absurd count is returned as typed,
    for :func:`classify_formula` and :func:`~xtalagent.composition.parse_counts` to refuse.
    """
    if "(" not in token:
        return token
    symbols, _ = element_data()
    typed = set(re.findall(r"[A-Z][a-z]?", token))
    if not typed <= symbols:
        return token
    try:
        composition = Composition(token, strict=True)
    except ValueError:
        return token
    amounts = composition.values()
    if len(composition) != len(typed) or not all(math.isfinite(n) and n <= MAX_COUNT for n in amounts):
        return token  # a zero count dropped an element, or a count is absurd
    return typed_formula(composition)


def typed_formula(composition: Composition) -> str:
    """The formula in the composition's own element order (as typed), counts of 1 left out."""
    return "".join(f"{el.symbol}{formula_double_format(n)}" for el, n in composition.items())


def multiply(formula: str, times: int) -> str:
    """``ScNi3`` x 2 -> ``Sc2Ni6`` ("2 formula units of ScNi3")."""
    return typed_formula(Composition(formula) * times)


def same_ratio(a: str, b: str) -> bool:
    """Whether two formulas have the same reduced ratio (``TiO2`` and ``Ti2O4``).

    Exact integer reduction (:func:`~xtalagent.composition.reduced_counts`): pymatgen's
    ``reduced_formula`` gives the same answer but sorts by electronegativity, which warns for He,
    Ne, Ar and Og.
    """
    return reduced_counts(parse_counts(a))[0] == reduced_counts(parse_counts(b))[0]


def classify_formula(token: str) -> tuple[FormulaKind, str]:
    """(kind, message) for a formula-shaped word; the message (else "") explains an error or placeholder."""
    symbols, _ = element_data()
    parts = _SYMBOL_COUNT.findall(token)
    has_digit = any(ch.isdigit() for ch in token)
    has_lower = any(len(s) == 2 for s, _ in parts)
    bad = [s for s, _ in parts if s not in symbols]
    if len(parts) == 1 and not has_digit:
        return ("lone", "") if not bad else ("none", "")
    if not has_digit and not has_lower and (bad or token in ENGLISH_CAPS):
        return "acronym", ""  # all capitals: an acronym unless every letter is an element
    if bad:
        return _with_unknown_symbols(token, parts, bad)
    try:
        parse_counts(expand_parentheses(token))
    except InputError as exc:
        return "error", str(exc)
    return "formula", ""


def _with_unknown_symbols(token: str, parts: list[tuple[str, str]], bad: list[str]) -> tuple[FormulaKind, str]:
    long_bad = [s for s in bad if len(s) == 2]
    if long_bad and (any(ch.isdigit() for ch in token) or len(bad) < len(parts)):  # "Qq2O3", "XxO"
        return "error", f"unknown element {long_bad[0]!r} in {token!r}"
    if all(len(s) == 1 for s in bad):
        return "placeholder", f"'{token}' (prototype formula with placeholder letters; give the elements)"
    return "none", ""


_CELL = (
    r"(?i:(?:(?:the|a|one|each|every|its|per)\s+)?"
    r"(?:(?:conventional|primitive|crystallographic|unit|full)[\s-]+)?cell\b)"
)
_CELL_RULES = [
    re.compile(rf"(?i:\bexactly\s+)?(?P<f>{FORMULA})(?i:\s+(?:atoms\s+)?(?:in|per|inside|for)\s+{_CELL})"),
    re.compile(
        rf"(?i:\b(?:(?:unit[\s-]+)?cell\s+(?:formula|content|contents|composition|stoichiometry)|"
        rf"(?:unit|conventional|primitive|full)[\s-]+cell(?:\s+(?:of|with|containing|content|contents|formula|"
        rf"composition))?|(?:a|one)\s+cell\s+(?:of|with|containing)|exactly)\s*(?:of|is|=|:|being)?\s*)(?P<f>{FORMULA})"
    ),
    re.compile(rf"(?P<f>{FORMULA})(?i:\s+(?:unit\s+|conventional\s+|primitive\s+)?cell\b)"),
]
_FORMULA_UNITS = re.compile(rf"(?i:\b(?P<n>{NUMBER})\s+formula\s+units?\s+(?:of\s+)?)(?P<f>{FORMULA})")


def read_cell_formula(state: ParseState) -> None:
    """ "exactly Sc2Ni6 in the cell", "cell formula Sc2Ni6", "2 formula units of ScNi3" -> ``formula``."""
    for rule in _CELL_RULES:
        for m in state.find(rule):
            _record_cell_formula(state, m, units=None)
    for m in state.find(_FORMULA_UNITS):
        _record_cell_formula(state, m, units=m.group("n"))


def _record_cell_formula(state: ParseState, m: re.Match[str], *, units: str | None) -> None:
    token = m.group("f")
    kind, message = classify_formula(token)
    if kind == "error":
        state.errors.append(message)
    elif kind == "formula":
        formula = multiply(token, int_word(units)) if units else expand_parentheses(token)
        state.chemistry.mentions.append(Mention("formula", m.start(), formula=formula))
    else:
        return
    state.take(*m.span())


_STRUCTURE_TYPE = re.compile(r"[\s-]*(?i:type|like|structured|prototype)\b")


def read_formula_tokens(state: ParseState) -> None:
    """Every other formula-shaped word: a ratio ``composition``, an error, a placeholder or nothing."""
    for m in state.find(re.compile(FORMULA)):
        token = m.group(0)
        kind, message = classify_formula(token)
        typed = _STRUCTURE_TYPE.match(state.view(), m.end())
        if kind in ("formula", "placeholder") and typed:
            state.note(m.start(), f"'{state.text[m.start() : typed.end()]}' (structure types are not supported)")
            state.take(m.start(), typed.end())
            continue
        if kind == "formula":
            state.chemistry.mentions.append(Mention("composition", m.start(), formula=expand_parentheses(token)))
        elif kind == "error":
            state.errors.append(message)
        elif kind == "placeholder":
            state.note(m.start(), message)
        else:
            continue
        state.take(*m.span())
