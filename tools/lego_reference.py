"""LEGO-xtal's sp2 carbon reference set (SACADA), as shipped in ``shared/data/lego_sp2``.

Development and benchmark data only: users bring their own references, and graphite is built
in :func:`xtalagent.tools.prerelax.graphite` without any file.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from xtalagent import config
from xtalagent.errors import InputError


def sacada_db() -> Path:
    """The SACADA sp2 carbon database beside the repository (development machines only), read from
    ``config.SHARED_DATA_DIR`` when asked, so ``XTALAGENT_SHARED_DATA`` set later still counts."""
    return config.SHARED_DATA_DIR / "lego_sp2" / "sp2_sacada.db"


@dataclass(frozen=True)
class Sp2Entry:
    """One known sp2 carbon: id in the database, symmetry and energies (eV/atom)."""

    id: int
    natoms: int
    spacegroup: int
    wyckoff: tuple[str, ...]
    vasp_energy: float | None
    mace_energy: float | None
    ff_energy: float | None


def load_sacada(path: str | Path | None = None, max_atoms: int | None = None) -> list[tuple[Sp2Entry, object]]:
    """(entry, ASE Atoms) for every structure of the SACADA sp2 database, smallest first."""
    from ase.db import connect

    db_path = Path(path) if path is not None else sacada_db()
    if not db_path.exists():
        raise InputError(f"SACADA sp2 database not found at {db_path}")
    out = []
    with connect(db_path) as db:
        for row in db.select():
            if max_atoms is not None and row.natoms > max_atoms:
                continue
            entry = Sp2Entry(
                id=int(row.id),
                natoms=int(row.natoms),
                spacegroup=int(row.space_group_number),
                wyckoff=tuple(ast.literal_eval(row.wps)) if row.get("wps") else (),
                vasp_energy=row.get("vasp_energy"),
                mace_energy=row.get("mace_energy"),
                ff_energy=row.get("ff_energy"),
            )
            out.append((entry, row.toatoms()))
    return sorted(out, key=lambda item: (item[0].natoms, item[0].id))


def random_from_entry(entry: Sp2Entry, random_state: int):
    """A random carbon crystal with an entry's space group and Wyckoff set (None if pyxtal fails).

    This is the kind of symmetry choice a generator trained on SACADA makes; both LEGO benches
    draw their candidates this way.
    """
    import warnings

    from pyxtal import pyxtal

    xtal = pyxtal()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xtal.from_random(
                3, entry.spacegroup, ["C"], [entry.natoms], sites=[list(entry.wyckoff)], random_state=random_state
            )
    except Exception:  # pyxtal raises several types when a random placement fails
        return None
    return xtal if xtal.valid else None
