"""Supervised examples for both stages, built from labelled crystals.

Every crystal yields prompt/completion pairs in the request patterns (full formula, elements
only, ratio) and property choices (band gap, formation energy, both, none — as far as the
dataset has them). Stage 1 answers the space group; stage 2 answers the sites given the group,
in the canonical order the strict decoder produces.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from xtalagent import prompts
from xtalagent.composition import reduced_counts
from xtalagent.finetune.requests import electronegativity_order
from xtalagent.finetune.wyckoff_solver import canonical_sites
from xtalagent.records import CrystalRecord

PATTERNS = ("formula", "elements", "composition")
BAND_GAP_KEYS = ("band_gap",)
FORMATION_ENERGY_KEYS = ("formation_energy_per_atom", "formation_energy")


@dataclass(frozen=True)
class PromptExample:
    stage: str  # "sg" or "wyckoff"
    prompt: str
    completion: str
    pattern: str
    record_id: str


def record_properties(record: CrystalRecord) -> tuple[float | None, float | None]:
    """(band gap, formation energy) of a record, None where the dataset lacks them."""

    def first(keys: tuple[str, ...]) -> float | None:
        for key in keys:
            value = record.properties.get(key)
            if value is not None and value == value:
                return float(value)
        return None

    return first(BAND_GAP_KEYS), first(FORMATION_ENERGY_KEYS)


def composition_of(record: CrystalRecord, pattern: str) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    """(elements in canonical order, counts as the prompt shows them) for a pattern."""
    counts = record.cell_counts
    order = electronegativity_order(list(counts))
    cell = tuple(counts[el] for el in order)
    if pattern == "formula":
        return order, cell
    if pattern == "composition":
        reduced, _ = reduced_counts(counts)
        return order, tuple(reduced[el] for el in order)
    return order, None


def site_completion(record: CrystalRecord, elements: tuple[str, ...]) -> str:
    sites = canonical_sites(record.spacegroup, [(s.element, s.wyckoff) for s in record.sites], elements)
    return "".join(prompts.site_answer(el, label, i == 0) for i, (el, label) in enumerate(sites))


def property_variants(
    band_gap: float | None, formation_energy: float | None
) -> list[tuple[float | None, float | None]]:
    variants: list[tuple[float | None, float | None]] = [(None, None)]
    if band_gap is not None:
        variants.append((band_gap, None))
    if formation_energy is not None:
        variants.append((None, formation_energy))
    if band_gap is not None and formation_energy is not None:
        variants.append((band_gap, formation_energy))
    return variants


def examples_for(
    record: CrystalRecord, pattern: str, band_gap: float | None, formation_energy: float | None
) -> list[PromptExample]:
    """The stage-1 and stage-2 examples of one crystal in one pattern and property choice."""
    elements, counts = composition_of(record, pattern)
    sg_prompt = prompts.spacegroup_prompt(pattern, elements, counts, band_gap, formation_energy)
    wy_prompt = prompts.wyckoff_prompt(pattern, elements, counts, record.spacegroup, band_gap, formation_energy)
    return [
        PromptExample("sg", sg_prompt, prompts.spacegroup_answer(record.spacegroup), pattern, record.id),
        PromptExample("wyckoff", wy_prompt, site_completion(record, elements), pattern, record.id),
    ]


def build_examples(
    records: Iterable[CrystalRecord], variants_per_record: int = 2, seed: int = 0
) -> Iterator[PromptExample]:
    """Examples with ``variants_per_record`` random (pattern, properties) choices per crystal.

    The full-formula pattern with every property the crystal has is always included, since it is
    the pattern the quality bar measures; the other draws cover the rest.
    """
    rng = random.Random(seed)
    for record in records:
        band_gap, formation_energy = record_properties(record)
        variants = property_variants(band_gap, formation_energy)
        chosen = [("formula", variants[-1])]
        for _ in range(max(0, variants_per_record - 1)):
            chosen.append((rng.choice(PATTERNS), rng.choice(variants)))
        seen = set()
        for pattern, (gap, eform) in chosen:
            if (pattern, gap, eform) in seen:
                continue
            seen.add((pattern, gap, eform))
            yield from examples_for(record, pattern, gap, eform)


def pretraining_text(record: CrystalRecord) -> str:
    """Plain crystal text for pretraining the base model: composition, properties, symmetry."""
    band_gap, formation_energy = record_properties(record)
    elements, counts = composition_of(record, "formula")
    return (
        prompts.describe_composition("formula", elements, counts)
        + prompts.describe_properties(band_gap, formation_energy)
        + f" The space group is{prompts.spacegroup_answer(record.spacegroup)}. Sites:"
        + site_completion(record, elements)
        + "."
    )
