"""PBE band gap of any crystal, with an uncertainty: CHGNet crystal features + composition into an MLP ensemble.

How (measured; figures in ``checkpoints/band_gap/model.json`` and ``bench/results/band_gap.json``):

* **Features.** One CHGNet forward pass (energy and magnetic moments, no forces) of the structure
  as given: the mean of its last-layer atom features (CHGNet's own ``crystal_fea``), the mean and
  max of the atom features before the last layer, the energy per atom and the mean / max predicted
  magnetic moment. That is the same model the screening stage relaxes with, so inside the
  pipeline the features cost one extra forward pass. Then the volume per atom, density and cell
  size, and the composition: element fractions and fraction-weighted statistics of tabulated
  element properties (:func:`xtalagent.finetune.group_classifier.element_descriptor` plus
  ionisation energy, electron affinity and valence-shell counts).
* **Composition prior.** A composition-only network trained on Matbench ``mp_gap`` (106k MP
  entries, composition only) with every reduced formula of the MP ``test`` split removed. Its
  five fold models give each training crystal an out-of-fold prior (a formula never sees its own
  gap); at prediction time all five are averaged. The prior's (P(non-metal), gap) enter the
  crystal network as two more inputs.
* **Head.** An ensemble of small MLPs, each with a non-metal classifier and a gap regressor
  (softplus, trained on non-metals only). A member predicts the regressor's gap where P(non-metal)
  > 0.5 and 0 otherwise; ``band_gap`` is the members' mean, ``band_gap_std`` their spread times a
  factor fitted on ``val`` so that about 90 % of val errors fall within 2 std.

Why this and not a dedicated graph network: the CHGNet features are already computed by the
potential the pipeline relaxes with, they cost ~23 ms per structure on one CPU thread (batched,
prior and head included), and the whole model trains in ~14 min on 2 shared cores. On ``val``
(833 crystals, test formulas removed) CHGNet features + composition reach 0.206 eV MAE against
0.269 eV for composition alone; hurdle vs direct regression and with / without the Matbench
prior differ by <= 0.003 eV (``bench/results/band_gap_variants_val.json``). On a seeded 500 of
MP ``test`` (as given): MAE 0.199 eV, metal / non-metal accuracy 93.6 %, 91.6 % of errors within
2 std (``bench/results/band_gap.json``).

Known miss: rutile / anatase TiO2 come out metallic with a large spread (~2.5 eV): every TiO2
crystal is in MP ``test``, so that formula is kept out of training, and the only Ti-O binaries
seen are metallic Ti-rich suboxides.

Two variants ship (issue #20 item 3), chosen with ``default_band_gap_model(variant=...)``:

* ``eval`` — ``checkpoints/band_gap/``: head on MP ``train`` only, test formulas removed everywhere.
  The library default and the only one any benchmark measures; the figures above are its own.
* ``release`` — ``checkpoints/band_gap_release/``: the same recipe on every split (MP ``train`` +
  ``val`` + ``test``, the whole Matbench table), so it knows TiO2. What users get (``design``,
  ``chat``). It has no held-out data: its std scale factor is the eval model's, and its
  ``metrics`` are the eval model's measured test figures, labelled ``measured_on``. Never use it
  for a reported test figure.

Rebuild commands: see each folder's README.md.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from pymatgen.core import Composition, Element, Structure

from xtalagent.errors import InputError

logger = logging.getLogger(__name__)

#: The eval variant (head trained on MP ``train`` only, test formulas removed): the library default.
DEFAULT_DIR: Path = Path(__file__).resolve().parent / "checkpoints" / "band_gap"
#: The release variant (every split, nothing removed): what users get; never for a reported test figure.
RELEASE_DIR: Path = Path(__file__).resolve().parent / "checkpoints" / "band_gap_release"
WEIGHTS_FILE = "model.pt"
META_FILE = "model.json"
#: A crystal is called a metal when its gap is below this (eV), for labels and predictions alike.
METAL_GAP: float = 0.1
#: Feature layout version; a checkpoint made for another layout is refused, not misread.
LAYOUT = "v1 chgnet=mean64+pmean64+pmax64+e+m2 struct=3 comp=z94+desc16x4+n"
MAX_Z = 94
CHGNET_BATCH = 32


# --- features -------------------------------------------------------------------------------------
@functools.cache
def element_properties(symbol: str) -> np.ndarray:
    """The group classifier's element descriptor plus ionisation energy, electron affinity and valence
    electrons by shell (s, p, d, f) and the number of unfilled valence states (Magpie's counting)."""
    from xtalagent.finetune.group_classifier import element_descriptor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        el = Element(symbol)

        def number(get) -> float:
            try:
                value = float(get())
            except Exception:
                return math.nan
            return value if math.isfinite(value) else math.nan

        shells = {"s": 0.0, "p": 0.0, "d": 0.0, "f": 0.0}
        unfilled = math.nan
        try:  # valence shells as Magpie counts them: ns, np, (n-1)d, (n-2)f of the outermost n
            config_ = {(n, orbital): count for n, orbital, count in el.full_electronic_structure}
            top = max(n for n, _ in config_)
            capacity = {"s": 2, "p": 6, "d": 10, "f": 14}
            for orbital, n in (("s", top), ("p", top), ("d", top - 1), ("f", top - 2)):
                shells[orbital] = float(config_.get((n, orbital), 0))
            unfilled = sum(capacity[o] - c for o, c in shells.items() if c > 0)
        except Exception:
            pass
        extra = [
            number(lambda: el.ionization_energies[0]),
            number(lambda: el.electron_affinity),
            shells["s"],
            shells["p"],
            shells["d"],
            shells["f"],
            unfilled,
        ]
    return np.concatenate([element_descriptor(symbol), extra]).astype(np.float64)


N_ELEMENT_PROPS = 16
N_COMPOSITION = MAX_Z + 4 * N_ELEMENT_PROPS + 1


def composition_features(composition: Composition | str) -> np.ndarray:
    """Element fractions (Z 1..94), fraction-weighted mean / min / max / spread of
    :func:`element_properties` (over the elements that have a value), number of elements."""
    comp = Composition(composition).fractional_composition
    out = np.full(N_COMPOSITION, math.nan)
    out[:MAX_Z] = 0.0
    symbols = [el.symbol for el in comp.elements]
    weights = np.array([comp[s] for s in symbols], dtype=np.float64)
    for s, w in zip(symbols, weights):
        z = Element(s).Z
        if z <= MAX_Z:
            out[z - 1] = w
    from xtalagent.finetune.group_classifier import weighted_stats

    mean, low, high, spread = weighted_stats(np.stack([element_properties(s) for s in symbols]), weights)
    stats = np.concatenate([mean, low, high, spread])
    stats[~np.isfinite(stats)] = math.nan
    out[MAX_Z : MAX_Z + 4 * N_ELEMENT_PROPS] = stats
    out[-1] = len(symbols)
    return out


N_CHGNET = 64 * 3 + 3
N_STRUCT = 3


def structure_features(structure: Structure) -> np.ndarray:
    """Volume per atom (Å^3), density (g/cm^3), log of the number of sites."""
    n = len(structure)
    return np.array([structure.volume / n, float(structure.density), math.log(n)])


def load_chgnet(chgnet: Any = None) -> Any:
    """The given CHGNet model, or the default checkpoint (ships inside the chgnet wheel; never downloaded)."""
    if chgnet is not None:
        return getattr(chgnet, "model", chgnet)  # a CHGNetPotential or the model itself
    from chgnet.model import CHGNet

    from xtalagent.tools.potentials import CHGNET_MODEL

    return CHGNet.load(model_name=CHGNET_MODEL, use_device="cpu", verbose=False)


def chgnet_features(
    structures: Sequence[Structure], chgnet: Any, batch_size: int = CHGNET_BATCH
) -> tuple[np.ndarray, list[str | None]]:
    """CHGNet features of each structure (see the module docstring) and, per structure, why it failed
    (None when it did not; its row is NaN)."""
    model = load_chgnet(chgnet)
    feats = np.full((len(structures), N_CHGNET), math.nan, dtype=np.float64)
    errors: list[str | None] = [None] * len(structures)
    graphs, where = [], []
    for i, s in enumerate(structures):
        try:
            graphs.append(model.graph_converter(s))
            where.append(i)
        except Exception as exc:
            errors[i] = f"CHGNet graph failed: {type(exc).__name__}: {exc}"

    def run(chunk: list) -> np.ndarray:
        with torch.no_grad():
            pred = model(chunk, task="em", return_atom_feas=True, return_crystal_feas=True)
        rows = []
        for k in range(len(chunk)):
            atom = pred["atom_fea"][k]
            mag = pred["m"][k]
            rows.append(
                torch.cat(
                    [
                        pred["crystal_fea"][k],
                        atom.mean(0),
                        atom.max(0).values,
                        torch.stack([pred["e"][k], mag.mean(), mag.max()]),
                    ]
                ).numpy()
            )
        return np.stack(rows)

    model.eval()
    for start in range(0, len(graphs), batch_size):
        chunk, idx = graphs[start : start + batch_size], where[start : start + batch_size]
        try:
            feats[idx] = run(chunk)
        except Exception:  # one bad graph poisons a batch: retry one by one
            for g, i in zip(chunk, idx):
                try:
                    feats[i] = run([g])[0]
                except Exception as exc:
                    errors[i] = f"CHGNet failed: {type(exc).__name__}: {exc}"
    return feats, errors


# --- networks -------------------------------------------------------------------------------------
class GapNet(torch.nn.Module):
    """MLP trunk with two heads: logit of P(non-metal) and the gap (softplus) of a non-metal."""

    def __init__(self, inputs: int, hidden: int = 256, layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        blocks: list[torch.nn.Module] = []
        width = inputs
        for _ in range(layers):
            blocks += [torch.nn.Linear(width, hidden), torch.nn.SiLU(), torch.nn.Dropout(dropout)]
            width = hidden
        self.trunk = torch.nn.Sequential(*blocks)
        self.head = torch.nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.trunk(x))
        return out[:, 0], torch.nn.functional.softplus(out[:, 1])


@dataclass
class Ensemble:
    """Standardisation plus member networks; inputs NaN (unknown) become the training mean."""

    mean: np.ndarray
    std: np.ndarray
    members: list[GapNet]

    def inputs(self, x: np.ndarray) -> torch.Tensor:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        return torch.as_tensor(np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0), dtype=torch.float32)

    def member_outputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P(non-metal) and gap of every member: two arrays of shape (members, rows)."""
        z = self.inputs(x)
        probs, gaps = [], []
        with torch.no_grad():
            for net in self.members:
                net.eval()
                logit, gap = net(z)
                probs.append(torch.sigmoid(logit).numpy())
                gaps.append(gap.numpy())
        return np.stack(probs).astype(np.float64), np.stack(gaps).astype(np.float64)

    def state(self) -> dict:
        return {
            "mean": torch.as_tensor(self.mean, dtype=torch.float32),
            "std": torch.as_tensor(self.std, dtype=torch.float32),
            "members": [{k: v.half() for k, v in net.state_dict().items()} for net in self.members],
        }

    @classmethod
    def from_state(cls, state: dict, hidden: int, layers: int) -> Ensemble:
        mean = state["mean"].double().numpy()
        members = []
        for weights in state["members"]:
            net = GapNet(len(mean), hidden=hidden, layers=layers)
            net.load_state_dict({k: v.float() for k, v in weights.items()})
            net.eval()
            members.append(net)
        return cls(mean, state["std"].double().numpy(), members)


class FoldEnsemble(Ensemble):
    """Several ensembles with their own normalisers (the prior's fold models) answering as one."""

    def __init__(self, models: list[Ensemble]) -> None:
        super().__init__(models[0].mean, models[0].std, [m for e in models for m in e.members])
        self.models = models

    def member_outputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outs = [e.member_outputs(x) for e in self.models]
        return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])

    def state(self) -> dict:
        return {"folds": [e.state() for e in self.models]}

    @classmethod
    def from_state(cls, state: dict, hidden: int, layers: int) -> FoldEnsemble:
        return cls([Ensemble.from_state(s, hidden, layers) for s in state["folds"]])


def gated(probs: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """Each member's prediction: its gap where it calls the crystal a non-metal, else 0."""
    return np.where(probs > 0.5, gaps, 0.0)


# --- the model --------------------------------------------------------------------------------------
class BandGapPrediction(BaseModel):
    """PBE band gap (eV) and its uncertainty (calibrated ensemble spread, eV). NaN if the crystal
    could not be featurised (e.g. isolated atoms)."""

    band_gap: float
    band_gap_std: float


VARIANT_LABELS = {"release": "release: all splits", "eval": "eval: train only"}
VARIANTS = ("release", "eval")


def variant_dir(variant: str) -> Path:
    """The shipped folder of a variant (read at call time, so tests can point it elsewhere)."""
    if variant not in VARIANTS:
        raise InputError(f"unknown band-gap model variant {variant!r}: use one of {', '.join(VARIANTS)}")
    return RELEASE_DIR if variant == "release" else DEFAULT_DIR


class BandGapModel:
    """Loads a checkpoint folder (``model.pt`` + ``model.json``) and predicts batches of structures."""

    def __init__(
        self, head: Ensemble, prior: Ensemble | None, meta: dict, path: Path | None = None, chgnet: Any = None
    ) -> None:
        self.head = head
        self.prior = prior
        self.meta = meta
        self.path = path
        #: "release" (trained on every split) or "eval" (train only); older files without the key are
        #: eval unless they trained on test
        self.variant: str = meta.get("variant") or (
            "release" if "test" in meta.get("training", {}).get("head_splits", ()) else "eval"
        )
        base = meta.get("name", "xtalagent band-gap (CHGNet features + MLP ensemble)")
        self.name: str = f"{base} ({VARIANT_LABELS.get(self.variant, self.variant)})"
        #: measured test figures; for a release model the eval model's, with ``measured_on`` saying so
        self.metrics: dict = dict(meta.get("metrics", {}))
        self.std_scale: float = float(meta.get("std_scale", 1.0))
        self.mode: str = meta.get("mode", "hurdle")
        self._chgnet = chgnet

    @classmethod
    def load(cls, path: str | Path | None = None, chgnet: Any = None) -> BandGapModel:
        """Load ``path`` (a folder or its ``model.pt``; None: the shipped default). ``chgnet``: an
        already-loaded CHGNet model (or CHGNetPotential) to reuse; else it is loaded on first use."""
        folder = Path(path) if path is not None else DEFAULT_DIR
        if folder.is_file():
            folder = folder.parent
        weights, meta_file = folder / WEIGHTS_FILE, folder / META_FILE
        if not weights.is_file() or not meta_file.is_file():
            raise InputError(f"band-gap model not found: {folder} needs {WEIGHTS_FILE} and {META_FILE}")
        try:
            meta = json.loads(meta_file.read_text())
            if meta.get("layout") != LAYOUT:
                raise ValueError(f"layout {meta.get('layout')!r}, this code reads {LAYOUT!r}")
            state = torch.load(weights, map_location="cpu", weights_only=True)
            arch = meta["architecture"]
            head = Ensemble.from_state(state["head"], arch["hidden"], arch["layers"])
            prior = None
            if state.get("prior") is not None:
                prior = FoldEnsemble.from_state(state["prior"], arch["prior_hidden"], arch["prior_layers"])
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise InputError(f"band-gap model at {folder} is unreadable: {type(exc).__name__}: {first}") from None
        return cls(head, prior, meta, folder, chgnet)

    @property
    def chgnet(self) -> Any:
        if self._chgnet is None:
            self._chgnet = load_chgnet()
        return self._chgnet

    def features(self, structures: Sequence[Structure], chgnet: Any = None) -> tuple[np.ndarray, list[str | None]]:
        """The head's input rows for ``structures`` and per-structure failures."""
        chg, errors = chgnet_features(structures, chgnet if chgnet is not None else self.chgnet)
        rows = [np.concatenate([structure_features(s), composition_features(s.composition)]) for s in structures]
        return self.assemble(chg, np.stack(rows) if rows else np.zeros((0, N_STRUCT + N_COMPOSITION))), errors

    def assemble(self, chg: np.ndarray, struct_comp: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
        """Join CHGNet, structure/composition and (computed here unless given) prior features."""
        parts = [chg, struct_comp] if self.meta.get("use_chgnet", True) else [struct_comp]
        if self.prior is not None:
            if prior is None:
                p, g = self.prior.member_outputs(struct_comp[:, N_STRUCT:])
                prior = np.stack([p.mean(0), g.mean(0)], axis=1)
            parts.append(prior)
        return np.concatenate(parts, axis=1)

    def predict_features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gap and calibrated std of feature rows."""
        probs, gaps = self.head.member_outputs(x)
        values = gated(probs, gaps) if self.mode == "hurdle" else gaps
        return values.mean(0), values.std(0) * self.std_scale

    def predict(self, structures: list[Structure], chgnet: Any = None) -> list[BandGapPrediction]:
        """Band gap ± spread of each structure as given (no relaxation), in one batched pass."""
        structures = list(structures)
        if not structures:
            return []
        x, errors = self.features(structures, chgnet)
        gap, std = self.predict_features(x)
        out = []
        for i, error in enumerate(errors):
            if error is not None:
                logger.warning("band gap of %s not predicted: %s", structures[i].composition.reduced_formula, error)
                out.append(BandGapPrediction(band_gap=math.nan, band_gap_std=math.nan))
            else:
                out.append(BandGapPrediction(band_gap=float(gap[i]), band_gap_std=float(std[i])))
        return out

    def __repr__(self) -> str:
        return f"BandGapModel({self.name!r}, path={str(self.path)!r})"


def default_band_gap_model(chgnet: Any = None, variant: str = "eval") -> BandGapModel | None:
    """The shipped model of ``variant``, or None (logged) when its files are absent or unreadable.

    ``"eval"`` (default): trained on MP ``train`` only, for anything measured. ``"release"``: trained
    on every split, for users; falls back to the eval model (logged warning) if its folder is absent."""
    folder = variant_dir(variant)
    if variant == "release":
        try:
            return BandGapModel.load(folder, chgnet=chgnet)
        except InputError as exc:
            logger.warning("release band-gap model unavailable (%s); using the eval model (train only)", exc)
    try:
        return BandGapModel.load(variant_dir("eval"), chgnet=chgnet)
    except InputError as exc:
        logger.warning("no band-gap model: %s", exc)
        return None
