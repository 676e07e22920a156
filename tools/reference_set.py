"""The shipped set of known crystals: lookups, novelty references and pre-relaxation environments.

Users' clones have no labelled MP dataset, yet the pipeline needs known crystals with the same
elements (LEGO references, novelty, "what is known about Ti–O?"). This module ships them compactly:
each crystal as its space group, lattice parameters and Wyckoff sites with free coordinates only
(the asymmetric unit), rebuilt into full cells on demand with the same code the structure generator
uses. It is lookup data, not training data: it holds every crystal the project has data for, all
splits included, so a user asking for Ti–O sees rutile and anatase. Each row carries its split, and
the ``eval`` knowledge variant (:data:`VARIANT_SPLITS`), the library default, keeps only ``train``
rows, so benchmarks on ``test`` never see their own answers among the references; the front doors
(``design``, ``chat``) ask for ``release``.

Rebuild: ``python -m xtalagent.tools.reference_set datasets/mp_structures.parquet``.
"""

from __future__ import annotations

import gzip
import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from xtalagent.composition import check_element, parse_counts
from xtalagent.errors import InputError
from xtalagent.io import atomic_path

DATA_FILE: Path = Path(__file__).resolve().parent / "data" / "mp_reference_structures.jsonl.gz"
#: Splits of the source dataset that go into the shipped set (lookup data: all of them).
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Which rows each knowledge variant sees: ``release`` (what users get) every crystal we ship,
#: ``eval`` (every reported benchmark) the ``train`` split only.
VARIANT_SPLITS: dict[str, tuple[str, ...] | None] = {"release": None, "eval": ("train",)}


@dataclass(frozen=True)
class KnownCrystal:
    """One known crystal; properties as given by the source (MP: eV/atom, eV)."""

    id: str
    reduced_formula: str
    formula: str
    spacegroup: int
    lattice: tuple[float, ...]
    sites: tuple[tuple[str, str, tuple[float, ...]], ...]  # (element, wyckoff, free coordinates)
    formation_energy: float | None
    e_above_hull: float | None
    band_gap: float | None
    split: str | None = None  # split of the source dataset (files before splits were stored: None)

    @property
    def elements(self) -> frozenset[str]:
        return frozenset(site[0] for site in self.sites)

    def structure(self):
        """The conventional cell as a pymatgen Structure (rebuilt from the asymmetric unit)."""
        import numpy as np

        from xtalagent.records import SiteSpec, SymmetryConstraint
        from xtalagent.structure_gen.freeparams import build_structure

        constraint = SymmetryConstraint(
            spacegroup=self.spacegroup, sites=[SiteSpec(element=el, wyckoff=w) for el, w, _ in self.sites]
        )
        return build_structure(constraint, list(self.lattice), [np.array(c, dtype=float) for c in self.sites_free()])

    def sites_free(self) -> list[tuple[float, ...]]:
        return [site[2] for site in self.sites]

    def as_dict(self) -> dict:
        from xtalagent.symmetry import spacegroup_symbol

        return {
            "id": self.id,
            "formula": self.reduced_formula,
            "cell_formula": self.formula,
            "spacegroup": self.spacegroup,
            "spacegroup_symbol": spacegroup_symbol(self.spacegroup),
            "formation_energy_eV_per_atom": self.formation_energy,
            "e_above_hull_eV_per_atom": self.e_above_hull,
            "band_gap_eV": self.band_gap,
        }


def _num(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if value != value else round(value, 4)


def build(dataset: str | Path, out: Path = DATA_FILE, splits: tuple[str, ...] = SPLITS) -> int:
    """Write the compact set from a labelled dataset (``xtalagent data build``); returns the row count."""
    from xtalagent.data import load_records
    from xtalagent.structure_gen.freeparams import free_variables_of_record

    lines = []
    for split in splits:
        for record in load_records(dataset, split):
            _, coords = free_variables_of_record(record)
            props = record.properties
            lines.append(
                json.dumps(
                    {
                        "id": record.id,
                        "rf": record.reduced_formula,
                        "f": record.formula,
                        "sg": record.spacegroup,
                        "lat": [round(float(x), 4) for x in record.lattice],
                        "sites": [
                            [s.element, s.wyckoff, [round(float(v), 5) for v in c]]
                            for s, c in zip(record.sites, coords)
                        ],
                        "ef": _num(props.get("formation_energy_per_atom")),
                        "eh": _num(props.get("e_above_hull")),
                        "bg": _num(props.get("band_gap")),
                        "s": split,
                    },
                    separators=(",", ":"),
                )
            )
    if not lines:
        raise InputError(f"no rows of splits {splits} in {dataset}")
    with atomic_path(out) as tmp, gzip.open(tmp, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return len(lines)


@lru_cache(maxsize=4)
def _load(path: Path) -> tuple[KnownCrystal, ...]:
    if not path.is_file():
        raise InputError(f"reference set {path} not found (rebuild: python -m xtalagent.tools.reference_set DATASET)")
    rows = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            d = json.loads(line)
            rows.append(
                KnownCrystal(
                    id=d["id"],
                    reduced_formula=d["rf"],
                    formula=d["f"],
                    spacegroup=d["sg"],
                    lattice=tuple(d["lat"]),
                    sites=tuple((el, w, tuple(c)) for el, w, c in d["sites"]),
                    formation_energy=d["ef"],
                    e_above_hull=d["eh"],
                    band_gap=d["bg"],
                    split=d.get("s"),
                )
            )
    return tuple(rows)


def check_variant(variant: str) -> str:
    """``variant`` if it names a knowledge variant, else a one-line error."""
    if variant not in VARIANT_SPLITS:
        raise InputError(f"unknown knowledge variant {variant!r} (choose from {', '.join(VARIANT_SPLITS)})")
    return variant


def known_crystals(path: Path = DATA_FILE, variant: str = "eval") -> tuple[KnownCrystal, ...]:
    """The known crystals the variant may see (``eval``: ``train`` rows only)."""
    splits = VARIANT_SPLITS[check_variant(variant)]
    rows = _load(Path(path))
    return rows if splits is None else tuple(c for c in rows if c.split in splits)


def _stability(c: KnownCrystal) -> float:
    return c.e_above_hull if c.e_above_hull is not None else 9.0


def with_elements(
    elements: list[str] | set[str], exact: bool = True, path: Path = DATA_FILE, variant: str = "eval"
) -> list[KnownCrystal]:
    """Known crystals made of exactly these elements (or, ``exact=False``, of a subset of them),
    most stable first."""
    wanted = frozenset(check_element(e) for e in elements)
    if not wanted:
        raise InputError("no elements given")
    hits = [c for c in known_crystals(path, variant) if (c.elements == wanted if exact else c.elements <= wanted)]
    return sorted(hits, key=lambda c: (_stability(c), len(c.formula)))


def with_formula(formula: str, path: Path = DATA_FILE, variant: str = "eval") -> list[KnownCrystal]:
    """Known polymorphs of a composition (any number of formula units), most stable first."""
    from pymatgen.core import Composition

    reduced = Composition(parse_counts(formula)).reduced_formula
    hits = [c for c in known_crystals(path, variant) if c.reduced_formula == reduced]
    return sorted(hits, key=_stability)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m xtalagent.tools.reference_set DATASET.parquet")
    n = build(args[0])
    print(f"{n} known crystals written to {DATA_FILE} ({DATA_FILE.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
