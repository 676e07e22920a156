"""Which ratio do an elements-only request's elements take? A classifier over known reduced ratios.

Why: an elements-only request (``Sc-Ni`` + a band gap) hides the stoichiometry, and the ratio
decides the space group more than anything else. Ratio requests (``ScNi3``) are ranked far better
than elements-only ones (MP val, stage-1 top-1: about 54 % against 30 %). So stage 1 of an
elements-only request also asks the ratio pipeline (language model, prior and composition
classifier, as for a ``composition`` request) about the few ratios this network finds most
likely, and lets the average of their answers vote (``ConstraintPredictor.ratio_bonus``).

The network reads the elements-only features of the group classifier (element properties and
the target properties; a hidden property is a flag) and picks among the reduced ratios seen at
least ``ClassifierSettings.ratio_min_count`` times in training, written with the elements in
Mendeleev-number order (``(1, 2)`` is TiO2, ScNi2 or any AB2 whose B has the larger number).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from xtalagent import config
from xtalagent.composition import reduced_counts
from xtalagent.errors import XtalAgentError
from xtalagent.finetune.examples import record_properties
from xtalagent.finetune.group_classifier import (
    LAYOUT,
    N_FEATURES,
    PROPERTY_MASKS,
    PatternClassifier,
    composition_features,
    element_descriptor,
    fit_ensemble,
    load_networks,
    save_networks,
    stored_layout_is,
)
from xtalagent.finetune.settings import ClassifierSettings
from xtalagent.records import CrystalRecord

RATIO_FILE = "ratio_classifier.pt"
RATIO_LAYOUT = f"{LAYOUT} ratio-v1"


def mendeleev_order(elements: Sequence[str]) -> list[str]:
    """The elements by Mendeleev number, the order in which the vocabulary writes ratios."""
    return sorted(elements, key=lambda el: element_descriptor(el)[0])


def ratio_key(counts: dict[str, int]) -> tuple[int, ...]:
    """The reduced ratio of a composition, its elements in Mendeleev-number order."""
    reduced, _ = reduced_counts(counts)
    return tuple(reduced[el] for el in mendeleev_order(list(counts)))


def has_repeated_ratio(records: Sequence[CrystalRecord], min_count: int = ClassifierSettings.ratio_min_count) -> bool:
    """Whether some ratio occurs ``min_count`` times, so the classifier has a vocabulary to learn."""
    seen = Counter(ratio_key(record.cell_counts) for record in records)
    return bool(seen) and max(seen.values()) >= min_count


class RatioClassifier:
    """p(reduced ratio | elements, target properties) over a vocabulary of known ratios."""

    def __init__(self, vocabulary: Sequence[tuple[int, ...]], model: PatternClassifier, hidden: int):
        self.vocabulary = [tuple(int(n) for n in ratio) for ratio in vocabulary]
        self.model, self.hidden = model, hidden
        self._lengths = np.array([len(ratio) for ratio in self.vocabulary])
        self._atoms = np.array([sum(ratio) for ratio in self.vocabulary])

    def ratios(
        self,
        elements: Sequence[str],
        band_gap: float | None = None,
        formation_energy: float | None = None,
        max_atoms: int = config.MAX_ATOMS_PER_CELL,
        k: int = 3,
    ) -> list[tuple[tuple[int, ...], float]]:
        """The ``k`` likeliest ratios, as counts in the order of ``elements``, with their probability
        renormalised over the ratios with as many elements and at most ``max_atoms`` atoms per
        formula unit; empty when the vocabulary has none (say, six elements). The predictor asks for
        its model folder's ``ratio_candidates`` (:class:`~xtalagent.finetune.voters.VoterWeights`)."""
        elements = list(elements)
        features = composition_features("elements", elements, None, band_gap, formation_energy)
        probs = np.exp(self.model.log_probs(features)[0])
        probs = np.where((self._lengths == len(elements)) & (self._atoms <= max_atoms), probs, 0.0)
        total = probs.sum()
        if total <= 0:
            return []
        order = mendeleev_order(elements)
        best = [i for i in np.argsort(-probs, kind="stable")[:k] if probs[i] > 0]
        out = []
        for i in best:
            by_element = dict(zip(order, self.vocabulary[i]))
            out.append((tuple(by_element[el] for el in elements), float(probs[i] / total)))
        return out

    def save(self, path: Path) -> None:
        vocabulary = [list(ratio) for ratio in self.vocabulary]
        save_networks(path, RATIO_LAYOUT, self.hidden, vocabulary=vocabulary, **self.model.state())

    @staticmethod
    def is_current(path: Path) -> bool:
        """Whether the file at ``path`` was made for this version's features (else: rebuild it)."""
        return stored_layout_is(path, RATIO_LAYOUT)

    @classmethod
    def load(cls, path: Path) -> RatioClassifier:
        data = load_networks(path, RATIO_LAYOUT, "ratio classifier")
        vocabulary = [tuple(ratio) for ratio in data["vocabulary"]]
        return cls(vocabulary, PatternClassifier.from_state(data, data["hidden"], len(vocabulary)), data["hidden"])


def load_ratio_classifier(model_dir: Path) -> RatioClassifier | None:
    """The ratio classifier stored beside a model's adapters, or None when the folder has none."""
    path = Path(model_dir) / RATIO_FILE
    return RatioClassifier.load(path) if path.exists() else None


def _examples(
    records: Sequence[CrystalRecord], index: dict[tuple[int, ...], int], copies: int, rng: random.Random | None
) -> tuple[np.ndarray, np.ndarray]:
    """Elements-only features and ratio labels of the records whose ratio is in the vocabulary;
    with ``rng``, ``copies`` per crystal with random properties hidden, else one with all shown."""
    rows, labels = [], []
    for record in records:
        label = index.get(ratio_key(record.cell_counts))
        if label is None:
            continue
        band_gap, formation_energy = record_properties(record)
        for _ in range(copies if rng else 1):
            mask = rng.choice(PROPERTY_MASKS) if rng else "both"
            rows.append(
                composition_features(
                    "elements",
                    list(record.cell_counts),
                    None,
                    band_gap if mask in ("band_gap", "both") else None,
                    formation_energy if mask in ("formation_energy", "both") else None,
                )
            )
            labels.append(label)
    return np.array(rows, dtype=np.float64).reshape(-1, N_FEATURES), np.array(labels, dtype=np.int64)


def train_ratio_classifier(
    records: Sequence[CrystalRecord],
    members: int = ClassifierSettings.members,
    epochs: int = ClassifierSettings.epochs,
    hidden: int = ClassifierSettings.hidden,
    dropout: float = ClassifierSettings.dropout,
    min_count: int = ClassifierSettings.ratio_min_count,
    copies: int = 4,
    seed: int = 0,
    val: Sequence[CrystalRecord] = (),
    log: Callable[[str], None] = print,
) -> RatioClassifier:
    """Train on ``records`` (the ``train`` split) with the group classifier's recipe; ``val`` only
    reports. Seeded, and without touching the caller's random state."""
    if epochs < 1 or members < 1 or copies < 1 or min_count < 1:
        raise XtalAgentError(
            "ratio classifier epochs, members, copies and min_count must be at least 1 "
            f"(got {epochs}, {members}, {copies}, {min_count})"
        )
    if not 0.0 <= dropout < 1.0:
        raise XtalAgentError(f"classifier dropout must be in [0, 1) (got {dropout})")
    seen = Counter(ratio_key(record.cell_counts) for record in records)
    vocabulary = [ratio for ratio, n in seen.items() if n >= min_count]
    if not vocabulary:
        raise XtalAgentError(f"no ratio occurs {min_count} times among {len(records)} training crystals")
    index = {ratio: i for i, ratio in enumerate(vocabulary)}
    x, y = _examples(records, index, copies, random.Random(seed))
    val_xy = _examples(val, index, 1, None) if val else None
    name = f"ratio classifier ({len(vocabulary)} ratios)"
    model = fit_ensemble(x, y, val_xy, len(vocabulary), members, epochs, hidden, dropout, seed, name, log)
    return RatioClassifier(vocabulary, model, hidden)
