"""Elements in words: lists ("a Ti-O compound", "Li, Fe, P and O"), names ("lithium iron phosphate",
"titanium oxide", "pure silicon"), anion words ("an oxide"), lone elements ("containing Fe"),
exclusions ("without Pb", "lead-free"), substitutions ("Se instead of S") and structure-type names,
which are no composition ("rock salt").

Symbols are only read when capitalised correctly and in a chemistry slot (see the package docstring);
the regex fragments for names and symbols come from :func:`.vocabulary.element_patterns`.
"""

from __future__ import annotations

import re

from .state import AnionWord, Mention, ParseState
from .vocabulary import ANION, ANIONS, ENGLISH_SHORT, element_data, element_of, element_patterns, symbol_of

_LIST_SEP = r"(?:\s*,\s*(?:(?i:and|&)\s+)?|\s+(?:(?i:and)|&)\s+)"
_OR_SEP = r"(?:\s*,\s*(?:(?i:and|or|nor)\s+)?|\s+(?i:and|or|nor|&)\s+)"
_NEGATION = (
    r"(?i:\b(?:without|excluding|exclude|excluded|except(?:\s+for)?|avoid|avoiding|free\s+of|but\s+not|no\s+more|"
    r"not\s+containing|no|not|does\s+not\s+contain|doesn't\s+contain|don't\s+want|do\s+not\s+want|"
    r"never)\s+(?:(?:any|the)\s+)?(?:elements?\s+)?)"
)
_STRUCTURE_PHRASES = re.compile(
    r"(?i:\b(?:zinc[\s-]*blende|rock[\s-]*salt|(?:half|full)[\s-]*heusler|anti[\s-]*perovskite|double[\s-]*perovskite|"
    r"ruddlesden[\s-]*popper|cesium[\s-]*chloride|sodium[\s-]*chloride|nickel[\s-]*arsenide|cadmium[\s-]*iodide)"
    r"(?:[\s-]+(?:type|structure|prototype|like))?\b)"
)
_COMPOSITION_WORD = (
    r"(?i:\b(?:containing|contains?|with|of|made\s+of|composed\s+of|consisting\s+of|based\s+on|from|"
    r"including|includes?)\s+)"
)


def _list_items(state: ParseState, text: str, start: int) -> list[str] | None:
    """Element symbols of a matched list, or None after recording an error / a placeholder note."""
    out = []
    for m in re.finditer(rf"(?<![\w'])(?:{element_patterns()['name']}|[A-Z][a-z]?)(?![\w'])", text):
        word = m.group(0)
        symbol = element_of(word)
        if symbol is None:
            if len(word) == 2 and word[0].isupper() and word[1].islower():
                state.errors.append(f"unknown element {word!r} in {text.strip()!r}")
                return None
            state.note(start, f"'{text.strip()}' (placeholder letter {word!r}; give the elements)")
            return None
        if symbol not in out:
            out.append(symbol)
    return out


def read_exclusions(state: ParseState) -> None:
    """ "without Pb", "excluding Co and Ni", "no lead", "Pb-free" -> excluded elements."""
    p = element_patterns()
    item = p["list_item"]
    excluded = state.chemistry.excluded
    for m in state.find(re.compile(rf"{_NEGATION}(?P<list>{item}(?:{_OR_SEP}{item})*)")):
        words = re.findall(item, m.group("list"))
        if all(len(w) == 1 and element_of(w) is None for w in words):
            continue  # "no A" is no element
        items = _list_items(state, m.group("list"), m.start())
        state.take(*m.span())
        if items is not None:
            excluded.extend(x for x in items if x not in excluded)
    for m in state.find(re.compile(rf"(?P<item>{p['element']})[\s-]*(?i:free)\b")):
        symbol = symbol_of(m.group("item"))
        if symbol not in excluded:
            excluded.append(symbol)
        state.take(*m.span())


def read_structure_types(state: ParseState) -> None:
    """ "zinc blende", "rock salt", "NaCl-type": structure types are not supported, so a note."""
    for m in state.find(_STRUCTURE_PHRASES):
        state.note(
            m.start(), f"'{m.group(0)}' (structure types are not supported; give a space group or crystal system)"
        )
        state.take(*m.span())


def read_substitution(state: ParseState) -> None:
    """ "Se instead of S", "replace S with Se", "swap S for Se": (old, new) pairs for a refinement."""
    li = element_patterns()["list_item"]
    rules = [
        rf"(?i:\bwith\s+)?(?P<new>{li})\s+(?i:instead\s+of|rather\s+than|in\s+place\s+of)\s+(?P<old>{li})",
        rf"(?i:\b(?:replace|substitute|swap|exchange)\s+)(?P<old>{li})\s+(?i:with|by|for)\s+(?P<new>{li})",
    ]
    for rule in rules:
        for m in state.find(re.compile(rule)):
            old, new = element_of(m.group("old")), element_of(m.group("new"))
            if old is None or new is None:
                continue
            state.chemistry.substitutions.append((old, new))
            state.take(*m.span())


def read_dash_lists(state: ParseState) -> None:
    """Dash / slash joined lists: Ti-O, Li-Fe-P-O, Ti/O, lithium-iron-oxygen."""
    p = element_patterns()
    dash_item = rf"(?:{p['name']}|[A-Z][a-z]?)(?![\w'])"
    dash = re.compile(rf"(?<![\w'/-]){dash_item}(?:\s*[-/]\s*{dash_item})+(?![-/]?\d)")
    for m in state.find(dash):
        items = _list_items(state, m.group(0), m.start())
        state.take(*m.span())
        if items is not None:
            state.chemistry.mentions.append(Mention("elements", m.start(), elements=tuple(items)))


def read_and_lists(state: ParseState) -> None:
    """Comma / and lists: "Li, Fe, P and O", "lithium and oxygen"."""
    li = element_patterns()["list_item"]
    for m in state.find(re.compile(rf"{li}(?:{_LIST_SEP}{li})+")):
        words = re.findall(li, m.group(0))
        if not any(element_of(w) is not None and w not in ENGLISH_SHORT for w in words):
            continue
        items = _list_items(state, m.group(0), m.start())
        state.take(*m.span())
        if items is not None:
            state.chemistry.mentions.append(Mention("elements", m.start(), elements=tuple(items)))


def read_anion_phrases(state: ParseState) -> None:
    """Names or symbols before an anion word: titanium oxide, lithium iron phosphate, Ti oxide."""
    el = element_patterns()["element"]
    anion = re.compile(rf"(?P<items>{el}(?:[\s-]+{el}){{0,5}})[\s-]+(?P<anion>(?i:{ANION}))\b")
    for m in state.find(anion):
        elements = [symbol_of(w) for w in re.findall(el, m.group("items"))]
        elements += ANIONS[m.group("anion").lower().rstrip("s")]
        state.chemistry.mentions.append(Mention("elements", m.start(), elements=tuple(dict.fromkeys(elements))))
        state.take(*m.span())


def read_anion_words(state: ParseState) -> None:
    """Anion words alone or with a list elsewhere: "an oxide containing Li and Mn"."""
    for m in state.find(re.compile(rf"(?i:\b{ANION}\b)")):
        state.chemistry.anions.append(AnionWord(m.start(), ANIONS[m.group(0).lower().rstrip("s")], m.group(0)))
        state.take(*m.span())


def read_pure_elements(state: ParseState) -> None:
    """One element on purpose: pure silicon, elemental C, carbon allotropes."""
    el = element_patterns()["element"]
    pure = re.compile(
        rf"(?i:\b(?:pure|elemental)\s+)(?P<a>{el})|(?P<b>{el})(?i:\s+allotropes?\b)|(?i:\ballotropes?\s+of\s+)(?P<c>{el})"
    )
    for m in state.find(pure):
        symbol = symbol_of(m.group("a") or m.group("b") or m.group("c"))
        state.chemistry.mentions.append(Mention("elements", m.start(), elements=(symbol,)))
        state.take(*m.span())


def read_lone_elements(state: ParseState) -> None:
    """Names anywhere ("lead" only in context), symbols after a composition word ("containing Fe");
    an unknown two-letter symbol there ("containing Xx") is an error."""
    p = element_patterns()
    symbols, _ = element_data()
    for m in state.find(re.compile(rf"{_COMPOSITION_WORD}(?P<w>{p['shape']})")):
        word = m.group("w")
        if element_of(word) is None and len(word) == 2 and word not in ENGLISH_SHORT:
            state.errors.append(f"unknown element {word!r}")
            state.take(*m.span())
    for m in state.find(re.compile(rf"(?P<ctx>{_COMPOSITION_WORD})?(?P<w>{p['element']})")):
        word = m.group("w")
        is_name = word not in symbols
        if not m.group("ctx") and ((is_name and word.lower() == "lead") or (not is_name and len(word) == 1)):
            continue
        state.chemistry.mentions.append(Mention("lone", m.start(), elements=(symbol_of(word),)))
        state.take(m.start("w"), m.end("w"))
