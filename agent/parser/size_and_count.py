"""The maximum number of atoms per cell ("at most 12 atoms", "a 5-atom cell") and the number of
candidates ("give me 20 candidates", "a dozen structures", "top 5")."""

from __future__ import annotations

import re

from .state import MASK, ParseState
from .vocabulary import COUNT_ADJ, COUNT_NOUN, NUMBER, int_word

_CELL_WORDS = r"(?i:(?:/|per|in\s+(?:the|a|each|one)?|in)\s*(?:unit\s+|conventional\s+|primitive\s+)?cells?\b)"
_ATOMS = rf"(?i:[\s-]*atoms?\b(?:\s*{_CELL_WORDS})?)"
_N = rf"(?P<n>{NUMBER})"
_LOWER_BOUND = re.compile(
    rf"(?i:\bat\s+least|(?<!no\s)(?<!not\s)\bmore\s+than|(?<!not\s)\bover|\bminimum(?:\s+of)?|>=?)\s*{_N}{_ATOMS}"
)
_SIZE_RULES = [(re.compile(pattern), shift) for pattern, shift in [  # (rule, what to add to the number)
    (rf"(?i:\b(?:fewer|less)\s+than|<(?!=)|\bunder|\bbelow)\s*{_N}{_ATOMS}", -1),
    (
        rf"(?i:\bat\s+most|\bno\s+more\s+than|\bnot\s+more\s+than|\bup\s+to|\bmax(?:imum)?\.?(?:\s+of)?|<=|=<|"
        rf"\bmaximally|\bwithin|\ba\s+maximum\s+of|\bat\s+max|\b(?:less|fewer)\s+than\s+or\s+equal\s+to|"
        rf"\bnot\s+exceeding|\bnot\s+to\s+exceed|\bnever\s+more\s+than|\bno\s+(?:larger|bigger|greater)\s+than)"
        rf"\s*{_N}{_ATOMS}",
        0,
    ),
    (rf"(?<![\w.]){_N}{_ATOMS}(?i:\s*(?:or\s+(?:fewer|less)|max(?:imum)?|at\s+most|tops))\b", 0),
    (rf"(?<![\w.]){_N}(?i:\s+or\s+(?:fewer|less)){_ATOMS}", 0),  # "12 or fewer atoms"
    (
        r"(?i:\b(?:number\s+of\s+atoms|atom\s+count|atoms\s+per\s+(?:unit\s+)?cell|max[_\s]atoms|cell\s+size)"
        r"\s*(?:(?P<cmp><=|=<|<|=|:|of|at\s+most|below|under|up\s+to|is|\s)\s*))(?P<n>\d+)\b",
        0,
    ),
    (  # "atoms <= 12", "atoms per cell: at most 12", "atoms below 13"
        rf"(?i:\batoms?(?:\s*{_CELL_WORDS})?\s*(?P<cmp><=|=<|<|at\s+most|no\s+more\s+than|up\s+to|below|under|"
        rf"fewer\s+than|less\s+than|max(?:imum)?\.?|:)\s*){_N}\b(?!\s*(?i:m?ev|%|k\b))",
        0,
    ),
    (rf"(?i:\bexactly\s+){_N}{_ATOMS}", 0),
    (rf"(?<![\w.]){_N}[\s-]*(?i:atoms?[\s-]*(?:unit\s+)?cells?\b|atoms?\s*{_CELL_WORDS})", 0),
    (rf"(?<![\w.]){_N}-atom\b", 0),
    (rf"(?<![\w.]){_N}\s+(?i:atoms)\b", 0),
]]  # fmt: skip
_STRICT = re.compile(r"<|below|under|(?:fewer|less)\s+than")

_GAP = rf"(?:[\s{MASK}-]|(?i:{COUNT_ADJ})\b)*"
_COUNT_RULES = [re.compile(pattern) for pattern in [
    r"(?i:\bn(?:_candidates)?\s*[=:]\s*|(?<!\w)-n\s+|\b(?:number\s+of\s+(?:candidates|structures)|"
    r"n_candidates)\s*(?:[=:]|of|is)?\s*)(?P<n>\d+)\b",
    rf"(?i:\b(?:top|best|first)\s+){_N}\b",
    rf"(?<![\w.-]){_N}(?i:{_GAP}{COUNT_NOUN})\b",
    rf"(?<![\w.-]){_N}(?i:\s+more)\b",
    rf"(?i:\banother\s+){_N}\b",
    rf"(?i:\b(?:give|generate|propose|suggest|show|find|make|produce|create|return|list|output|want|need)"
    rf"\s+(?:me\s+|us\s+)?(?:another\s+|about\s+|around\s+)?){_N}\b(?!\s*(?i:atoms?|ev|mev|%|k\b|elements?))",
    rf"(?<![\w.-]){_N}(?i:\s+of\s+(?:them|those|these|each|it))\b",  # "10 of them"
    r"(?i:\b(?P<n>(?:half\s+)?a\s+dozen)\b)(?!\s*(?i:atoms?|ev|mev|%|k\b|elements?))",  # "TiO2, a dozen"
]]  # fmt: skip


def read_size(state: ParseState) -> None:
    """``max_atoms``: "at most 12 atoms" -> 12, "fewer than 13 atoms" -> 12; lower bounds are a note."""
    for m in state.find(_LOWER_BOUND):
        state.note(m.start(), f"'{m.group(0).strip()}' (only a maximum number of atoms can be requested)")
        state.take(*m.span())
    for rule, shift in _SIZE_RULES:
        for m in state.find(rule):
            value = int_word(m.group("n")) + shift
            comparison = m.groupdict().get("cmp")
            if not shift and comparison and _STRICT.fullmatch(comparison.strip().lower()):
                value -= 1
            if m.group(0).lower().startswith("exactly"):
                state.note(m.start(), f"'{m.group(0).strip()}' (read as at most {value} atoms)")
            state.set_setting("max_atoms", value, "the maximum number of atoms")
            state.take(*m.span())


def read_count(state: ParseState) -> None:
    """``n_candidates``: numbers in front of a candidate noun or after give/generate/propose/..."""
    for rule in _COUNT_RULES:
        for m in state.find(rule):
            state.set_setting("n_candidates", int_word(m.group("n")), "the number of candidates")
            state.take(*m.span())
