"""Prompt templates (package data) and their rendering.

Following CrystalGF's findings, prompts state the valid scope (groups 1-230; the candidate
Wyckoff positions of the group), write numbers with three decimals and units, and ask for "the
most suitable" answer. Answers are short and canonical so that every valid answer has exactly
one spelling: `` 194`` for a group, `` Sc 2c, Ni 6h`` for sites.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

TEMPLATE_DIR = Path(__file__).parent


@cache
def template(name: str) -> str:
    """The text of ``prompts/NAME.txt``."""
    path = TEMPLATE_DIR / f"{name}.txt"
    if not path.exists():
        raise FileNotFoundError(f"no prompt template {name!r} in {TEMPLATE_DIR}")
    return path.read_text()


def describe_composition(pattern: str, elements: tuple[str, ...], counts: tuple[int, ...] | None) -> str:
    """One sentence on the composition, by request pattern."""
    if pattern == "formula":
        assert counts is not None, "the formula pattern shows counts"
        formula = "".join(f"{el}{n}" for el, n in zip(elements, counts))
        return f"The conventional cell contains exactly {formula}."
    if pattern == "composition":
        assert counts is not None, "the composition pattern shows counts"
        formula = "".join(f"{el}{n}" for el, n in zip(elements, counts))
        return f"The composition ratio is {formula}; choose the number of formula units in the cell."
    if pattern == "elements":
        return f"The crystal contains the elements {', '.join(elements)}; choose their ratio."
    raise ValueError(f"unknown request pattern {pattern!r}")


def describe_properties(band_gap: float | None, formation_energy: float | None) -> str:
    """Target properties with three decimals and units (empty when none)."""
    parts = []
    if band_gap is not None:
        parts.append(f" The band gap is {band_gap:.3f} eV.")
    if formation_energy is not None:
        parts.append(f" The formation energy is {formation_energy:.3f} eV/atom.")
    return "".join(parts)


def spacegroup_prompt(pattern: str, elements, counts, band_gap=None, formation_energy=None) -> str:
    return template("spacegroup").format(
        composition=describe_composition(pattern, tuple(elements), counts),
        properties=describe_properties(band_gap, formation_energy),
    )


def wyckoff_prompt(pattern: str, elements, counts, spacegroup: int, band_gap=None, formation_energy=None) -> str:
    from xtalagent.finetune.wyckoff_solver import positions

    table = positions(spacegroup)
    return template("wyckoff").format(
        composition=describe_composition(pattern, tuple(elements), counts),
        properties=describe_properties(band_gap, formation_energy),
        spacegroup=spacegroup,
        candidates=", ".join(p.label for p in table),
        fixed=", ".join(p.label for p in table if p.fixed) or "none",
    )


def spacegroup_answer(spacegroup: int) -> str:
    return f" {spacegroup}"


def site_answer(element: str, label: str, first: bool) -> str:
    """One site of the answer; sites are joined by commas."""
    return f"{'' if first else ','} {element} {label}"
