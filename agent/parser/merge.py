"""From findings to request fields: the one composition of the text (or a question), band-gap words
as a target, and the text's findings laid over the ``previous`` request of a conversation (see
"Multi-turn refinement" in the package docstring)."""

from __future__ import annotations

import re
from typing import Any

from xtalagent.agent.request import DesignRequest
from xtalagent.composition import parse_counts
from xtalagent.symmetry import crystal_system

from .formulas import same_ratio
from .state import Mention, ParseState

WIDE_GAP_MIN = 3.0  # "wide-gap", "insulator"
NARROW_GAP_MAX = 1.0  # "narrow-gap", "small band gap"
METAL_GAP_MAX = 0.1  # "metallic": value 0.0, maximum 0.1

_SPECIFIC = {"formula": 0, "composition": 1, "elements": 2}  # cell formula > ratio > element list
_COMPOSITION_FIELDS = ("formula", "composition", "elements")


def choose_composition(state: ParseState) -> dict[str, Any] | None:
    """The one composition of the text as DesignRequest fields (None if it names none or must ask)."""
    mentions = sorted(state.chemistry.mentions, key=lambda c: c.position)
    main = [c for c in mentions if c.kind != "lone"]
    lone = [c.elements[0] for c in mentions if c.kind == "lone"]
    anion_elements = [e for anion in state.chemistry.anions for e in anion.elements]
    if not main and lone and (anion_elements or len(lone) > 1):
        main, lone = [Mention("elements", 0, elements=tuple(dict.fromkeys(lone)))], []
    if not main:
        _ask_for_more_elements(state, lone)
        return None
    if anion_elements and _most_specific(main).kind == "elements":  # "an oxide of Li and Mn"
        main = [_with_elements(c, anion_elements) if c.kind == "elements" else c for c in main]
    best = _most_specific(main)
    question = _which_composition(main, best) or _missing_elements(best, lone + anion_elements)
    if question:
        state.questions.append(question)
        return None
    if best.kind == "elements":
        return {"elements": list(best.elements)}
    return {best.kind: best.formula}


def _most_specific(mentions: list[Mention]) -> Mention:
    return min(mentions, key=lambda c: _SPECIFIC[c.kind])


def _with_elements(mention: Mention, extra: list[str]) -> Mention:
    return Mention("elements", mention.position, elements=tuple(dict.fromkeys([*mention.elements, *extra])))


def _ask_for_more_elements(state: ParseState, lone: list[str]) -> None:
    """One element alone ("containing Fe") or an anion word alone ("an oxide"): ask for the rest."""
    if lone:
        other = "Fe" if lone[0] != "Fe" else "Ni"
        state.questions.append(
            f"Should the crystal contain only {lone[0]}, or which other elements? "
            f"(e.g. '{lone[0]}-O' or '{lone[0]}, {other} and O')"
        )
    elif state.chemistry.anions:
        anion = state.chemistry.anions[0]
        state.questions.append(
            f"Which elements besides {'-'.join(anion.elements)} should the {anion.word.lower()} contain?"
        )


def _which_composition(mentions: list[Mention], best: Mention) -> str | None:
    """A question when the text names compositions that disagree (other elements or another ratio)."""
    best_elements = set(best.symbols())
    for c in mentions:
        if set(c.symbols()) != best_elements:
            names = ", ".join(m.shown() for m in mentions)
            return f"Several compositions were named ({names}): which one should the crystal have?"
        if c.kind != "elements" and best.kind != "elements" and not same_ratio(c.formula, best.formula):
            return f"Several compositions were named ({c.formula}, {best.formula}): which one should it be?"
    return None


def _missing_elements(best: Mention, named: list[str]) -> str | None:
    """A question when elements named elsewhere ("containing Fe") are not in the composition."""
    present = set(best.symbols())
    missing = [e for e in named if e not in present]
    if missing:
        return f"Should {', '.join(missing)} be added to {best.shown()}? Please give the full composition."
    return None


def substitute(state: ParseState, data: dict[str, Any]) -> dict[str, Any] | None:
    """The previous composition with elements swapped ("Se instead of S")."""
    key = next((k for k in _COMPOSITION_FIELDS if data.get(k)), None)
    if key is None:
        for _, new in state.chemistry.substitutions:
            state.chemistry.mentions.append(Mention("lone", 0, elements=(new,)))
        state.questions.append("Which composition should the substitution apply to? Please give the full composition.")
        return None
    value: str | list[str] = data[key]
    for old, new in state.chemistry.substitutions:
        present = _elements_of(value)
        if old not in present:
            state.errors.append(f"{old} is not in the previous composition ({', '.join(present)})")
            return None
        value = _swap(value, old, new)
    return {key: value}


def _elements_of(value: str | list[str]) -> list[str]:
    """The elements of a composition field's value: an element list or a formula."""
    return list(value) if isinstance(value, list) else list(parse_counts(value))


def _swap(value: str | list[str], old: str, new: str) -> str | list[str]:
    if isinstance(value, list):
        return [new if e == old else e for e in value]
    return re.sub(rf"{old}(?![a-z])", new, value)  # the formula as the user typed it, one symbol swapped


def band_gap_from_words(state: ParseState) -> dict[str, float] | None:
    """ "wide-gap" -> minimum 3, "narrow gap" -> maximum 1, "metallic" -> 0 (maximum 0.1)."""
    kinds = {w.kind for w in state.properties.gap_words}
    if not kinds:
        return None
    if len(kinds) > 1:
        words = ", ".join(f"'{w.words}'" for w in state.properties.gap_words)
        state.errors.append(f"contradictory band-gap wishes: {words}")
        return None
    kind = kinds.pop()
    if kind == "wide":
        return {"minimum": WIDE_GAP_MIN}
    if kind == "narrow":
        return {"maximum": NARROW_GAP_MAX}
    return {"value": 0.0, "maximum": METAL_GAP_MAX}


def merge(state: ParseState, previous: DesignRequest | None, composition: dict[str, Any] | None) -> dict[str, Any]:
    """Request fields: the text's findings on top of ``previous`` (see the package docstring)."""
    # only what ``previous`` and the text state, so the request's ``model_fields_set`` tells stated
    # settings ("10 candidates") from defaults
    data = previous.model_dump(exclude_unset=True) if previous is not None else {}
    if composition is None and state.chemistry.substitutions:
        composition = substitute(state, data)
    if composition is not None:
        _merge_composition(data, composition)
    _merge_targets(state, data)
    for key in ("stable", "max_atoms", "n_candidates"):
        value = getattr(state.settings, key)
        if value is not None:
            data[key] = value
    _merge_symmetry(state, data, refining=previous is not None)
    data["exclude_elements"] = _added(data.get("exclude_elements", []), state.chemistry.excluded)
    if previous is None:
        _check_groups_against_systems(state)
    return {k: v for k, v in data.items() if v is not None or k in _COMPOSITION_FIELDS}


def _added(old: list, new: list) -> list:
    """``old`` followed by the items of ``new`` it lacks."""
    return [*old, *(x for x in new if x not in old)]


def _merge_composition(data: dict[str, Any], composition: dict[str, Any]) -> None:
    """A new composition replaces the previous one; its elements leave the previous exclusions."""
    for key in _COMPOSITION_FIELDS:
        data[key] = None
    data.update(composition)
    new = [e for value in composition.values() for e in _elements_of(value)]
    data["exclude_elements"] = [e for e in data.get("exclude_elements", []) if e not in new]


def _merge_targets(state: ParseState, data: dict[str, Any]) -> None:
    """A stated target replaces the previous one; "drop the band gap target" removes it."""
    for prop in ("band_gap", "formation_energy"):
        if prop in state.properties.cleared:
            data[prop] = None
        target = state.properties.targets.get(prop)
        if prop == "band_gap" and target is None:
            target = band_gap_from_words(state)
        if target:
            data[prop] = dict(target)


def _merge_symmetry(state: ParseState, data: dict[str, Any], *, refining: bool) -> None:
    """A symmetry wish replaces the previous one (adds to it with "also"); exclusions add up."""
    found = state.symmetry
    systems = list(data.get("crystal_systems", []))
    groups = list(data.get("spacegroups", []))
    if found.clear:
        systems, groups = [], []
    if (found.systems or found.groups) and not state.additive:
        systems, groups = [], []
    systems = [s for s in _added(systems, found.systems) if s not in found.dropped_systems]
    groups = _added(groups, found.groups)
    ex_systems = [s for s in data.get("exclude_crystal_systems", []) if s not in found.systems]
    ex_groups = [g for g in data.get("exclude_spacegroups", []) if g not in found.groups]
    if refining:  # new exclusions leave the previous wishes
        systems = [s for s in systems if s not in found.excluded_systems or s in found.systems]
        groups = [g for g in groups if g not in found.excluded_groups or g in found.groups]
    data.update(
        crystal_systems=systems,
        spacegroups=groups,
        exclude_crystal_systems=_added(ex_systems, found.excluded_systems),
        exclude_spacegroups=_added(ex_groups, found.excluded_groups),
    )


def _check_groups_against_systems(state: ParseState) -> None:
    """Space groups and crystal systems that contradict each other within one text."""
    found = state.symmetry
    if found.groups and found.excluded_systems:
        clash = [g for g in found.groups if crystal_system(g) in found.excluded_systems]
        if clash:
            state.errors.append(f"space group {clash[0]} is {crystal_system(clash[0])}, which is excluded")
