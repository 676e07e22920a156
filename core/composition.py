"""Strict parsing of chemical formulas.

pymatgen's parser is forgiving (it accepts unknown symbols in some forms and silently rounds),
so user input is checked here first and gets one clear error per problem.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping

from pymatgen.core import Composition, Element

from xtalagent.errors import InputError

_TOKEN = re.compile(r"([A-Z][a-z]?)(\d*\.?\d*)")
_ALLOWED = re.compile(r"^(?:[A-Z][a-z]?\d*\.?\d*)+$")
#: Largest atom count of one element a formula may give (far beyond any cell; keeps counts finite).
MAX_COUNT: int = 10**6


def check_element(symbol: str) -> str:
    """Return ``symbol`` if it names a real element, else raise :class:`InputError`."""
    if not isinstance(symbol, str) or not Element.is_valid_symbol(symbol):
        raise InputError(f"unknown element {symbol!r}")
    return symbol


def parse_counts(formula: str) -> dict[str, int]:
    """Parse a cell formula such as ``Sc2Ni6`` or ``Ba1Nd1Co2O5`` into integer atom counts.

    The formula is read literally (no reduction): ``Sc2Ni6`` means 2 Sc and 6 Ni in the cell.
    """
    text = (formula or "").replace(" ", "")
    if not text or not _ALLOWED.match(text):
        raise InputError(f"malformed formula {formula!r}: expected element symbols with counts, e.g. 'Sc2Ni6'")
    counts: dict[str, int] = {}
    for symbol, number in _TOKEN.findall(text):
        check_element(symbol)
        try:
            value = float(number) if number else 1.0
        except ValueError:  # a bare '.'
            raise InputError(f"formula {formula!r}: count {number!r} of {symbol} is not a number") from None
        if not math.isfinite(value) or value > MAX_COUNT:  # '9' * 400 parses as inf: no round() of it
            shown = number if len(number) <= 12 else number[:12] + "..."
            raise InputError(f"formula {formula[:40]!r}: count {shown} of {symbol} is far too large (max {MAX_COUNT})")
        if value <= 0 or abs(value - round(value)) > 1e-8:
            raise InputError(f"formula {formula!r}: count {number!r} of {symbol} is not a positive integer")
        counts[symbol] = counts.get(symbol, 0) + int(round(value))
    return counts


def format_counts(counts: dict[str, int]) -> str:
    """Cell formula with explicit counts in pymatgen's electronegativity order (``Sc2Ni6``)."""
    return Composition({el: n for el, n in counts.items() if n > 0}).formula.replace(" ", "")


def reduced_formula(counts: dict[str, int]) -> str:
    """pymatgen's reduced formula (``ScNi3`` for ``Sc2Ni6``)."""
    return Composition(counts).reduced_formula


def reduced_counts(counts: Mapping[str, int]) -> tuple[dict[str, int], int]:
    """Counts divided by their greatest common factor, and that factor: ``Li4Fe4P4O16`` -> ``LiFePO4``, 4.

    The keys keep their order. This is the reduction of pymatgen's
    ``Composition.get_reduced_composition_and_factor`` without its molecular exceptions: pymatgen
    keeps ``O2``, ``H2``, ``H2O2``, ``Li2O2``, ... unreduced (factor halved), whereas every ratio here
    is fully reduced (``O8`` -> ``O``, 8), as the ratio vocabularies of the trained classifiers were
    built. It is also a gcd rather than a ``Composition`` (0.5 instead of ~230 microseconds), as it
    runs once per reference crystal when the neighbour prior is built.
    """
    values = [int(n) for n in counts.values()]
    factor = math.gcd(*values)
    if factor == 0:
        raise InputError(f"no atoms in {dict(counts)!r}")
    return {el: n // factor for el, n in zip(counts, values)}, factor


@functools.cache
def mendeleev_number(element: str) -> float:
    """Pettifor's Mendeleev number (pymatgen's ``mendeleev_no``): neighbours on it substitute in crystals."""
    number = Element(element).mendeleev_no
    return float(number) if number is not None else 200.0 + Element(element).Z  # superheavy: far from all
