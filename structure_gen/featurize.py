"""Constraints (and, for training, their true free variables) as tensors the denoiser reads.

One :class:`DiffusionExample` per crystal holds the per-orbit affine maps of :mod:`freeparams`, the
species, the lattice family mask and, when known, the true free lattice and coordinates. ``collate``
stacks examples into a flat batch (atoms, orbits, crystals and all intra-cell atom pairs), the
layout a message-passing network over periodic cells wants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from xtalagent.records import CrystalRecord, SymmetryConstraint
from xtalagent.structure_gen.freeparams import FAMILIES, FAMILY_FREE, lattice_family, orbit_map, project_lattice

#: Properties the model can be conditioned on, with the dataset columns read for each.
PROPERTY_COLUMNS: dict[str, tuple[str, ...]] = {
    "band_gap": ("band_gap", "ind_gap"),
    "formation_energy": ("formation_energy_per_atom", "formation_energy", "heat_ref"),
}
PROPERTIES: tuple[str, ...] = tuple(PROPERTY_COLUMNS)


def lattice_vector(spacegroup: int, lattice: tuple[float, ...] | np.ndarray, natoms: int) -> np.ndarray:
    """(log a, log b, log c) minus log(N)/3, then angles in radians: scale-free lattice variables."""
    lat = project_lattice(spacegroup, lattice)
    out = np.zeros(6)
    out[:3] = np.log(lat[:3]) - math.log(natoms) / 3
    out[3:] = np.radians(lat[3:])
    return out


def lattice_from_vector(spacegroup: int, vec: np.ndarray, natoms: int) -> np.ndarray:
    """Inverse of :func:`lattice_vector`, with the family's ties and fixed angles restored."""
    lat = np.zeros(6)
    lat[:3] = np.exp(np.clip(vec[:3] + math.log(natoms) / 3, -5, 6))
    lat[3:] = np.degrees(np.clip(vec[3:], math.radians(20), math.radians(160)))
    family = lattice_family(spacegroup)
    mask = np.zeros(6, dtype=bool)
    mask[list(FAMILY_FREE[family])] = True
    if family == "cubic":
        lat[1] = lat[2] = lat[0]
    elif family in ("tetragonal", "hexagonal"):
        lat[1] = lat[0]
    return project_lattice(spacegroup, lat)


@dataclass
class DiffusionExample:
    """One crystal's constraint (and optionally its true free variables) in array form."""

    spacegroup: int
    family: int
    lattice_mask: np.ndarray  # (6,) bool: free lattice variables
    species: np.ndarray  # (N,) atomic numbers
    atom_orbit: np.ndarray  # (N,) orbit index within the crystal
    atom_A: np.ndarray  # (N, 3, 3) free coords -> fractional, dof padded to 3
    atom_b: np.ndarray  # (N, 3)
    orbit_letter: np.ndarray  # (S,) position index in the group's table (0 = general)
    orbit_dof: np.ndarray  # (S,)
    coord_mask: np.ndarray  # (S, 3) bool
    props: np.ndarray  # (len(PROPERTIES),) nan where unknown
    lattice: np.ndarray | None = None  # (6,) lattice_vector, when known
    free: np.ndarray | None = None  # (S, 3) padded free coordinates, when known

    @property
    def natoms(self) -> int:
        return len(self.species)


def _letter_index(spacegroup: int, label: str) -> int:
    from xtalagent.symmetry import wyckoff_table

    labels = [w.label for w in wyckoff_table(spacegroup)]
    return labels.index(label)


def example_from_constraint(constraint: SymmetryConstraint) -> DiffusionExample:
    """Array form of a constraint, without targets (what sampling starts from)."""
    from pymatgen.core import Element

    sg = constraint.spacegroup
    species, atom_orbit, mats, shifts, letters, dofs = [], [], [], [], [], []
    for s, site in enumerate(constraint.sites):
        orbit = orbit_map(sg, site.wyckoff)
        a = np.zeros((orbit.multiplicity, 3, 3))
        a[:, :, : orbit.dof] = orbit.A
        mats.append(a)
        shifts.append(orbit.b)
        species += [Element(site.element).Z] * orbit.multiplicity
        atom_orbit += [s] * orbit.multiplicity
        letters.append(_letter_index(sg, orbit.label))
        dofs.append(orbit.dof)
    family = lattice_family(sg)
    lmask = np.zeros(6, dtype=bool)
    lmask[list(FAMILY_FREE[family])] = True
    cmask = np.zeros((len(dofs), 3), dtype=bool)
    for s, d in enumerate(dofs):
        cmask[s, :d] = True
    props = np.array([np.nan if getattr(constraint, p) is None else float(getattr(constraint, p)) for p in PROPERTIES])
    return DiffusionExample(
        spacegroup=sg,
        family=FAMILIES.index(family),
        lattice_mask=lmask,
        species=np.array(species),
        atom_orbit=np.array(atom_orbit),
        atom_A=np.concatenate(mats),
        atom_b=np.concatenate(shifts),
        orbit_letter=np.array(letters),
        orbit_dof=np.array(dofs),
        coord_mask=cmask,
        props=props,
    )


def record_properties(record: CrystalRecord) -> dict[str, float | None]:
    """The conditioning properties of a dataset record (first non-missing column of each)."""
    out: dict[str, float | None] = {}
    for name, columns in PROPERTY_COLUMNS.items():
        out[name] = None
        for col in columns:
            value = record.properties.get(col)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                out[name] = float(value)
                break
    return out


def example_from_record(record: CrystalRecord, with_properties: bool = True) -> DiffusionExample:
    """Array form of a labelled crystal, with its true free lattice and coordinates as targets."""
    from xtalagent.structure_gen.freeparams import free_variables_of_record

    props = record_properties(record) if with_properties else {}
    constraint = record.constraint(band_gap=props.get("band_gap"), formation_energy=props.get("formation_energy"))
    ex = example_from_constraint(constraint)
    _, coords = free_variables_of_record(record)
    free = np.zeros((len(coords), 3))
    for s, c in enumerate(coords):
        free[s, : len(c)] = np.mod(c, 1.0)
    ex.free = free
    ex.lattice = lattice_vector(record.spacegroup, record.lattice, ex.natoms)
    return ex


def collate(examples: list[DiffusionExample]) -> dict[str, torch.Tensor]:
    """Flat batch: atoms, orbits, crystals and every ordered atom pair inside each cell."""
    atom_off = orbit_off = 0
    cols: dict[str, list] = {k: [] for k in ("species", "atom_orbit", "atom_crystal", "atom_A", "atom_b")}
    cols |= {k: [] for k in ("orbit_letter", "orbit_dof", "coord_mask", "orbit_crystal", "free", "src", "dst")}
    for i, ex in enumerate(examples):
        n, s = ex.natoms, len(ex.orbit_dof)
        cols["species"].append(ex.species)
        cols["atom_orbit"].append(ex.atom_orbit + orbit_off)
        cols["atom_crystal"].append(np.full(n, i))
        cols["atom_A"].append(ex.atom_A)
        cols["atom_b"].append(ex.atom_b)
        cols["orbit_letter"].append(ex.orbit_letter)
        cols["orbit_dof"].append(ex.orbit_dof)
        cols["coord_mask"].append(ex.coord_mask)
        cols["orbit_crystal"].append(np.full(s, i))
        cols["free"].append(ex.free if ex.free is not None else np.zeros((s, 3)))
        ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        keep = ii != jj
        cols["src"].append(ii[keep] + atom_off)
        cols["dst"].append(jj[keep] + atom_off)
        atom_off += n
        orbit_off += s
    batch = {k: torch.as_tensor(np.concatenate(v)) for k, v in cols.items()}
    for k in ("atom_A", "atom_b", "free"):
        batch[k] = batch[k].float()
    for k in ("species", "atom_orbit", "atom_crystal", "orbit_letter", "orbit_dof", "orbit_crystal", "src", "dst"):
        batch[k] = batch[k].long()
    batch["spacegroup"] = torch.tensor([ex.spacegroup for ex in examples]).long()
    batch["family"] = torch.tensor([ex.family for ex in examples]).long()
    batch["lattice_mask"] = torch.as_tensor(np.stack([ex.lattice_mask for ex in examples]))
    batch["natoms"] = torch.tensor([ex.natoms for ex in examples]).long()
    batch["props"] = torch.as_tensor(np.stack([ex.props for ex in examples])).float()
    lat = [ex.lattice if ex.lattice is not None else np.zeros(6) for ex in examples]
    batch["lattice"] = torch.as_tensor(np.stack(lat)).float()
    return batch
