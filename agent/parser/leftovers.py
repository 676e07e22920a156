"""What no reader took: numbers, property and structure-type words, and phrases of other words, as
short notes for ``not_understood`` (ordinary filler words are ignored)."""

from __future__ import annotations

import re

from .quantities import NUM
from .state import MASK, ParseState
from .vocabulary import FILLER, PROPERTY_WORDS, STRUCTURE_WORDS

_LEFT_TOKEN = re.compile(
    rf"(?P<word0>\d+[A-Za-z][\w-]*)|(?P<num>{NUM}(?:\s*(?:%|°C|°|(?i:k|kelvin|gpa|mpa|ev/atom|mev/atom|ev|mev|nm|å|angstroms?|g/cm3|g/cm\^3|"
    r"s/cm|w/mk|t|tesla|emu/g|v|mah/g)\b))?)|(?P<word>[A-Za-zΔ][\w'’.-]*[\w]|[A-Za-z])"
)
_PHRASE_BREAK = re.compile(rf"[{MASK},;:.!?()]")


def read_leftovers(state: ParseState, *, has_gap: bool) -> None:
    """Notes for what is left; consecutive unknown words form one phrase ("'blue shiny' (not understood)")."""
    view = state.view()
    phrase: list[tuple[int, int]] = []
    last_end = 0
    for m in _LEFT_TOKEN.finditer(view):
        if phrase and _PHRASE_BREAK.search(view[last_end : m.start()]):
            _note_phrase(state, phrase)
        last_end = m.end()
        message = _leftover(m, has_gap=has_gap)
        if message is None:
            phrase.append(m.span())
            continue
        _note_phrase(state, phrase)
        if message:
            state.note(m.start(), message)
    _note_phrase(state, phrase)


def _note_phrase(state: ParseState, phrase: list[tuple[int, int]]) -> None:
    if phrase:
        state.note(phrase[0][0], f"'{state.text[phrase[0][0] : phrase[-1][1]]}' (not understood)")
        phrase.clear()


def _leftover(m: re.Match[str], *, has_gap: bool) -> str | None:
    """The note for one token, "" for a word to ignore, None for a word of an unknown phrase."""
    if m.group("num"):
        return f"'{m.group(0)}' (number not attached to any setting)"
    word = m.group("word") or m.group("word0")
    low = word.lower().strip(".'’")
    if low in FILLER or low.rstrip("s") in FILLER:
        return ""
    if low in PROPERTY_WORDS:
        return f"'{word}' (no property model for it)"
    if low in STRUCTURE_WORDS:
        return f"'{word}' (structure types are not supported; give a space group or crystal system)"
    if low.startswith("semiconduct"):
        return "" if has_gap else f"'{word}' (no band-gap range assumed; give one, e.g. 'band gap around 1.5 eV')"
    return None
