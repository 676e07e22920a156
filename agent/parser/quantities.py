"""Numbers with units and the words around them: "3 eV", "1500 meV", "2.5 ± 0.3 eV", "between 1 and
2 eV", "1-2 eV", "above 2 eV", "2 eV or more", "more negative than -2", "above 1 and below 2 eV".

:func:`target_at` reads the target that follows a property keyword as parts (value, tolerance,
minimum, maximum), each a :class:`Quantity` with the unit it inherits when it has none of its own;
:func:`resolve_units` turns them into eV (or eV/atom). Pure functions of a string and a position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

NUM = r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"  # "1e3": read, then refused if absurd
_QTY = re.compile(
    rf"\s*(?P<num>{NUM})(?![\d.]*\d)\s*(?P<unit>(?i:m?ev)(?![a-z])(?P<per>(?i:\s*(?:/|per)\s*(?:atom|at)\b\.?|"
    r"\s*atom\s*\^?\s*-\s*1|\s*/\s*atom))?)?"
)
_OTHER_UNIT = re.compile(
    r"\s*(?i:atoms?\b|candidates?\b|structures?\b|crystals?\b|k\b|kelvin|gpa|mpa|%|percent|nm\b|å|angstrom|"
    r"g/cm|ohm|s/cm|t\b|tesla|w/|j/|mj|kj)"
)
_CMP_NEGATIVE = re.compile(r"\s*(?i:(?P<dir>more|less)\s+negative\s+than)\s*")
_CMP_MIN = re.compile(
    r"\s*(?i:>=|=>|>|(?:greater|larger|higher|bigger|more)\s+than\s+or\s+equal\s+to|"
    r"equal\s+to\s+or\s+(?:greater|larger|higher|bigger|more)\s+than|at\s+least|no\s+(?:less|lower|smaller)\s+than|not\s+(?:less|lower|smaller)\s+than|"
    r"not\s+below|not\s+under|(?:greater|larger|higher|bigger|wider|more)\s+than|above|over|exceeding|"
    r"in\s+excess\s+of|minimum(?:\s+of)?|min\b\.?|starting\s+(?:at|from)|from)\s*"
)
_CMP_MAX = re.compile(
    r"\s*(?i:<=|=<|<|(?:less|lower|smaller|narrower)\s+than\s+or\s+equal\s+to|"
    r"equal\s+to\s+or\s+(?:less|lower|smaller)\s+than|at\s+most|no\s+(?:more|greater|larger|higher|bigger)\s+than|"
    r"not\s+(?:more|greater|larger|higher|bigger)\s+than|not\s+above|not\s+over|not\s+exceeding|"
    r"(?:less|lower|smaller|narrower)\s+than|below|under(?!stood)|up\s+to|maximum(?:\s+of)?|max\b\.?)\s*"
)
_LEAD = re.compile(
    r"\s*(?:[,:=~(]|(?i:(?:of|is|are|be|being|should|must|needs?\s+to|has\s+to|have\s+to|would\s+be|with|a|an|"
    r"the|that|which|ideally|preferably|value|target(?:ed|ing)?|approximately|approx\b\.?|about|around|roughly|"
    r"near(?:ly)?|close\s+to|equal\s+to|equals|cent(?:er|re)d\s+(?:at|on|around)|at|somewhere|per\s+atom|"
    r"in\s+the\s+range(?:\s+of)?|within\s+the\s+range(?:\s+of)?|range|set\s+to|to\s+be|to|instead|now|"
    r"energy)\b))"
)
_TOL = re.compile(r"\s*\(?\s*(?:\+/-|(?i:plus\s+or\s+minus|give\s+or\s+take|with\s+a\s+tolerance\s+of))\s*")
_RANGE_SEP = re.compile(r"\s*(?:-(?=\s*\d)|(?i:to|and)\b)\s*")
_OR_MORE = re.compile(r"\s*(?i:or\s+(?:more|higher|above|greater|larger|bigger)|and\s+(?:above|up)|\+(?!\s*/))")
_OR_LESS = re.compile(r"\s*(?i:or\s+(?:less|lower|below|smaller)|and\s+(?:below|under))")
_CONTINUE = re.compile(r"\s*(?:,\s*)?(?i:(?:and|but|,)\s*(?:also\s+)?)")
_RANGE_START = re.compile(r"\s*(?i:between|from|in\s+the\s+range(?:\s+of)?|range)\s*")


@dataclass
class Quantity:
    value: Decimal
    unit: str | None  # "eV", "meV" or None
    end: int


#: target part (value, tolerance, minimum, maximum) -> (quantity, unit to use if it has none)
Parts = dict[str, tuple[Quantity, str | None]]


def quantity_at(s: str, pos: int) -> Quantity | None:
    """A number with an optional energy unit at ``pos`` (None if another unit follows: "300 K")."""
    m = _QTY.match(s, pos)
    if not m:
        return None
    try:
        value = Decimal(m.group("num"))
    except InvalidOperation:
        return None
    unit = None
    if m.group("unit"):
        unit = "meV" if m.group("unit")[0] in "mM" else "eV"
    elif _OTHER_UNIT.match(s, m.end()):
        return None
    return Quantity(value, unit, m.end())


def to_ev(q: Quantity, unit: str | None) -> float:
    unit = q.unit or unit
    return float(q.value / 1000) if unit == "meV" else float(q.value)


def bound_at(s: str, pos: int) -> tuple[str, Quantity] | None:
    """A comparison ("above 2 eV") at ``pos``: (minimum|maximum, quantity)."""
    m = _CMP_NEGATIVE.match(s, pos)
    if m:
        q = quantity_at(s, m.end())
        return ("maximum" if m.group("dir").lower() == "more" else "minimum", q) if q else None
    for key, rx in (("maximum", _CMP_MAX), ("minimum", _CMP_MIN)):
        m = rx.match(s, pos)
        if m:
            q = quantity_at(s, m.end())
            if q:
                return key, q
    return None


def target_at(s: str, pos: int) -> tuple[Parts, int] | None:
    """Read a target after a property keyword; returns (parts, end), skipping up to ten lead words."""
    for _ in range(10):
        found = _range_at(s, pos) or _bound_target_at(s, pos) or _number_target_at(s, pos)
        if found is not None:
            return found
        lead = _LEAD.match(s, pos)
        if not lead or lead.end() == pos:
            return None
        pos = lead.end()
    return None


def _range_at(s: str, pos: int) -> tuple[Parts, int] | None:
    """ "between X and Y", "from X to Y", "in the range X-Y"."""
    m = _RANGE_START.match(s, pos)
    if not m:
        return None
    q1 = quantity_at(s, m.end())
    sep = _RANGE_SEP.match(s, q1.end) if q1 else None
    q2 = quantity_at(s, sep.end()) if sep else None
    if q1 and q2:
        return _more_bounds(s, {"minimum": (q1, q2.unit), "maximum": (q2, None)}, q2.end)
    return None


def _bound_target_at(s: str, pos: int) -> tuple[Parts, int] | None:
    b = bound_at(s, pos)
    return _more_bounds(s, {b[0]: (b[1], None)}, b[1].end) if b else None


def _number_target_at(s: str, pos: int) -> tuple[Parts, int] | None:
    """A number, then what follows it: a tolerance, a second number of a range, "or more"/"or less"."""
    q = quantity_at(s, pos)
    if not q:
        return None
    return (
        _tolerance_after(s, q)
        or _range_after(s, q)
        or _one_sided_after(s, q)
        or _more_bounds(s, {"value": (q, None)}, q.end)
    )


def _tolerance_after(s: str, q: Quantity) -> tuple[Parts, int] | None:
    """ "2.5 +/- 0.3", "2.5 eV plus or minus 300 meV", "(+/- 0.3)"."""
    tol = _TOL.match(s, q.end)
    t = quantity_at(s, tol.end()) if tol else None
    if not t:
        return None
    end = t.end + (1 if s[t.end : t.end + 1] == ")" else 0)
    return {"value": (q, t.unit), "tolerance": (t, q.unit)}, end


def _range_after(s: str, q: Quantity) -> tuple[Parts, int] | None:
    """ "1-2 eV", "1 to 2 eV" (not "1 and 2": that is two settings)."""
    sep = _RANGE_SEP.match(s, q.end)
    if not sep or s[q.end : sep.end()].strip().lower() == "and":
        return None
    q2 = quantity_at(s, sep.end())
    if q2 and q.value < q2.value:
        return _more_bounds(s, {"minimum": (q, q2.unit), "maximum": (q2, None)}, q2.end)
    return None


def _one_sided_after(s: str, q: Quantity) -> tuple[Parts, int] | None:
    """ "2 eV or more", "2 eV or less"."""
    more = _OR_MORE.match(s, q.end)
    if more:
        return _more_bounds(s, {"minimum": (q, None)}, more.end())
    less = _OR_LESS.match(s, q.end)
    if less:
        return _more_bounds(s, {"maximum": (q, None)}, less.end())
    return None


def _more_bounds(s: str, parts: Parts, end: int) -> tuple[Parts, int]:
    """Second bound joined with and/but: "above 1 eV and below 2 eV"."""
    while True:
        m = _CONTINUE.match(s, end)
        if not m:
            return parts, end
        b = bound_at(s, m.end())
        if not b or b[0] in parts:
            return parts, end
        parts[b[0]] = (b[1], None)
        end = b[1].end


def resolve_units(parts: Parts, default: str | None) -> dict[str, float]:
    """The parts in eV: a part without a unit takes its hint, else the last unit given, else ``default``."""
    units = [q.unit for q, _ in parts.values() if q.unit]
    fallback = units[-1] if units else default
    return {k: to_ev(q, q.unit or hint or fallback) for k, (q, hint) in parts.items()}
