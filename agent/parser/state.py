"""The working state of one parse: the text with the characters readers have taken masked, and what
each reader found, grouped by concern, for :mod:`.merge` to turn into request fields.

Readers run in a fixed order (:data:`xtalagent.agent.parser.parse.READERS`) and each takes
("consumes") the characters it understands, so a later reader never reads them again; whatever no
reader takes is reported by :mod:`.leftovers`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from xtalagent.composition import parse_counts

MASK = "\x1f"  # marks consumed characters in the working text

Property = Literal["band_gap", "formation_energy"]
Setting = Literal["stable", "max_atoms", "n_candidates"]
MentionKind = Literal["formula", "composition", "elements", "lone"]
GapKind = Literal["wide", "narrow", "metal"]


@dataclass(frozen=True)
class Mention:
    """A composition the text names: a cell ``formula``, a ratio ``composition``, an element list
    (``elements``) or one element standing alone (``lone``)."""

    kind: MentionKind
    position: int
    formula: str = ""  # formula and composition
    elements: tuple[str, ...] = ()  # elements and lone

    def symbols(self) -> list[str]:
        """Its elements in the order written."""
        return list(self.elements) if self.elements else list(parse_counts(self.formula))

    def shown(self) -> str:
        """As a question quotes it: the formula, or the elements joined by dashes."""
        return self.formula or "-".join(self.elements)


@dataclass(frozen=True)
class AnionWord:
    """An anion word standing alone ("an oxide"): its elements join an element list named elsewhere."""

    position: int
    elements: tuple[str, ...]
    word: str


@dataclass(frozen=True)
class GapWord:
    """A band-gap wish in words ("wide-gap", "metallic"), used when no number is given."""

    position: int
    kind: GapKind
    words: str


@dataclass
class Chemistry:
    mentions: list[Mention] = field(default_factory=list)
    anions: list[AnionWord] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)  # "without Pb"
    substitutions: list[tuple[str, str]] = field(default_factory=list)  # (old, new): "Se instead of S"


@dataclass
class Properties:
    targets: dict[Property, dict[str, float]] = field(default_factory=dict)  # value/tolerance/minimum/maximum
    gap_words: list[GapWord] = field(default_factory=list)
    cleared: set[Property] = field(default_factory=set)  # "drop the band gap target"


@dataclass
class Symmetry:
    systems: list[str] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    excluded_systems: list[str] = field(default_factory=list)
    excluded_groups: list[int] = field(default_factory=list)
    dropped_systems: list[str] = field(default_factory=list)  # "hexagonal instead of cubic"
    clear: bool = False  # "any symmetry"


@dataclass
class Settings:
    stable: bool | None = None
    max_atoms: int | None = None
    n_candidates: int | None = None


@dataclass
class ParseState:
    text: str
    consumed: list[bool] = field(init=False)
    chemistry: Chemistry = field(default_factory=Chemistry)
    properties: Properties = field(default_factory=Properties)
    symmetry: Symmetry = field(default_factory=Symmetry)
    settings: Settings = field(default_factory=Settings)
    additive: bool = False  # "also", "too", "as well": a symmetry wish adds to the previous one
    notes: list[tuple[int, str]] = field(default_factory=list)  # (position, message): not understood
    questions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.consumed = [False] * len(self.text)

    def view(self) -> str:
        """The text with every consumed character replaced by :data:`MASK`."""
        return "".join(MASK if c else ch for ch, c in zip(self.text, self.consumed))

    def find(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        """Matches on the current view (a snapshot: callers consume what they use)."""
        return list(pattern.finditer(self.view()))

    def take(self, start: int, end: int) -> None:
        for i in range(start, end):
            self.consumed[i] = True

    def note(self, pos: int, message: str) -> None:
        self.notes.append((pos, message))

    def set_setting(self, name: Setting, value: bool | int, what: str) -> None:
        """Record a setting; a second, different value for it is an error."""
        old = getattr(self.settings, name)
        if old is not None and old != value:
            self.errors.append(f"{what} is given twice with different values ({old} and {value})")
        setattr(self.settings, name, value)
