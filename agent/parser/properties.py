"""Band gap, formation energy and stability: "band gap around 3 eV", "a 3 eV band gap", "wide-gap",
"metallic", "below -2.5 eV/atom formation energy", "negative formation energy", "stable", "on the
hull", "not necessarily stable", and the multi-turn "drop the band gap target"."""

from __future__ import annotations

import re
from decimal import Decimal

from .quantities import NUM, Quantity, quantity_at, resolve_units, target_at, to_ev
from .state import GapKind, GapWord, ParseState, Property

_GAP_KW = (  # "GaP" is gallium phosphide, not a gap
    r"(?:(?i:(?:electronic|optical|direct|indirect|fundamental)\s+)?(?-i:(?!GaPs?\b))(?i:band[\s_-]*gaps?|gaps?)|"
    r"(?-i:E_?g(?:ap)?))"
)
_FORM_KW = (
    r"(?:(?i:formation[\s_-]*(?:energy|energies|enthalpy|enthalpies)|(?:energy|enthalpy|heat)\s+of\s+formation)|"
    r"(?-i:E_?f(?:orm)?|ΔH_?f|dH_?f))"
)
_PROPS: dict[Property, tuple[str, str]] = {
    "band_gap": (_GAP_KW, "band gap"),
    "formation_energy": (_FORM_KW, "formation energy"),
}

_CLEAR = re.compile(
    r"(?i:\b(?:drop|remove|forget|ignore|delete|clear|no\s+more|without\s+(?:a|the|any))\s+(?:the\s+|any\s+)?"
    r"(?P<a>band[\s-]*gap|gap|formation[\s-]*energy)(?:\s+(?:target|requirement|constraint|condition|"
    r"restriction|limit|wish|value))?s?\b|\b(?:any|no)\s+(?P<b>band[\s-]*gap|gap|formation[\s-]*energy)\s+"
    r"(?:target|requirement|constraint|condition|restriction|limit|preference)s?\b|"
    r"\bany\s+(?P<c>band[\s-]*gap|formation[\s-]*energy)\b(?:\s+is\s+(?:fine|ok|okay))?)"
)

_VALUE_AHEAD = (
    r"\s*(?:[:=~<>(]|\+/-|\d|[-+.]\d|(?i:of|around|about|above|below|over|under|between|from|near|at\b|is\b|"
    r"approx|roughly|close|greater|larger|higher|more|less|lower|smaller|within|exceed|in\s+the\s+range|up\s+to|"
    r"should|must))"
)
_GAP_WORDS: list[tuple[re.Pattern[str], GapKind | None]] = [  # None: an adjective before "band gap"
    (re.compile(rf"(?i:\b(?:wide|large|big|high)[\s-]*(?:band[\s-]*)?gap)(?!{_VALUE_AHEAD})"), "wide"),
    (re.compile(rf"(?i:\b(?:narrow|small|low)[\s-]*(?:band[\s-]*)?gap)(?!{_VALUE_AHEAD})"), "narrow"),
    (re.compile(r"(?i:\b(?:wide|large|big|high|narrow|small|low)[\s-]*(?=(?:band[\s-]*)?gap\b))"), None),
    (
        re.compile(
            r"(?i:\b(?:zero|vanishing|no)[\s-]*(?:band[\s-]*)?gap\b|\bgapless\b|\bmetallic\b(?!\s+(?:oxide|bond)))"
        ),
        "metal",
    ),
    (
        re.compile(
            r"(?i:\b(?:a|be|is|are|as|being)\s+metals?\b(?![\s-]*(?:oxide|oxides|nitride|sulfide|halide|carbide|"
            r"boride|hydride|organic|free|cation|cations|ion|ions|atom|atoms|site|sites|framework|compound|"
            r"compounds|element|elements|center|centre)))"
        ),
        "metal",
    ),
    (re.compile(r"(?i:\binsulat(?:or|ors|ing)\b)"), "wide"),
]
# a value before the keyword: "a 3 eV band gap", "-2.5 eV/atom formation energy", "between 1 and 2 eV gap"
_BEFORE = {
    prop: re.compile(
        rf"(?:(?i:between|from)\s+(?<![\w.])(?P<lo>{NUM})\s*(?P<lounit>(?i:m?ev))?\s*(?i:and|to|-)\s*|"
        rf"(?P<cmp>(?i:>=|<=|>|<|~|above|below|over|under|at\s+least|at\s+most|around|about|near|"
        rf"approximately|roughly))\s*)?(?<![\w.])(?P<num>{NUM})\s*(?P<unit>(?i:m?ev)(?:\s*(?:/|per)\s*atom)?)"
        rf"[\s-]*{kw}\b"
    )
    for prop, (kw, _) in _PROPS.items()
}
_KEYWORD = {prop: re.compile(rf"(?<![\w-]){kw}(?![\w])") for prop, (kw, _) in _PROPS.items()}
_NEGATIVE_BEFORE = re.compile(r"(?i)\bnegative\s*$")


def read_properties(state: ParseState) -> None:
    """Band-gap and formation-energy targets, band-gap words, and phrases that clear a target."""
    for m in state.find(_CLEAR):
        which = (m.group("a") or m.group("b") or m.group("c")).lower()
        state.properties.cleared.add("band_gap" if "gap" in which else "formation_energy")
        state.take(*m.span())
    for pattern, kind in _GAP_WORDS:
        for m in state.find(pattern):
            state.take(*m.span())
            if kind is not None:
                state.properties.gap_words.append(GapWord(m.start(), kind, m.group(0).strip()))
    for prop in _PROPS:
        _read_values_before(state, prop)
        _read_values_after(state, prop)


def _add_target(state: ParseState, prop: Property, values: dict[str, float]) -> None:
    target = state.properties.targets.setdefault(prop, {})
    label = _PROPS[prop][1]
    for key, value in values.items():
        if key in target and target[key] != value:
            state.errors.append(
                f"the {label} {key} is given twice with different values ({target[key]:g} and {value:g})"
            )
        target[key] = value


def _read_values_before(state: ParseState, prop: Property) -> None:
    for m in state.find(_BEFORE[prop]):
        values = _values_before(m)
        if values is not None:
            _add_target(state, prop, values)
            state.take(*m.span())


def _values_before(m: re.Match[str]) -> dict[str, float] | None:
    q = quantity_at(m.group(0), m.start("num") - m.start())
    if not q:
        return None
    if m.group("lo"):
        lo = Quantity(Decimal(m.group("lo")), None, 0)
        values = {"minimum": to_ev(lo, q.unit), "maximum": to_ev(q, "eV")}
        typed_lo = quantity_at(m.group(0), m.start("lo") - m.start()) if m.group("lounit") else None
        if typed_lo:  # "between 500 meV and 2 eV"
            values["minimum"] = to_ev(typed_lo, "eV")
        return values
    return {_comparison(m.group("cmp")): to_ev(q, "eV")}


def _comparison(word: str | None) -> str:
    """The target part a comparison word before a value sets: "above" -> minimum, "~" -> value."""
    word = (word or "").lower()
    if word in (">=", ">", "above", "over") or word.startswith("at least"):
        return "minimum"
    if word in ("<=", "<", "below", "under") or word.startswith("at most"):
        return "maximum"
    return "value"


def _read_values_after(state: ParseState, prop: Property) -> None:
    for m in state.find(_KEYWORD[prop]):
        if state.consumed[m.start()]:
            continue
        view = state.view()
        found = target_at(view, m.end())
        if found is None:
            state.take(*m.span())
            _keyword_without_value(state, prop, m, view)
            continue
        parts, end = found
        _add_target(state, prop, resolve_units(parts, "eV"))
        state.take(m.start(), end)


def _keyword_without_value(state: ParseState, prop: Property, m: re.Match[str], view: str) -> None:
    """ "wide band gap" (a word said it), "negative formation energy" (maximum 0), else a note."""
    if prop == "band_gap" and any(abs(w.position - m.start()) < 25 for w in state.properties.gap_words):
        return
    negative = _NEGATIVE_BEFORE.search(view[: m.start()]) if prop == "formation_energy" else None
    if negative:
        state.take(negative.start(), m.start())
        _add_target(state, prop, {"maximum": 0.0})
        return
    label = _PROPS[prop][1]
    state.note(m.start(), f"'{m.group(0)}' without a value (give one, e.g. '{label} around ...')")


_HULL = re.compile(
    r"(?i:(?P<zero>\bzero\s+)?\b(?:energy\s+above\s+(?:the\s+)?(?:convex\s+)?hull|e_?above_?hull|e_?hull|distance\s+to\s+"
    r"(?:the\s+)?(?:convex\s+)?hull)(?:\s+(?:energy|value))?)"
)
_UNSTABLE_OK = re.compile(
    r"(?i:\b(?:not\s+necessarily|need\s+not|needn't|doesn't\s+(?:need|have)\s+to|does\s+not\s+(?:need|have)\s+to|"
    r"don't\s+(?:need|have)\s+to|do\s+not\s+(?:need|have)\s+to|no\s+need\s+to)\s+(?:be\s+)?(?:thermodynamically\s+)?"
    r"stable\b|\bstability\s+(?:does\s*n[o']t|doesn't|is\s+not|isn't)\s+(?:matter|important|needed|required)\b|"
    r"\b(?:meta|un)stable(?:\s+(?:ones|structures|candidates|phases))?\s+(?:is|are)\s+(?:fine|ok|okay|allowed|"
    r"acceptable)\b|\b(?:drop|remove|forget|ignore)\s+(?:the\s+)?stab(?:le|ility)(?:\s+(?:requirement|"
    r"constraint|condition|filter))?\b|\ballow\s+(?:meta|un)stable(?:\s+(?:ones|structures|candidates))?\b)"
)
_STABLE = re.compile(
    r"(?i:\b(?:thermodynamically|thermally|energetically)\s+stable\b|(?<![\w-])stable\b|\bon\s+the\s+(?:convex\s+)?"
    r"hull\b|\bon\s+hull\b|\bzero\s+energy\s+above\s+(?:the\s+)?(?:convex\s+)?hull\b|"
    r"\bthermodynamic(?:al)?\s+stability\b|\be_?(?:above_?)?hull\s*=\s*0(?:\.0+)?\b(?!\.\d))"
)
_NOT_STABLE_BEFORE = re.compile(r"\bnot\s+$|\bun$|\bmeta$")
_NOT_STABLE = re.compile(r"(?i:\b(?:meta|un|not\s+)stable\b)")


def read_stability(state: ParseState) -> None:
    """ "stable" / "on the hull" -> stable; "not necessarily stable" -> not; other hull wishes: a note."""
    for m in state.find(_HULL):
        _read_hull_wish(state, m)
    for m in state.find(_UNSTABLE_OK):
        state.set_setting("stable", False, "stability")
        state.take(*m.span())
    for m in state.find(_STABLE):
        before = state.view()[max(0, m.start() - 12) : m.start()].lower()
        if _NOT_STABLE_BEFORE.search(before):
            continue
        state.set_setting("stable", True, "stability")
        state.take(*m.span())
    for m in state.find(_NOT_STABLE):
        state.take(*m.span())
        state.note(m.start(), f"'{m.group(0)}' (only 'stable' = on the convex hull can be requested)")


def _read_hull_wish(state: ParseState, m: re.Match[str]) -> None:
    """ "zero energy above hull" / "e_above_hull = 0" mean stable; any other hull value cannot be asked."""
    found = target_at(state.view(), m.end())
    end = found[1] if found else m.end()
    values = resolve_units(found[0], "eV") if found else {}
    if m.group("zero") or (values and all(v == 0 for k, v in values.items() if k != "tolerance")):
        state.set_setting("stable", True, "stability")
    else:
        state.note(m.start(), f"'{state.text[m.start() : end]}' (only 'stable' = on the convex hull can be requested)")
    state.take(m.start(), end)
