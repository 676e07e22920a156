"""Known crystals similar to the request vote beside the language model, in both stages.

The compact language model has seen 18k crystals and knows no chemistry beyond them; it ranks
groups well but is often unsure between a few. Known crystals that resemble the request are a
strong hint it does not fully absorb, in two senses:

* **same elements**: the ``k`` nearest training compositions by L1 distance on element fractions
  (element presence for elements-only requests; the nearest one alone is right for a third of MP
  val);
* **same prototype**: training crystals with the same anonymous formula (``A2B6``: the same sorted
  counts) whose elements, paired off in Pettifor (Mendeleev-number) order, are chemically closest:
  the sum of Mendeleev-number differences plus ``substitution_weight`` times the data-mined
  substitution distance of the paired elements (:mod:`~xtalagent.finetune.substitution`). This is
  the substitution rule a chemist uses (NaCl -> KBr) and is right for about 60 % of MP val by
  itself.

Stage 1 ranks each feasible group by

    log p_LM(group | prompt) + sum over the two parts of weight * log(share(group) + floor)

where ``share`` is the exp(-distance / scale)-weighted fraction of a part's ``k`` neighbours in
that group. Stage 2 does the same for site lists: the same-prototype crystals of the chosen group
whose site lists fit the request (the decoder's check) propose them, mapped onto the request's
elements. The target properties count in every part whose property weights are set: a
neighbour's distance grows by ``band_gap_weight`` per eV between its band gap and the requested
one (and likewise for the formation energy), so a wide-gap request listens to wide-gap crystals.
The ``k`` neighbours are the closest by that distance among the ``config.CONSTRAINT_PRIOR_POOL``
closest by composition (or prototype) alone. Only validity-checked answers are ever ranked, so
the prior can reorder answers but never make an invalid one. The known crystals are those the
adapters were trained on (the ``train`` split), stored with their properties beside the adapters
as ``neighbours.json.gz``. A model folder may also ship ``neighbours_lookup.json.gz``: further known
crystals (lookup data, not training data; the shipped default holds the MP ``val`` and ``test``
crystals) that the ``release`` knowledge variant adds, so users' requests hear from every crystal
we have. The ``eval`` variant, behind every reported benchmark, reads the training crystals only.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from xtalagent import config
from xtalagent.composition import format_counts, mendeleev_number, parse_counts, reduced_counts
from xtalagent.errors import XtalAgentError
from xtalagent.finetune.ratio_classifier import ratio_key
from xtalagent.finetune.substitution import substitution_distances
from xtalagent.io import atomic_path
from xtalagent.records import CrystalRecord

PRIOR_FILE = "neighbours.json.gz"
#: Known crystals beyond the training split, read by the ``release`` knowledge variant only.
LOOKUP_FILE = "neighbours_lookup.json.gz"
#: Knowledge variants: which prior files each reads.
VARIANT_FILES: dict[str, tuple[str, ...]] = {"release": (PRIOR_FILE, LOOKUP_FILE), "eval": (PRIOR_FILE,)}


@dataclass(frozen=True)
class PriorPart:
    """How strongly and from how many neighbours one part of the prior speaks."""

    weight: float
    k: int
    scale: float
    floor: float
    band_gap_weight: float = 0.0  # distance per eV of band-gap difference to the request
    formation_energy_weight: float = 0.0  # distance per eV/atom of formation-energy difference
    # prototype and sites parts: the chemical distance of two same-prototype crystals is their
    # Pettifor-number distance plus this times the data-mined substitution distance of the paired
    # elements (finetune/substitution.py)
    substitution_weight: float = 0.0


SILENT = PriorPart(weight=0.0, k=1, scale=1.0, floor=1.0)


@dataclass(frozen=True)
class PriorSettings:
    """The prior's parts for one request pattern.

    ``elements`` and ``prototype`` weigh stage-1 groups (same elements; same prototype); ``sites``
    weighs stage-2 site lists by the same-prototype crystals of the chosen group; ``ratios``
    (elements-only requests) weighs the ratio classifier's ratios by the chemically closest
    crystals with as many elements (:meth:`NeighbourPrior.ratio_shares`).
    """

    elements: PriorPart
    prototype: PriorPart
    sites: PriorPart = SILENT
    ratios: PriorPart = SILENT

    @classmethod
    def from_dict(cls, data: dict) -> PriorSettings:
        return cls(*(PriorPart(**data[f.name]) if f.name in data else SILENT for f in fields(cls)))

    def as_dict(self) -> dict:
        return {f.name: vars(getattr(self, f.name)) for f in fields(self)}


def _shown_counts(pattern: str, elements: list[str], counts: Iterable[int] | None) -> dict[str, int] | None:
    """Counts as the pattern shows them: the cell, the reduced ratio, or None (elements only)."""
    if pattern == "elements" or counts is None:
        return None
    shown = dict(zip(elements, counts))
    return reduced_counts(shown)[0] if pattern == "composition" else shown


def prototype_order(pattern: str, elements: Iterable[str], counts: Iterable[int] | None) -> list[str]:
    """The elements in the order crystals of one prototype are paired off: by count, then Pettifor number."""
    elements = list(elements)
    shown = _shown_counts(pattern, elements, counts)
    if shown is None:
        return sorted(elements, key=mendeleev_number)
    return sorted(elements, key=lambda el: (shown[el], mendeleev_number(el)))


def prototype_key(pattern: str, elements: Iterable[str], counts: Iterable[int] | None) -> tuple[tuple, list[float]]:
    """(anonymous formula, Pettifor numbers of its elements in prototype order) as a pattern sees it.

    ``formula``: the cell counts (A2B6 and A1B3 differ); ``composition``: the reduced ratio;
    ``elements``: only the number of elements.
    """
    elements = list(elements)
    shown = _shown_counts(pattern, elements, counts)
    order = prototype_order(pattern, elements, counts)
    key = (len(order),) if shown is None else tuple(shown[el] for el in order)
    return key, [mendeleev_number(el) for el in order]


def neighbour_shares(labels: Iterable, distances: Iterable[float], part: PriorPart) -> dict:
    """Each label's exp(-distance / scale)-weighted share of the neighbours (a group, or a site list)."""
    share: dict = {}
    for label, distance in zip(labels, distances):
        share[label] = share.get(label, 0.0) + math.exp(-distance / part.scale)
    total = sum(share.values()) or 1.0
    return {g: w / total for g, w in share.items()}


SiteList = tuple[tuple[str, str], ...]  # ((element, Wyckoff label), ...), sorted
Entry = tuple  # cell formula, space group, sites as "Sc:2c Ni:6h", band gap, formation energy (None if unknown)


def _entry(formula: str, group: int, sites: str, band_gap=None, formation_energy=None) -> Entry:
    def number(value) -> float | None:  # three decimals, as the prompts state them
        return None if value is None or value != value else round(float(value), 3)

    return (str(formula), int(group), str(sites), number(band_gap), number(formation_energy))


def _site_pairs(sites: str) -> list[tuple[str, str]]:
    """(element, Wyckoff label) pairs of an entry's site string, "Sc:2c Ni:6h"."""
    return [(el, label) for el, label in (x.split(":") for x in sites.split())]


class NeighbourPrior:
    def __init__(self, entries: list[Entry], settings: dict[str, PriorSettings] | None = None):
        if not entries:
            raise XtalAgentError("a neighbour prior needs at least one known crystal")
        self.entries = [_entry(*e) for e in entries]
        if settings is None:  # a model folder's own settings are set by the predictor that loads it
            from xtalagent.finetune.voters import VoterWeights

            settings = VoterWeights.neutral().prior_settings()
        self.settings = settings
        cells = [parse_counts(e[0]) for e in self.entries]
        self.substitution_row, self.substitution = substitution_distances(
            (self._template(cell, group, sites), prototype_order("formula", cell, cell.values()))
            for cell, (_, group, sites, *_) in zip(cells, self.entries)
        )
        # prototype tables, per pattern: anonymous formula -> (Pettifor numbers, entry indices,
        # substitution-table rows of the elements), elements in prototype order
        self.prototypes: dict[str, dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        for pattern in ("formula", "composition", "elements"):
            table: dict[tuple, tuple[list, list, list]] = {}
            for index, cell in enumerate(cells):
                key, numbers = prototype_key(pattern, cell, cell.values())
                rows = table.setdefault(key, ([], [], []))
                rows[0].append(numbers)
                rows[1].append(index)
                rows[2].append(self._substitution_rows(prototype_order(pattern, cell, cell.values())))
            self.prototypes[pattern] = {
                k: (np.array(v, dtype=np.float32), np.array(i), np.array(r)) for k, (v, i, r) in table.items()
            }
        # each crystal's reduced ratio, keyed as the ratio classifier keys its ratios
        self.ratio_keys = [ratio_key(cell) for cell in cells]
        symbols = sorted({el for cell in cells for el in cell})
        self.column = {el: i for i, el in enumerate(symbols)}
        self.groups = np.array([e[1] for e in self.entries])
        # target properties of the known crystals, NaN where unknown
        self.properties = {
            name: np.array([np.nan if e[column] is None else e[column] for e in self.entries], dtype=np.float32)
            for name, column in (("band_gap", 3), ("formation_energy", 4))
        }
        self.fractions = np.zeros((len(cells), len(symbols)), dtype=np.float32)
        self.log_size = np.zeros(len(cells), dtype=np.float32)
        for row, cell in enumerate(cells):
            total = sum(cell.values())
            for el, n in cell.items():
                self.fractions[row, self.column[el]] = n / total
            self.log_size[row] = math.log(total)
        self.presence = (self.fractions > 0).astype(np.float32)

    @property
    def has_properties(self) -> bool:
        """Whether any known crystal carries a band gap or formation energy (files written before the
        prior weighed properties carry none)."""
        return any(e[3] is not None or e[4] is not None for e in self.entries)

    @staticmethod
    def _template(cell: dict[str, int], group: int, sites: str) -> tuple:
        """Anonymous cell formula, group and Wyckoff sites: crystals sharing it differ only by substitution."""
        order = prototype_order("formula", cell, cell.values())
        place = {el: i for i, el in enumerate(order)}
        anonymous = tuple(sorted((place[el], label) for el, label in _site_pairs(sites)))
        return tuple(cell[el] for el in order), group, anonymous

    def _substitution_rows(self, elements: Iterable[str]) -> list[int]:
        unknown = len(self.substitution) - 1
        return [self.substitution_row.get(el, unknown) for el in elements]

    def settings_dict(self) -> dict:
        return {pattern: settings.as_dict() for pattern, settings in self.settings.items()}

    @classmethod
    def from_records(cls, records: Iterable[CrystalRecord]) -> NeighbourPrior:
        from xtalagent.finetune.examples import record_properties

        return cls(
            [
                (
                    format_counts(r.cell_counts),
                    r.spacegroup,
                    " ".join(f"{x.element}:{x.wyckoff}" for x in r.sites),
                    *record_properties(r),
                )
                for r in records
            ]
        )

    def save(self, path: Path, what: str = "every training crystal") -> None:
        save_entries(path, self.entries, what)

    @classmethod
    def load(cls, path: Path, *more: Path) -> NeighbourPrior:
        """Read one prior file, or several joined (training crystals + lookup crystals)."""
        return cls([e for p in (path, *more) for e in read_entries(p)])

    def distances(self, pattern: str, elements: tuple[str, ...], counts: tuple[int, ...] | None) -> np.ndarray:
        """L1 distance of every known crystal to the request: fractions (+ cell size), or element sets."""
        if pattern == "elements" or counts is None:
            query = np.zeros(self.presence.shape[1], dtype=np.float32)
            extra: float = sum(el not in self.column for el in elements)  # elements no known crystal has
            for el in elements:
                if el in self.column:
                    query[self.column[el]] = 1.0
            return np.abs(self.presence - query).sum(axis=1) + extra
        total = sum(counts)
        query = np.zeros(self.fractions.shape[1], dtype=np.float32)
        extra = 0.0
        for el, n in zip(elements, counts):
            if el in self.column:
                query[self.column[el]] = n / total
            else:
                extra += n / total
        distance = np.abs(self.fractions - query).sum(axis=1) + extra
        if pattern == "formula":  # the cell content is fixed, so Sc2Ni6 and Sc4Ni12 differ
            distance += 0.1 * np.abs(self.log_size - math.log(total))
        return distance

    def pool(
        self,
        part: str,
        pattern: str,
        elements: tuple[str, ...],
        counts: tuple[int, ...] | None,
        spacegroup: int | None = None,
        substitution_weight: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(entry indices, distances) of the ``config.CONSTRAINT_PRIOR_POOL`` known crystals closest to the
        request by composition (``part="elements"``) or prototype (``"prototype"``: chemical distance,
        see :meth:`_prototype_matches`), nearest first; with ``spacegroup``, only the crystals in that
        group (prototype part only)."""
        if part == "elements":
            index = np.arange(len(self.entries))
            distance = self.distances(pattern, elements, counts)
        else:
            index, distance = self._prototype_matches(pattern, elements, counts, substitution_weight)
            if spacegroup is not None:
                same = self.groups[index] == spacegroup
                index, distance = index[same], distance[same]
        size = min(config.CONSTRAINT_PRIOR_POOL, len(distance))
        if size < len(distance):
            keep = np.argpartition(distance, size - 1)[:size]
            index, distance = index[keep], distance[keep]
        order = np.argsort(distance, kind="stable")
        return index[order], distance[order]

    def closest(
        self,
        pool: tuple[np.ndarray, np.ndarray],
        part: PriorPart,
        band_gap: float | None = None,
        formation_energy: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The part's ``k`` closest crystals of a pool once the distance to the requested properties is
        added (per unit of difference, the part's property weight; an unknown value counts as
        ``config.CONSTRAINT_PRIOR_UNKNOWN_PROPERTY``), nearest first."""
        index, distance = pool
        for name, target, weight in (
            ("band_gap", band_gap, part.band_gap_weight),
            ("formation_energy", formation_energy, part.formation_energy_weight),
        ):
            if target is None or weight == 0 or len(index) == 0:
                continue
            difference = np.abs(self.properties[name][index] - target)
            difference = np.where(np.isnan(difference), config.CONSTRAINT_PRIOR_UNKNOWN_PROPERTY[name], difference)
            distance = distance + weight * difference
        order = np.argsort(distance, kind="stable")[: part.k]
        return index[order], distance[order]

    def nearest_elements(self, pattern, elements, counts, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(groups, distances) of the ``k`` training compositions nearest in elements, nearest first."""
        index, distance = self.pool("elements", pattern, elements, counts)
        return self.groups[index[:k]], distance[:k]

    def _prototype_matches(
        self, pattern, elements, counts, substitution_weight: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """(entry indices, chemical distances) of the crystals with the request's anonymous formula:
        Pettifor-number distance plus ``substitution_weight`` times the substitution distance of the
        paired elements."""
        key, numbers = prototype_key(pattern, elements, counts)
        table = self.prototypes[pattern].get(key)
        if table is None:
            return np.array([], dtype=int), np.array([])
        distance = np.abs(table[0] - np.array(numbers, dtype=np.float32)).sum(axis=1)
        if substitution_weight:
            mine = np.array(self._substitution_rows(prototype_order(pattern, elements, counts)))
            distance = distance + substitution_weight * self.substitution[mine[None, :], table[2]].sum(axis=1)
        return table[1], distance

    def ratio_shares(
        self,
        elements: Iterable[str],
        part: PriorPart,
        band_gap: float | None = None,
        formation_energy: float | None = None,
        pool: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[tuple[int, ...], float]:
        """Each reduced ratio's share of the part's ``k`` closest known crystals with as many elements
        (Pettifor-number distance of the elements paired off in Pettifor order, plus the distance to
        the requested properties), keyed by :func:`ratio_key`; empty when no such crystal is known.

        Why: ``Sc-Ni`` hides its stoichiometry, but Y-Ni and Sc-Co crystals, the more so those
        with the requested band gap or formation energy, show which ratios such elements take.
        ``pool`` is :meth:`pool` of the prototype part for these elements, when already at hand."""
        pool = self.pool("prototype", "elements", tuple(elements), None) if pool is None else pool
        if len(pool[0]) == 0:
            return {}
        index, distance = self.closest(pool, part, band_gap, formation_energy)
        return neighbour_shares([self.ratio_keys[i] for i in index.tolist()], distance.tolist(), part)

    def nearest_prototypes(self, pattern, elements, counts, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(groups, distances) of the ``k`` closest crystals with the request's anonymous formula."""
        index, distance = self.pool("prototype", pattern, elements, counts)
        return self.groups[index[:k]], distance[:k]

    def sites_on(self, pattern: str, elements: tuple[str, ...], counts: tuple[int, ...] | None, index: int) -> SiteList:
        """A known crystal's site list on the request's elements. Elements are paired off in prototype
        order (count, then Pettifor number), so K4Br4 maps rock salt's Na onto K and Cl onto Br."""
        formula, _, sites = self.entries[index][:3]
        cell = parse_counts(formula)
        rename = dict(zip(prototype_order(pattern, cell, cell.values()), prototype_order(pattern, elements, counts)))
        return tuple(sorted((rename[el], label) for el, label in _site_pairs(sites)))

    def site_pool(
        self,
        pattern: str,
        elements: tuple[str, ...],
        counts: tuple[int, ...] | None,
        spacegroup: int,
        fits: Callable[[SiteList], bool] | None = None,
        substitution_weight: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray, dict[int, SiteList]]:
        """(entry indices, distances, index -> site list on the request's elements) of the pool of
        same-prototype crystals in ``spacegroup``. With ``fits``, only crystals whose list passes it
        stay: a 48-atom cell says nothing to a request capped at 20 atoms, and must not crowd out
        the smaller cells behind it."""
        index, distance = self.pool("prototype", pattern, elements, counts, spacegroup, substitution_weight)
        sites = [self.sites_on(pattern, elements, counts, i) for i in index.tolist()]
        if fits is not None:
            verdict = {s: fits(s) for s in dict.fromkeys(sites)}
            keep = np.array([verdict[s] for s in sites], dtype=bool)
            index, distance = index[keep], distance[keep]
            sites = [s for s, ok in zip(sites, keep.tolist()) if ok]
        return index, distance, dict(zip(index.tolist(), sites))

    def site_neighbours(
        self,
        pattern: str,
        elements: tuple[str, ...],
        counts: tuple[int, ...] | None,
        spacegroup: int,
        part: PriorPart,
        band_gap: float | None = None,
        formation_energy: float | None = None,
        fits: Callable[[SiteList], bool] | None = None,
    ) -> list[tuple[SiteList, float]]:
        """(site list on the request's elements, distance) of the part's ``k`` closest crystals of the
        site pool (properties included), nearest first."""
        index, distance, site_of = self.site_pool(pattern, elements, counts, spacegroup, fits, part.substitution_weight)
        return self.closest_sites((index, distance, site_of), part, band_gap, formation_energy)

    def closest_sites(
        self,
        site_pool: tuple[np.ndarray, np.ndarray, dict[int, SiteList]],
        part: PriorPart,
        band_gap: float | None = None,
        formation_energy: float | None = None,
    ) -> list[tuple[SiteList, float]]:
        index, distance, site_of = site_pool
        index, distance = self.closest((index, distance), part, band_gap, formation_energy)
        return [(site_of[i], d) for i, d in zip(index.tolist(), distance.tolist())]

    def site_proposals(
        self,
        pattern: str,
        elements: tuple[str, ...],
        counts: tuple[int, ...] | None,
        spacegroup: int,
        band_gap: float | None = None,
        formation_energy: float | None = None,
        fits: Callable[[SiteList], bool] | None = None,
    ) -> list[tuple[list[tuple[str, str]], float]]:
        """Distinct site lists of the nearest same-prototype crystals in ``spacegroup`` (those that
        pass ``fits``, the decoder's check against the request), each with its share of them
        (exp(-distance / scale) weights)."""
        part = self.settings[pattern].sites if pattern in self.settings else None
        if part is None or part.weight == 0:
            return []
        found = self.site_neighbours(pattern, elements, counts, spacegroup, part, band_gap, formation_energy, fits)
        if not found:
            return []
        sites, distances = zip(*found)
        return [(list(s), w) for s, w in neighbour_shares(sites, distances, part).items()]

    def part_bonus(
        self,
        pool: tuple[np.ndarray, np.ndarray],
        part: PriorPart,
        groups: Iterable[int],
        band_gap: float | None = None,
        formation_energy: float | None = None,
    ) -> dict[int, float]:
        """``weight * log(share + floor)`` of one part for each group; all zero when the pool is empty
        (no crystal of this prototype is known: the part abstains)."""
        groups = list(groups)
        if part.weight == 0 or len(pool[0]) == 0:
            return dict.fromkeys(groups, 0.0)
        index, distance = self.closest(pool, part, band_gap, formation_energy)
        share = neighbour_shares(self.groups[index].tolist(), distance.tolist(), part)
        return {g: part.weight * math.log(share.get(g, 0.0) + part.floor) for g in groups}

    def bonus(
        self,
        pattern: str,
        elements: tuple[str, ...],
        counts: tuple[int, ...] | None,
        groups: Iterable[int],
        band_gap: float | None = None,
        formation_energy: float | None = None,
    ) -> dict[int, float]:
        """Sum over the two parts of ``weight * log(share + floor)`` for each group."""
        groups = list(groups)
        total = dict.fromkeys(groups, 0.0)
        settings = self.settings.get(pattern)
        if settings is None:
            return total
        for name in ("elements", "prototype"):
            part: PriorPart = getattr(settings, name)
            if part.weight == 0:
                continue
            pool = self.pool(name, pattern, elements, counts, substitution_weight=part.substitution_weight)
            for g, value in self.part_bonus(pool, part, groups, band_gap, formation_energy).items():
                total[g] += value
        return total


def save_entries(path: Path, entries: list, what: str) -> None:
    """Write known crystals in the prior's file format (atomically)."""
    with atomic_path(Path(path)) as tmp, gzip.open(tmp, "wt") as handle:
        header = (
            "cell formula, space group, Wyckoff sites, band gap (eV) and formation energy (eV/atom; "
            f"null if unknown) of {what}"
        )
        json.dump({"what": header, "entries": entries}, handle)


def read_entries(path: Path) -> list[Entry]:
    """Known crystals of a prior file; files from before the properties were stored (3 fields) still load."""
    try:
        with gzip.open(path, "rt") as handle:
            return [_entry(*row) for row in json.load(handle)["entries"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise XtalAgentError(f"{path}: not a neighbour prior file ({exc!r})") from exc


def prior_files(model_dir: Path, variant: str = "eval") -> list[Path]:
    """The prior files of a model folder that the knowledge variant reads (missing ones left out)."""
    if variant not in VARIANT_FILES:
        raise XtalAgentError(f"unknown knowledge variant {variant!r} (choose from {', '.join(VARIANT_FILES)})")
    return [Path(model_dir) / name for name in VARIANT_FILES[variant] if (Path(model_dir) / name).exists()]


def load_prior(model_dir: Path, variant: str = "eval") -> NeighbourPrior | None:
    """The prior stored beside a model's adapters (with its lookup crystals for ``release``), or None
    when the folder has no training-crystal file."""
    files = prior_files(model_dir, variant)
    if not files or files[0].name != PRIOR_FILE:
        return None
    return NeighbourPrior.load(*files)


def build_lookup(dataset: Path, model_dir: Path, splits: tuple[str, ...] = ("val", "test")) -> int:
    """Write ``neighbours_lookup.json.gz`` from the crystals of ``splits`` (lookup data for the
    ``release`` variant); returns the number written."""
    from xtalagent.data import load_records

    records = [r for split in splits for r in load_records(dataset, split)]
    entries = NeighbourPrior.from_records(records).entries
    save_entries(
        Path(model_dir) / LOOKUP_FILE, entries, f"the {'+'.join(splits)} crystals (lookup only, never trained on)"
    )
    return len(entries)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m xtalagent.finetune.neighbour_prior DATASET.parquet MODEL_DIR")
    n = build_lookup(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{n} lookup crystals written to {Path(sys.argv[2]) / LOOKUP_FILE}")
