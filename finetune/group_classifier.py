"""A composition classifier that votes for stage 1's space group beside the language model.

Why a third voter: the compact language model knows elements only as tokens it has seen in 18k
training crystals, and the neighbour prior only as Mendeleev numbers. A small network on tabulated
element properties (Mendeleev number, atomic number, electronegativity, atomic and ionic radius,
row, group, block, mass) of the request's elements, weighed by their fractions, generalises across
chemically similar elements in a way neither does. Alone it ranks MP val groups about as well as
the language model does with the prior; added to both it lifts them further (figures in
``finetune/checkpoints/default/README.md``).

One network per request pattern (what a pattern shows differs: cell counts, the reduced ratio, or
the elements only), each an ensemble of a few members whose probabilities are averaged. Requests
may state a band gap, a formation energy, both or neither: training shows every crystal several
times with the properties randomly hidden, and a hidden property is an input flag, not a guess.
Like the prior, the classifier only reorders groups that passed the validity mask.
"""

from __future__ import annotations

import functools
import math
import random
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Element
from xtalagent import config
from xtalagent.errors import XtalAgentError
from xtalagent.io import atomic_path
from xtalagent.records import CrystalRecord

CLASSIFIER_FILE = "group_classifier.pt"
PATTERNS = ("formula", "composition", "elements")
N_GROUPS = 230
SLOTS = 3  # elements described one by one (by fraction, then Mendeleev number); the rest only in aggregate
_PROPERTY_MASKS = ("band_gap", "formation_energy", "both", "none")


@functools.cache
def element_descriptor(symbol: str) -> np.ndarray:
    """Tabulated properties of one element (NaN where pymatgen has none, e.g. noble-gas electronegativity)."""

    def number(value) -> float:
        try:
            value = float(value)
        except (TypeError, ValueError):
            return math.nan
        return value

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        el = Element(symbol)
        mendeleev = el.mendeleev_no if el.mendeleev_no is not None else 200 + el.Z
        return np.array(
            [
                mendeleev,
                el.Z,
                number(el.X),
                number(el.atomic_radius),
                number(el.average_ionic_radius),
                el.row,
                el.group,
                "spdf".index(el.block) if el.block in "spdf" else 4,
                number(el.atomic_mass),
            ],
            dtype=np.float64,
        )


N_DESCRIPTORS = len(element_descriptor("O"))
N_FEATURES = 5 + 5 + 4 * N_DESCRIPTORS + SLOTS * (N_DESCRIPTORS + 1)


def composition_features(
    pattern: str,
    elements: Sequence[str],
    counts: Sequence[int] | None,
    band_gap: float | None = None,
    formation_energy: float | None = None,
) -> np.ndarray:
    """The classifier's input for a request as its pattern shows it; NaN marks what is not shown.

    Layout: number of elements, atoms in the cell (formula only), atoms in the reduced formula,
    band gap, formation energy; the five largest fractions; the fraction-weighted mean, the min,
    max and spread of each element property; then the first ``SLOTS`` elements one by one.
    """
    elements = list(elements)
    table = np.stack([element_descriptor(el) for el in elements])
    if pattern == "elements" or counts is None:
        weights = np.full(len(elements), 1.0 / len(elements))
        cell_atoms = reduced_atoms = math.nan
        fractions = [math.nan] * 5
        order = np.argsort(table[:, 0], kind="stable")
    else:
        shown = np.array(counts, dtype=np.float64)
        reduced_atoms = shown.sum() / math.gcd(*(int(c) for c in counts))
        cell_atoms = shown.sum() if pattern == "formula" else math.nan
        weights = shown / shown.sum()
        fractions = (sorted(weights.tolist(), reverse=True) + [0.0] * 5)[:5]
        order = np.lexsort((table[:, 0], -weights))
    mean = weights @ table
    spread = np.sqrt(np.maximum(weights @ (table - mean) ** 2, 0.0))
    slots: list[float] = []
    for i in range(SLOTS):
        if i < len(order):
            slots.extend([*table[order[i]].tolist(), float(weights[order[i]])])
        else:
            slots.extend([math.nan] * (N_DESCRIPTORS + 1))
    head = [
        len(elements),
        cell_atoms,
        reduced_atoms,
        math.nan if band_gap is None else band_gap,
        math.nan if formation_energy is None else formation_energy,
    ]
    return np.concatenate([head, fractions, mean, table.min(0), table.max(0), spread, slots])


def _network(hidden: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Linear(2 * N_FEATURES, hidden),
        torch.nn.GELU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(hidden, hidden),
        torch.nn.GELU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(hidden, N_GROUPS),
    )


class PatternClassifier:
    """The ensemble for one request pattern: input normalisation and member networks."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, members: list[torch.nn.Sequential]):
        self.mean, self.std, self.members = mean, std, members
        for net in members:
            net.eval()

    def inputs(self, features: np.ndarray) -> torch.Tensor:
        """Normalised features beside their missing-value flags (a missing value reads 0)."""
        features = np.atleast_2d(features)
        missing = np.isnan(features)
        normalised = np.where(missing, 0.0, (features - self.mean) / self.std)
        return torch.tensor(np.concatenate([normalised, missing], axis=1), dtype=torch.float32)

    @torch.no_grad()
    def log_probs(self, features: np.ndarray) -> np.ndarray:
        """log p(group) for groups 1..230 (index g - 1), members' probabilities averaged."""
        x = self.inputs(features)
        probs = torch.stack([torch.softmax(net(x).float(), dim=-1) for net in self.members]).mean(0)
        return torch.log(probs.clamp_min(1e-12)).numpy()


class GroupClassifier:
    """Stage-1 votes of the composition classifier, per request pattern."""

    def __init__(self, patterns: dict[str, PatternClassifier], hidden: int):
        self.patterns, self.hidden = patterns, hidden

    def log_probs(
        self,
        pattern: str,
        elements: Sequence[str],
        counts: Sequence[int] | None,
        band_gap: float | None = None,
        formation_energy: float | None = None,
    ) -> np.ndarray | None:
        """log p(group) over 1..230, or None when no network covers this pattern."""
        model = self.patterns.get(pattern)
        if model is None:
            return None
        return model.log_probs(composition_features(pattern, elements, counts, band_gap, formation_energy))[0]

    def bonus(
        self,
        pattern: str,
        elements: Sequence[str],
        counts: Sequence[int] | None,
        groups: Iterable[int],
        band_gap: float | None = None,
        formation_energy: float | None = None,
        weight: float | None = None,
    ) -> dict[int, float]:
        """``weight * log p(group)`` per group (``config.CONSTRAINT_CLASSIFIER_WEIGHT`` by default)."""
        groups = list(groups)
        weight = config.CONSTRAINT_CLASSIFIER_WEIGHT.get(pattern, 0.0) if weight is None else weight
        logp = self.log_probs(pattern, elements, counts, band_gap, formation_energy) if weight else None
        if logp is None:
            return dict.fromkeys(groups, 0.0)
        return {g: weight * float(logp[g - 1]) for g in groups}

    def save(self, path: Path) -> None:
        data = {
            "version": 1,
            "n_features": N_FEATURES,
            "hidden": self.hidden,
            "patterns": {
                name: {
                    "mean": torch.tensor(model.mean),
                    "std": torch.tensor(model.std),
                    # half precision halves the shipped file; the averaged probabilities do not notice
                    "members": [{k: v.half() for k, v in net.state_dict().items()} for net in model.members],
                }
                for name, model in self.patterns.items()
            },
        }
        with atomic_path(Path(path)) as tmp:
            torch.save(data, tmp)

    @classmethod
    def load(cls, path: Path) -> GroupClassifier:
        data = torch.load(Path(path), map_location="cpu", weights_only=True)
        if data.get("n_features") != N_FEATURES:
            raise XtalAgentError(f"{path}: made for {data.get('n_features')} features, this version uses {N_FEATURES}")
        patterns = {}
        for name, stored in data["patterns"].items():
            members = []
            for state in stored["members"]:
                net = _network(data["hidden"])
                net.load_state_dict({k: v.float() for k, v in state.items()})
                members.append(net)
            patterns[name] = PatternClassifier(stored["mean"].numpy(), stored["std"].numpy(), members)
        return cls(patterns, data["hidden"])


def load_classifier(model_dir: Path) -> GroupClassifier | None:
    """The classifier stored beside a model's adapters, or None when the folder has none."""
    path = Path(model_dir) / CLASSIFIER_FILE
    return GroupClassifier.load(path) if path.exists() else None


def _examples(
    records: Iterable[CrystalRecord], pattern: str, copies: int, rng: random.Random | None
) -> tuple[np.ndarray, np.ndarray]:
    """Features and group labels; with ``rng``, ``copies`` per crystal with random properties hidden,
    otherwise one per crystal with every known property shown."""
    rows, labels = [], []
    for record in records:
        cell = record.cell_counts
        elements = list(cell)
        band_gap = record.properties.get("band_gap")
        formation_energy = record.properties.get("formation_energy_per_atom")
        for _ in range(copies if rng else 1):
            mask = rng.choice(_PROPERTY_MASKS) if rng else "both"
            rows.append(
                composition_features(
                    pattern,
                    elements,
                    [cell[el] for el in elements],
                    band_gap if mask in ("band_gap", "both") else None,
                    formation_energy if mask in ("formation_energy", "both") else None,
                )
            )
            labels.append(record.spacegroup - 1)
    return np.array(rows, dtype=np.float64), np.array(labels)


def train_pattern(
    records: Sequence[CrystalRecord],
    pattern: str,
    members: int = config.CONSTRAINT_CLASSIFIER_MEMBERS,
    epochs: int = config.CONSTRAINT_CLASSIFIER_EPOCHS,
    hidden: int = config.CONSTRAINT_CLASSIFIER_HIDDEN,
    copies: int = 4,
    seed: int = 0,
    val: Sequence[CrystalRecord] = (),
    log: Callable[[str], None] = print,
) -> PatternClassifier:
    """Train one pattern's ensemble on ``records`` (the ``train`` split); ``val`` only reports."""
    if not records:
        raise XtalAgentError("the group classifier needs training crystals")
    x, y = _examples(records, pattern, copies, random.Random(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (e.g. cell atoms for ratios)
        mean = np.nan_to_num(np.nanmean(x, axis=0))
        std = np.nan_to_num(np.nanstd(x, axis=0)) + 1e-6
    model = PatternClassifier(mean, std, [])
    inputs, labels = model.inputs(x), torch.tensor(y)
    val_x, val_y = _examples(val, pattern, 1, None) if val else (None, None)
    batch = 256
    for member in range(members):
        torch.manual_seed(seed * 1000 + member)
        net = _network(hidden)
        optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
        steps = epochs * math.ceil(len(inputs) / batch)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 2e-3, total_steps=steps)
        for epoch in range(epochs):
            net.train()
            order = torch.randperm(len(inputs))
            total = 0.0
            for start in range(0, len(inputs), batch):
                index = order[start : start + batch]
                loss = torch.nn.functional.cross_entropy(net(inputs[index]), labels[index], label_smoothing=0.05)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss.detach()) * len(index)
            line = f"classifier {pattern} member {member + 1}/{members} epoch {epoch + 1}/{epochs}"
            line += f" loss {total / len(inputs):.3f}"
            if val_x is not None:
                net.eval()
                with torch.no_grad():
                    right = (net(model.inputs(val_x)).argmax(1).numpy() == val_y).mean()
                line += f" val top-1 {right:.3f}"
            log(line)
        net.eval()
        model.members.append(net)
    return model


def train_group_classifier(
    records: Sequence[CrystalRecord],
    patterns: Iterable[str] = PATTERNS,
    val: Sequence[CrystalRecord] = (),
    log: Callable[[str], None] = print,
    **kwargs,
) -> GroupClassifier:
    """One ensemble per request pattern (settings in ``config.CONSTRAINT_CLASSIFIER_*``)."""
    hidden = kwargs.get("hidden", config.CONSTRAINT_CLASSIFIER_HIDDEN)
    return GroupClassifier(
        {pattern: train_pattern(records, pattern, val=val, log=log, **kwargs) for pattern in patterns}, hidden
    )
