"""Hermann–Mauguin space-group symbols in running text: "P6_3/mmc", "P63/mmc", "Fm-3m", "Fm3m",
"P 4_2/m n m", "P2_1/c" and a few common non-standard settings (P21/n, Pbnm, Cmca).

:func:`hm_number` reads one symbol; :func:`hm_at` finds the longest symbol that starts at a position
of the working text. Symbols that also read as a formula or an element ("Pm", "Pc", "Cm", "Cc",
spaced "P 1") are only taken next to "space group" / "symmetry" or a negation.
"""

from __future__ import annotations

import re
from functools import cache

from xtalagent.symmetry import spacegroup_symbol

_HM_ALIASES = {
    "P21/n": 14, "P21/a": 14, "P2/n": 13, "Pbnm": 62, "Pnam": 62, "Cmca": 64, "Abm2": 39, "Aba2": 41,
    "Cmma": 67, "Ccca": 68, "R-3mH": 166, "R-3mR": 166, "R-3cH": 167, "R3mH": 160,
}  # fmt: skip


@cache
def _hm_maps() -> tuple[dict[str, int], dict[str, int]]:
    """(exact symbol -> number, symbol without '-' -> number when unambiguous)."""
    exact = {spacegroup_symbol(n): n for n in range(1, 231)}
    for key, n in _HM_ALIASES.items():
        exact.setdefault(key, n)
    dashless: dict[str, int | None] = {}
    for key, n in exact.items():
        short = key.replace("-", "")
        dashless[short] = n if dashless.get(short, n) == n else None
    return exact, {k: v for k, v in dashless.items() if v is not None}


def hm_number(symbol: str) -> int | None:
    """Space-group number of a Hermann–Mauguin symbol in a usual typed form, else None."""
    key = re.sub(r"\((\d)\)", r"\1", symbol)
    key = key.replace(" ", "").replace("_", "").replace("−", "-")
    exact, dashless = _hm_maps()
    if key in exact:
        return exact[key]
    return dashless.get(key.replace("-", "")) if key.count("-") <= 1 else None


HM_START = re.compile(r"(?<![\w/-])[PIFCAR]")
_HM_COMP = re.compile(r" ?(?:-?\d(?:_?\d|\(\d\))?|[mnabcde]|/)")
_SG_CONTEXT = re.compile(
    r"(?i:(?:space[\s-]*groups?|spacegroups?|\bsg|\bspg|symmetry|\bgroups?|\bnot|\bno|\bavoid\w*|\bexclud\w*|"
    r"\bexcept|\bwithout|\bin)\s*(?:#|no\.?|symbol|of|is|=|:)?\s*)$"
)

_AFTER_CONTEXT = re.compile(r"\s*(?:symmetry|space[\s-]*group)")


def hm_at(view: str, start: int) -> tuple[int, int] | None:
    """(end, number) of the longest space-group symbol starting at ``start``."""
    for end in reversed(_component_ends(view, start)):
        if end < len(view) and (view[end].isalnum() or view[end] in "_/"):
            continue
        raw = view[start:end]
        if raw.endswith((" ", "/", "-")):
            continue
        number = hm_number(raw)
        if number is None or (_ambiguous(raw) and not _in_context(view, start, end)):
            continue
        return end, number
    return None


def _component_ends(view: str, start: int) -> list[int]:
    """Where each of up to 12 symbol components after the lattice letter ends."""
    ends: list[int] = []
    pos = start + 1
    while len(ends) < 12:
        m = _HM_COMP.match(view, pos)
        if not m:
            break
        pos = m.end()
        ends.append(pos)
    return ends


def _ambiguous(raw: str) -> bool:
    """A symbol that also reads as an element or a formula ("Pm", "Cc", spaced "P 1")."""
    key = raw.replace(" ", "").replace("_", "")
    return bool(re.fullmatch(r"[A-Z][a-z]?", key) or (" " in raw and re.fullmatch(r"[A-Z][a-z]?\d*", key)))


def _in_context(view: str, start: int, end: int) -> bool:
    """Whether "space group" / "symmetry" (or a negation) stands before or after the symbol."""
    if _SG_CONTEXT.search(view[max(0, start - 30) : start]):
        return True
    return bool(_AFTER_CONTEXT.match(view[end : end + 20].lower()))
