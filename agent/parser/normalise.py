"""One spelling for the readers: unicode minus signs, dashes, comparison signs, spaces and quotes
become ASCII, "±" becomes "+/-", and formulas with parentheses are expanded ("Ca(OH)2" -> "CaO2H2")."""

from __future__ import annotations

import re

from .formulas import expand_parentheses
from .state import MASK

_PAREN_FORMULA = re.compile(r"(?<![\w(])[A-Z][a-z]?\d*(?:[A-Z][a-z]?\d*|\((?:[A-Z][a-z]?\d*)+\)\d*)*(?![\w(])")
_TABLE = {
    "\u2212": "-", "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\ufe63": "-", "\uff0d": "-", "\u2264": "<=", "\u2a7d": "<=", "\u2265": ">=", "\u2a7e": ">=",
    "\u2248": "~", "\u223c": "~", "\u2243": "~", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2002": " ",
    "\u2003": " ", "\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00b1": " +/- ",
    "\u0394": "Δ", "\t": " ", "\n": " ", "\r": " ", MASK: " ",
}  # fmt: skip


def normalise(text: str) -> str:
    text = "".join(_TABLE.get(ch, ch) for ch in text)
    text = re.sub(r"\+\s*/\s*-|\+-(?=\s*\d)", "+/-", text)
    return _PAREN_FORMULA.sub(lambda m: expand_parentheses(m.group(0)), text)
