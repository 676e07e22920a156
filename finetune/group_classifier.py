"""A composition classifier that votes for stage 1's space group beside the language model.

Why a third voter: the compact language model knows elements only as tokens it has seen in 18k
training crystals, and the neighbour prior only as Mendeleev numbers. A small network on tabulated
element properties (Mendeleev number, atomic number, electronegativity, atomic and ionic radius,
row, group, block, mass) of the request's elements, weighed by their fractions, generalises across
chemically similar elements in a way neither does. Alone it ranks MP val groups better than the
language model, a few points below the language model with the prior; added to both it lifts
them further (figures in ``finetune/checkpoints/default/README.md``).

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
from typing import TYPE_CHECKING

import numpy as np
from pymatgen.core import Element

from xtalagent.composition import reduced_counts
from xtalagent.errors import XtalAgentError
from xtalagent.finetune.examples import record_properties
from xtalagent.finetune.settings import ClassifierSettings
from xtalagent.io import atomic_path
from xtalagent.records import CrystalRecord

if TYPE_CHECKING:  # torch loads only when a classifier is trained or used (endpoint users may lack it)
    import torch

CLASSIFIER_FILE = "group_classifier.pt"
PATTERNS = ("formula", "composition", "elements")
N_GROUPS = 230
SLOTS = 3  # elements described one by one (by fraction, then Mendeleev number); the rest only in aggregate
COUNT_SLOTS = 6  # the shown counts, largest first
DESCRIPTORS = ("mendeleev", "Z", "X", "atomic_radius", "ionic_radius", "row", "group", "block", "mass")
#: What the stored networks were trained on; a file made for another layout is rebuilt, not misread.
LAYOUT = f"v2 descriptors={','.join(DESCRIPTORS)} slots={SLOTS} counts={COUNT_SLOTS}"
PROPERTY_MASKS = ("band_gap", "formation_energy", "both", "none")


@functools.cache
def element_descriptor(symbol: str) -> np.ndarray:
    """Tabulated properties of one element (NaN where pymatgen has none, e.g. noble-gas
    electronegativity; pymatgen's 0 for a radius it does not know, as for H's ionic radius)."""

    def number(value, positive: bool = False) -> float:
        try:
            value = float(value)
        except (TypeError, ValueError):
            return math.nan
        return math.nan if positive and not value > 0 else value

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        el = Element(symbol)
        mendeleev = el.mendeleev_no if el.mendeleev_no is not None else 200 + el.Z
        return np.array(
            [
                mendeleev,
                el.Z,
                number(el.X),
                number(el.atomic_radius, positive=True),
                number(el.average_ionic_radius, positive=True),
                el.row,
                el.group,
                "spdf".index(el.block) if el.block in "spdf" else 4,
                number(el.atomic_mass),
            ],
            dtype=np.float64,
        )


N_DESCRIPTORS = len(DESCRIPTORS)
N_FEATURES = 5 + 5 + COUNT_SLOTS + 2 + 4 * N_DESCRIPTORS + SLOTS * (N_DESCRIPTORS + 1)


def weighted_stats(table: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mean, min, max and spread of each property over the elements that have it (weights
    renormalised), so one element without a value does not blank the property for the request."""
    known = ~np.isnan(table)
    w = np.where(known, weights[:, None], 0.0)
    total = w.sum(0)
    values = np.where(known, table, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (w * values).sum(0) / total
        spread = np.sqrt(np.maximum((w * (values - mean) ** 2).sum(0) / total, 0.0))
    low = np.where(known, table, np.inf).min(0)
    high = np.where(known, table, -np.inf).max(0)
    none = total == 0
    for column in (mean, spread, low, high):
        column[none] = math.nan
    return mean, low, high, spread


def composition_features(
    pattern: str,
    elements: Sequence[str],
    counts: Sequence[int] | None,
    band_gap: float | None = None,
    formation_energy: float | None = None,
) -> np.ndarray:
    """The classifier's input for a request as its pattern shows it; NaN marks what is not shown.

    Layout: number of elements, atoms in the cell (formula only), atoms in the reduced formula,
    band gap, formation energy; the five largest fractions; the shown counts (cell or ratio),
    largest first, their greatest common divisor and the smallest (which multiplicities can
    host it); the fraction-weighted mean, the min, max and spread of each element property; then
    the first ``SLOTS`` elements one by one.
    """
    elements = list(elements)
    table = np.stack([element_descriptor(el) for el in elements])
    if pattern == "elements" or counts is None:
        weights = np.full(len(elements), 1.0 / len(elements))
        cell_atoms = reduced_atoms = math.nan
        fractions = [math.nan] * 5
        count_features = [math.nan] * (COUNT_SLOTS + 2)
        order = np.argsort(table[:, 0], kind="stable")
    else:
        _, divisor = reduced_counts(dict(zip(elements, counts)))
        shown = np.array(counts, dtype=np.float64) / (divisor if pattern == "composition" else 1)
        reduced_atoms = shown.sum() / (1 if pattern == "composition" else divisor)
        cell_atoms = shown.sum() if pattern == "formula" else math.nan
        weights = shown / shown.sum()
        fractions = (sorted(weights.tolist(), reverse=True) + [0.0] * 5)[:5]
        largest = sorted(shown.tolist(), reverse=True)
        count_features = [
            *(largest + [0.0] * COUNT_SLOTS)[:COUNT_SLOTS],
            divisor if pattern == "formula" else 1,
            largest[-1],
        ]
        order = np.lexsort((table[:, 0], -weights))
    mean, low, high, spread = weighted_stats(table, weights)
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
    return np.concatenate([head, fractions, count_features, mean, low, high, spread, slots])


def make_network(
    hidden: int, dropout: float = ClassifierSettings.dropout, outputs: int = N_GROUPS
) -> torch.nn.Sequential:
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(2 * N_FEATURES, hidden),
        torch.nn.GELU(),
        torch.nn.Dropout(dropout),
        torch.nn.Linear(hidden, hidden),
        torch.nn.GELU(),
        torch.nn.Dropout(dropout),
        torch.nn.Linear(hidden, outputs),
    )


class PatternClassifier:
    """The ensemble for one request pattern: input normalisation and member networks."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, members: list[torch.nn.Sequential]):
        # a column (nearly) constant in training says nothing; dividing by its tiny spread would
        # turn any other value at request time into a huge input
        self.mean, self.std, self.members = mean, np.where(std < 1e-3, 1.0, std), members
        for net in members:
            net.eval()

    def inputs(self, features: np.ndarray) -> torch.Tensor:
        """Normalised features (clipped to +-10 spreads) beside their missing-value flags (a missing
        value reads 0)."""
        import torch

        features = np.atleast_2d(features)
        missing = np.isnan(features)
        normalised = np.clip(np.where(missing, 0.0, (features - self.mean) / self.std), -10.0, 10.0)
        return torch.tensor(np.concatenate([normalised, missing], axis=1), dtype=torch.float32)

    def state(self) -> dict:
        """What a file stores of the ensemble; half precision halves the shipped file, and the
        averaged probabilities do not notice."""
        import torch

        return {
            "mean": torch.tensor(self.mean),
            "std": torch.tensor(self.std),
            "members": [{k: v.half() for k, v in net.state_dict().items()} for net in self.members],
        }

    @classmethod
    def from_state(cls, stored: dict, hidden: int, outputs: int = N_GROUPS) -> PatternClassifier:
        members = []
        for state in stored["members"]:
            net = make_network(hidden, outputs=outputs)
            net.load_state_dict({k: v.float() for k, v in state.items()})
            members.append(net)
        return cls(stored["mean"].numpy(), stored["std"].numpy(), members)

    def log_probs(self, features: np.ndarray) -> np.ndarray:
        """log p(class) per row, members' probabilities averaged (for groups 1..230: index g - 1)."""
        import torch

        with torch.no_grad():
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
        weight: float = 1.0,
    ) -> dict[int, float]:
        """``weight * log p(group)`` per group; the predictor passes its model folder's weight for the
        pattern (:class:`~xtalagent.finetune.voters.VoterWeights`)."""
        groups = list(groups)
        logp = self.log_probs(pattern, elements, counts, band_gap, formation_energy) if weight else None
        if logp is None:
            return dict.fromkeys(groups, 0.0)
        return {g: weight * float(logp[g - 1]) for g in groups}

    def save(self, path: Path) -> None:
        patterns = {name: model.state() for name, model in self.patterns.items()}
        save_networks(path, LAYOUT, self.hidden, patterns=patterns)

    @staticmethod
    def is_current(path: Path) -> bool:
        """Whether the file at ``path`` was made for this version's features (else: rebuild it)."""
        return stored_layout_is(path, LAYOUT)

    @classmethod
    def load(cls, path: Path) -> GroupClassifier:
        data = load_networks(path, LAYOUT, "composition classifier")
        patterns = {
            name: PatternClassifier.from_state(stored, data["hidden"]) for name, stored in data["patterns"].items()
        }
        return cls(patterns, data["hidden"])


def save_networks(path: Path, layout: str, hidden: int, **content) -> None:
    """Write a classifier file (atomically) under its layout, so a later version can tell it apart."""
    import torch

    data = {"layout": layout, "n_features": N_FEATURES, "hidden": hidden, **content}
    with atomic_path(Path(path)) as tmp:
        torch.save(data, tmp)


def load_networks(path: Path, layout: str, what: str) -> dict:
    """A classifier file's content; one stored for another layout is a clear error naming the fix."""
    import torch

    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    if data.get("layout") != layout or data.get("n_features") != N_FEATURES:
        raise XtalAgentError(
            f"{path}: a {what} for other input features ({data.get('layout', 'v1')}); "
            f"rebuild it with 'xtalagent finetune DATASET -o {Path(path).parent}' (trains only what is "
            "missing or out of date), or pass --no-prior"
        )
    return data


def stored_layout_is(path: Path, layout: str) -> bool:
    """Whether the network file at ``path`` was stored for ``layout`` and this version's features;
    an unreadable or truncated file is not (it is rebuilt)."""
    import torch

    try:
        data = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception:
        return False
    return isinstance(data, dict) and data.get("layout") == layout and data.get("n_features") == N_FEATURES


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
        band_gap, formation_energy = record_properties(record)  # the keys and rules the prior reads
        for _ in range(copies if rng else 1):
            mask = rng.choice(PROPERTY_MASKS) if rng else "both"
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
    members: int = ClassifierSettings.members,
    epochs: int = ClassifierSettings.epochs,
    hidden: int = ClassifierSettings.hidden,
    dropout: float = ClassifierSettings.dropout,
    copies: int = 4,
    seed: int = 0,
    val: Sequence[CrystalRecord] = (),
    log: Callable[[str], None] = print,
) -> PatternClassifier:
    """Train one pattern's ensemble on ``records`` (the ``train`` split); ``val`` only reports.

    Seeded, and without touching the caller's random state."""

    if not records:
        raise XtalAgentError("the group classifier needs training crystals")
    if epochs < 1 or members < 1 or copies < 1:
        raise XtalAgentError(
            f"classifier epochs, members and copies must be at least 1 (got {epochs}, {members}, {copies})"
        )
    if not 0.0 <= dropout < 1.0:
        raise XtalAgentError(f"classifier dropout must be in [0, 1) (got {dropout})")
    x, y = _examples(records, pattern, copies, random.Random(seed))
    val_xy = _examples(val, pattern, 1, None) if val else None
    return fit_ensemble(x, y, val_xy, N_GROUPS, members, epochs, hidden, dropout, seed, f"classifier {pattern}", log)


def fit_ensemble(
    x: np.ndarray,
    y: np.ndarray,
    val_xy: tuple[np.ndarray, np.ndarray] | None,
    outputs: int,
    members: int,
    epochs: int,
    hidden: int,
    dropout: float,
    seed: int,
    name: str,
    log: Callable[[str], None],
) -> PatternClassifier:
    """Normalise the features, then train ``members`` networks (seeds ``seed * 1000 + member``, the
    caller's random state untouched) to ``outputs`` classes; ``val_xy`` only reports."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (e.g. cell atoms for ratios)
        mean = np.nan_to_num(np.nanmean(x, axis=0))
        std = np.nan_to_num(np.nanstd(x, axis=0))
    model = PatternClassifier(mean, std, [])
    inputs, labels = model.inputs(x), torch.tensor(y)

    def val_top1(net) -> float | None:
        if val_xy is None or not len(val_xy[0]):
            return None
        with torch.no_grad():
            return float((net(model.inputs(val_xy[0])).argmax(1).numpy() == val_xy[1]).mean())

    for member in range(members):
        with torch.random.fork_rng():
            torch.manual_seed(seed * 1000 + member)
            prefix = f"{name} member {member + 1}/{members}"
            model.members.append(
                train_member(inputs, labels, hidden, dropout, epochs, val_top1, prefix, log, outputs=outputs)
            )
    return model


def train_member(
    inputs: torch.Tensor,
    labels: torch.Tensor,
    hidden: int,
    dropout: float,
    epochs: int,
    val_top1: Callable[[torch.nn.Module], float | None],
    prefix: str,
    log: Callable[[str], None],
    batch: int = 256,
    outputs: int = N_GROUPS,
) -> torch.nn.Sequential:
    """One member network: AdamW with a one-cycle schedule and label smoothing; a line per epoch."""
    import torch

    net = make_network(hidden, dropout, outputs)
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
        net.eval()
        right = val_top1(net)
        log(
            f"{prefix} epoch {epoch + 1}/{epochs} loss {total / len(inputs):.3f}"
            + (f" val top-1 {right:.3f}" if right is not None else "")
        )
    return net


def train_group_classifier(
    records: Sequence[CrystalRecord],
    patterns: Iterable[str] = PATTERNS,
    val: Sequence[CrystalRecord] = (),
    log: Callable[[str], None] = print,
    **kwargs,
) -> GroupClassifier:
    """One ensemble per request pattern (defaults: :class:`~xtalagent.finetune.settings.ClassifierSettings`)."""
    hidden = kwargs.get("hidden", ClassifierSettings.hidden)
    return GroupClassifier(
        {pattern: train_pattern(records, pattern, val=val, log=log, **kwargs) for pattern in patterns}, hidden
    )
