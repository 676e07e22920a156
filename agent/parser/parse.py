"""The entry point: :func:`parse_request` runs the readers in order over one text, merges their
findings with the previous request and validates the result as a :class:`DesignRequest`."""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import ValidationError

from xtalagent.agent.request import DesignRequest, ParseResult
from xtalagent.errors import InputError, validation_message

from .elements import (
    read_and_lists,
    read_anion_phrases,
    read_anion_words,
    read_dash_lists,
    read_exclusions,
    read_lone_elements,
    read_pure_elements,
    read_structure_types,
    read_substitution,
)
from .formulas import read_cell_formula, read_formula_tokens
from .leftovers import read_leftovers
from .merge import choose_composition, merge
from .normalise import normalise
from .properties import read_properties, read_stability
from .size_and_count import read_count, read_size
from .state import ParseState
from .symmetry import read_symmetry

MAX_TEXT_LENGTH = 5000
COMPOSITION_QUESTION = (
    "Which elements or formula should the crystal contain? (e.g. 'TiO2', 'Li2MnO3' or 'a Li-Fe-O compound')"
)

#: The readers in the order they run. Each takes the words it understands, so the order decides
#: who reads an ambiguous word: property values before size and count ("3 eV" is no count), cell
#: formulas before formula tokens ("Sc2Ni6 per cell" is no ratio), space groups before formulas
#: ("Pnma"), exclusions before element lists ("without Pb"), element lists before lone elements,
#: and the count last, after every other number found its setting.
READERS: tuple[Callable[[ParseState], None], ...] = (
    read_properties,
    read_stability,
    read_structure_types,
    read_substitution,
    read_cell_formula,
    read_size,
    read_symmetry,
    read_exclusions,
    read_dash_lists,
    read_formula_tokens,
    read_and_lists,
    read_anion_phrases,
    read_anion_words,
    read_pure_elements,
    read_lone_elements,
    read_count,
)
_ADDITIVE = re.compile(r"(?i)\b(?:also|too|as\s+well|in\s+addition|additionally)\b")


def parse_request(text: str, previous: DesignRequest | None = None) -> ParseResult:
    """Understand a design request (see the package docstring); never raises."""
    try:
        return _parse(text, previous)
    except Exception as exc:  # the parser must answer, never show a traceback
        return ParseResult(error=f"Could not read the request ({type(exc).__name__}: {exc}); please rephrase it.")


def _parse(text: str, previous: DesignRequest | None) -> ParseResult:
    if not isinstance(text, str):
        return ParseResult(error="the request must be text")
    if len(text) > MAX_TEXT_LENGTH:
        return ParseResult(error=f"the request is too long ({len(text)} characters; at most {MAX_TEXT_LENGTH})")
    state = ParseState(normalise(text))
    state.additive = bool(_ADDITIVE.search(state.text))
    for read in READERS:
        read(state)
    if state.errors:
        return ParseResult(error=_sentence(state.errors[0]))
    composition = choose_composition(state)
    read_leftovers(state, has_gap="band_gap" in state.properties.targets or bool(state.properties.gap_words))
    data = merge(state, previous, composition)
    if state.errors:
        return ParseResult(error=_sentence(state.errors[0]))
    try:
        request = DesignRequest.model_validate(data)
    except ValidationError as exc:
        return ParseResult(error=_sentence(validation_message(exc)))
    except (InputError, ValueError) as exc:
        return ParseResult(error=_sentence(str(exc)))
    questions = list(dict.fromkeys(state.questions))
    if not request.has_composition() and not questions:
        questions.append(COMPOSITION_QUESTION)
    notes = [msg for _, msg in sorted(state.notes, key=lambda n: n[0])]
    return ParseResult(request=request, not_understood=list(dict.fromkeys(notes)), questions=questions)


_FIELD_NAMES = {
    "band_gap": "band gap",
    "formation_energy": "formation energy",
    "max_atoms": "the maximum number of atoms per cell",
    "n_candidates": "the number of candidates",
    "spacegroups": "space group",
    "exclude_spacegroups": "excluded space group",
}


def _sentence(message: str) -> str:
    """One sentence for the user: a field name in words, a capital first letter, a full stop."""
    message = message.strip()
    m = re.match(r"^(\w+)(?:\.\d+)?(?:\.\w+)?:\s*", message)
    if m and m.group(1) in _FIELD_NAMES:
        rest = message[m.end() :]
        message = f"{_FIELD_NAMES[m.group(1)]}: {rest[:1].lower()}{rest[1:]}"
    message = message[0].upper() + message[1:] if message else "Invalid request"
    return message if message.endswith((".", "?", "!")) else message + "."
