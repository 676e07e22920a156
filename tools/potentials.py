"""Machine-learned interatomic potentials behind one batched interface.

Why batched: relaxing hundreds of small cells one ASE calculator call at a time spends most of its
time in Python and in tiny forward passes. :meth:`Potential.evaluate` takes a list of structures
and returns energies, forces and stresses of all of them from one (or a few) forward passes.

Choice of potential (:func:`load_potential`):

* ``"auto"`` (default): MatterSim if the ``mattersim`` package imports *and* its checkpoint is on
  disk (MatterSim's own cache, ``~/.local/mattersim/pretrained_models/mattersim-v1.0.0-1M.pth``,
  the path ``mattersim.forcefield.potential.Potential.from_checkpoint`` uses, or a path given with
  ``checkpoint``); otherwise CHGNet, whose weights ship inside its wheel. Nothing is downloaded.
* ``"chgnet"`` / ``"mattersim"``: explicit; raises :class:`InputError` if it cannot be loaded.

Provenance: every potential carries :attr:`Potential.provenance` (name, checkpoint, package
version); every energy the screening stage writes is stored next to it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import GPa

from xtalagent.errors import InputError
from xtalagent.tools.settings import RelaxSettings

#: Default CHGNet checkpoint, used when MatterSim's is not present (ships in the chgnet wheel).
CHGNET_MODEL: str = "0.3.0"
#: MatterSim's own checkpoint cache (see ``Potential.from_checkpoint`` in mattersim's source).
MATTERSIM_CACHE: Path = Path("~/.local/mattersim/pretrained_models").expanduser()
#: Default MatterSim checkpoint file name inside :data:`MATTERSIM_CACHE`.
MATTERSIM_CHECKPOINT: str = "mattersim-v1.0.0-1M.pth"
#: Structures per forward pass (the relaxer's batch).
BATCH_SIZE: int = RelaxSettings.batch_size

POTENTIALS = ("auto", "chgnet", "mattersim")


@dataclass
class Evaluation:
    """Energy (eV, total), forces (eV/Å) and stress (eV/Å^3, Voigt, ASE sign) of one structure.

    ``error`` is set (and the arrays are empty) when the potential could not evaluate it, so one
    bad structure never stops a batch.
    """

    energy: float = float("nan")
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    error: str | None = None

    @property
    def finite(self) -> bool:
        return (
            self.error is None
            and np.isfinite(self.energy)
            and self.forces is not None
            and bool(np.all(np.isfinite(self.forces)))
            and (self.stress is None or bool(np.all(np.isfinite(self.stress))))
        )


def _pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


class Potential:
    """Base class: a named, versioned model that evaluates lists of structures at once."""

    name: str = ""
    checkpoint: str = ""
    #: False for random-weight models used only to test plumbing; their energies are never reported.
    reportable: bool = True

    @property
    def provenance(self) -> dict[str, Any]:
        return {
            "potential": self.name,
            "checkpoint": self.checkpoint,
            "package_version": _pkg_version(self.name),
            "reportable": self.reportable,
        }

    @property
    def label(self) -> str:
        """One string for tables: ``chgnet:0.3.0``."""
        return f"{self.name}:{self.checkpoint}"

    def evaluate(self, structures: Sequence[Atoms]) -> list[Evaluation]:  # pragma: no cover - abstract
        raise NotImplementedError


class CHGNetPotential(Potential):
    """CHGNet; a list of crystal graphs is evaluated in batched forward passes.

    ``fast=True`` (default) runs CHGNet's own layers (``BatchedGraph.from_graphs`` + ``CHGNet._compute``)
    but takes forces and stress from **one** backward pass without ``create_graph``: CHGNet's
    ``predict_graph`` does two backward passes (forces, then stress), each with ``create_graph=True``
    (kept for training losses), which roughly doubles the cost of an energy-force-stress call. Same
    model, same graphs, same numbers up to float32 rounding (checked against ``CHGNetCalculator`` in
    tests/test_potentials.py). ``fast=False`` uses ``predict_graph(task="efs")``.
    """

    name = "chgnet"

    def __init__(
        self, model_name: str = CHGNET_MODEL, batch_size: int = BATCH_SIZE, model: Any = None, fast: bool = True
    ) -> None:
        from chgnet.model import CHGNet

        self.model = model if model is not None else CHGNet.load(model_name=model_name, use_device="cpu", verbose=False)
        self.checkpoint = str(getattr(self.model, "version", None) or model_name)
        self.batch_size = batch_size
        self.fast = fast

    def evaluate(self, structures: Sequence[Atoms]) -> list[Evaluation]:
        results = [Evaluation() for _ in structures]
        # isolated atoms make CHGNet's energies meaningless: fail those structures (ASE calculators
        # sharing this model switch the converter to "warn", so set it on every call)
        self.model.graph_converter.set_isolated_atom_response("error")
        graphs, where = [], []
        for i, atoms in enumerate(structures):
            try:
                graphs.append(self.model.graph_converter(_to_structure(atoms)))
                where.append(i)
            except Exception as exc:  # isolated atoms, empty cells, ...: record and go on
                results[i].error = f"graph construction failed: {type(exc).__name__}: {exc}"
        preds: list[Evaluation] = []
        for start in range(0, len(graphs), self.batch_size):
            chunk = graphs[start : start + self.batch_size]
            try:
                preds.extend(self._predict(chunk))
            except Exception:  # one bad graph poisons the batch: fall back to one at a time
                for graph in chunk:
                    try:
                        preds.extend(self._predict([graph]))
                    except Exception as inner:
                        preds.append(Evaluation(error=f"potential failed: {type(inner).__name__}: {inner}"))
        for i, ev in zip(where, preds):
            results[i] = ev
        return results

    def _predict(self, graphs: list[Any]) -> list[Evaluation]:
        """Energies, forces, stresses of ``graphs`` (one forward pass, at most one backward pass)."""
        model = self.model
        if not self.fast:
            preds = model.predict_graph(graphs, task="efs", batch_size=len(graphs))
            preds = [preds] if isinstance(preds, dict) else preds
            energies = [float(p["e"]) for p in preds]
            forces = [np.asarray(p["f"], dtype=float) for p in preds]
            stresses = [_voigt(np.asarray(p["s"], dtype=float)) * GPa for p in preds]
        else:
            import torch
            from chgnet.model.model import BatchedGraph

            model.eval()
            with torch.enable_grad():
                comp = 0.0 if model.composition_model is None else model.composition_model(graphs)
                batched = BatchedGraph.from_graphs(
                    graphs,
                    bond_basis_expansion=model.bond_basis_expansion,
                    angle_basis_expansion=model.angle_basis_expansion,
                    compute_stress=True,
                )
                pred = model._compute(batched)  # energy only; per atom if the model is intensive
                energy = pred["e"]
                total = (energy * pred["atoms_per_graph"]).sum() if model.is_intensive else energy.sum()
                inputs = [*batched.atom_positions, *batched.strains]
                # (a scalar output: ``grad_outputs`` tensors make torch import sympy on the first call)
                grads = torch.autograd.grad(total, inputs, allow_unused=True)
                energy = (energy + comp).detach()
            k = len(graphs)
            energies = energy.tolist()
            forces = [_grad(g, x).neg().numpy().astype(float) for g, x in zip(grads[:k], inputs[:k])]
            # d E / d strain / V is the stress in eV/Å^3 (CHGNet converts the same quantity to GPa)
            stresses = [
                _voigt(_grad(g, x).numpy().astype(float) / float(v))
                for g, x, v in zip(grads[k:], inputs[k:], batched.volumes)
            ]
        out = []
        for graph, e, f, s in zip(graphs, energies, forces, stresses):
            n = int(graph.atomic_number.shape[0])
            out.append(Evaluation(energy=e * (n if model.is_intensive else 1), forces=f, stress=s))
        return out


def _grad(grad: Any, like: Any) -> Any:
    """A gradient from ``autograd.grad(..., allow_unused=True)``: zeros where the input was unused."""
    import torch

    return torch.zeros_like(like).detach() if grad is None else grad.detach()


def _to_structure(atoms: Atoms) -> Any:
    """pymatgen ``Structure`` of ``atoms`` (species, cell, positions only; constraints and calculator ignored)."""
    from pymatgen.core import Lattice, Structure

    return Structure(
        Lattice(np.array(atoms.cell)), atoms.get_chemical_symbols(), atoms.positions, coords_are_cartesian=True
    )


class MatterSimPotential(Potential):
    """MatterSim (M3GNet architecture); batches through mattersim's own dataloader."""

    name = "mattersim"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        batch_size: int = BATCH_SIZE,
        potential: Any = None,
        reportable: bool = True,
    ) -> None:
        """Load ``checkpoint`` (default: MatterSim's cache), or wrap an existing mattersim ``Potential``."""
        if potential is None:
            from mattersim.forcefield.potential import Potential as MSPotential

            path = Path(checkpoint) if checkpoint else MATTERSIM_CACHE / MATTERSIM_CHECKPOINT
            if not path.is_file():
                raise InputError(f"MatterSim checkpoint not found at {path} (it cannot be downloaded here)")
            potential = MSPotential.from_checkpoint(load_path=str(path), device="cpu", load_training_state=False)
            self.checkpoint = str(path)
        else:
            self.checkpoint = str(checkpoint or "in-memory model")
        self.potential = potential
        self.batch_size = batch_size
        self.reportable = reportable

    def evaluate(self, structures: Sequence[Atoms]) -> list[Evaluation]:
        from mattersim.datasets.utils.build import build_dataloader

        args = getattr(self.potential.model, "model_args", {}) or {}
        cutoff = float(args.get("cutoff", 5.0))
        threebody = float(args.get("threebody_cutoff", 4.0))
        results = [Evaluation() for _ in structures]
        for start in range(0, len(structures), self.batch_size):
            chunk = list(structures[start : start + self.batch_size])
            try:
                loader = build_dataloader(
                    chunk, cutoff=cutoff, threebody_cutoff=threebody, batch_size=len(chunk), only_inference=True
                )
                energies, forces, stresses = self.potential.predict_properties(
                    loader, include_forces=True, include_stresses=True
                )
            except Exception as exc:
                if len(chunk) == 1:
                    results[start].error = f"potential failed: {type(exc).__name__}: {exc}"
                    continue
                for j, atoms in enumerate(chunk):  # isolate the culprit
                    results[start + j] = self.evaluate([atoms])[0]
                continue
            for j in range(len(chunk)):
                results[start + j] = Evaluation(
                    energy=float(energies[j]),
                    forces=np.asarray(forces[j], dtype=float),
                    stress=_voigt(np.asarray(stresses[j], dtype=float)) * GPa,
                )
        return results


def _voigt(stress: np.ndarray) -> np.ndarray:
    """3x3 → Voigt (xx, yy, zz, yz, xz, xy); passes Voigt through."""
    if stress.shape == (6,):
        return stress
    s = stress.reshape(3, 3)
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def mattersim_available(checkpoint: str | Path | None = None) -> bool:
    """True if mattersim imports and the checkpoint (default: MatterSim's cache) exists."""
    path = Path(checkpoint) if checkpoint else MATTERSIM_CACHE / MATTERSIM_CHECKPOINT
    if not path.is_file():
        return False
    try:
        import mattersim.forcefield.potential  # noqa: F401
    except Exception:
        return False
    return True


def load_potential(name: str = "auto", checkpoint: str | Path | None = None, batch_size: int = BATCH_SIZE) -> Potential:
    """Load a potential by name (see module docstring for what ``auto`` picks)."""
    key = (name or "auto").lower()
    if key not in POTENTIALS:
        raise InputError(f"unknown potential {name!r} (choose from {', '.join(POTENTIALS)})")
    if key == "auto":
        ms_ckpt = checkpoint if checkpoint and not str(checkpoint).startswith("0.") else None
        key = "mattersim" if mattersim_available(ms_ckpt) else "chgnet"
        if key == "chgnet" and checkpoint and ms_ckpt:
            raise InputError(f"MatterSim checkpoint {checkpoint} given but MatterSim cannot be loaded")
    if key == "mattersim":
        try:
            import mattersim.forcefield.potential  # noqa: F401
        except Exception as exc:
            raise InputError(f"MatterSim requested but not importable ({exc}); see tools/potentials.py") from None
        return MatterSimPotential(checkpoint, batch_size=batch_size)
    try:
        return CHGNetPotential(str(checkpoint) if checkpoint else CHGNET_MODEL, batch_size=batch_size)
    except (ValueError, FileNotFoundError) as exc:
        raise InputError(f"cannot load CHGNet model {checkpoint!r}: {exc}") from None


def limit_threads(n: int | None = 1) -> None:
    """Cap torch/OpenMP threads (shared machines: one core per job)."""
    if n is None:
        return
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    import torch

    torch.set_num_threads(n)


class CalculatorPotential(Potential):
    """Any ASE calculator, evaluated one structure at a time (no batching; for tests and odd models)."""

    def __init__(self, calculator: Any, name: str = "ase-calculator", checkpoint: str = "", reportable: bool = True):
        self.calculator = calculator
        self.name = name
        self.checkpoint = checkpoint or type(calculator).__name__
        self.reportable = reportable

    def evaluate(self, structures: Sequence[Atoms]) -> list[Evaluation]:
        out = []
        for atoms in structures:
            a = atoms.copy()
            a.set_constraint()
            a.calc = self.calculator
            try:
                out.append(Evaluation(float(a.get_potential_energy()), a.get_forces(), a.get_stress()))
            except Exception as exc:
                out.append(Evaluation(error=f"potential failed: {type(exc).__name__}: {exc}"))
        return out
