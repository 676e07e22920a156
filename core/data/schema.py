"""The Parquet schema of a labelled dataset, and reading it back.

One row per crystal (conventional standard cell):

=================  ==========================  ===============================================
column             type                        meaning
=================  ==========================  ===============================================
id                 string                      source id (``material_id``, file stem, db name)
source             string                      dataset / file the crystal came from
split              string                      ``train`` / ``val`` / ``test``
formula            string                      cell formula of the conventional cell (Sc2Ni6)
reduced_formula    string                      pymatgen reduced formula (ScNi3)
elements           list<string>                elements, electronegativity order
natoms             int32                       atoms in the conventional cell
spacegroup         int16                       space group number (1-230)
symprec            float64                     distance tolerance of the symmetry search (Å)
lattice            list<float64>[6]            a, b, c (Å), alpha, beta, gamma (degrees)
sites              list<struct>                one Wyckoff orbit each: element, wyckoff (4a),
                                               multiplicity, letter, dof, position (fractional
                                               representative), free_params (its free values)
cif                string                      the conventional cell as CIF
<property>         as in the input             every other input column (band_gap,
                                               formation_energy_per_atom, e_above_hull, ...)
=================  ==========================  ===============================================

File metadata (key ``xtalagent``) holds the schema version and the cache key of the inputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from xtalagent.errors import InputError
from xtalagent.records import CrystalRecord

SITE_TYPE = pa.struct(
    [
        ("element", pa.string()),
        ("wyckoff", pa.string()),
        ("multiplicity", pa.int32()),
        ("letter", pa.string()),
        ("dof", pa.int32()),
        ("position", pa.list_(pa.float64())),
        ("free_params", pa.list_(pa.float64())),
    ]
)

CORE_FIELDS = [
    pa.field("id", pa.string()),
    pa.field("source", pa.string()),
    pa.field("split", pa.string()),
    pa.field("formula", pa.string()),
    pa.field("reduced_formula", pa.string()),
    pa.field("elements", pa.list_(pa.string())),
    pa.field("natoms", pa.int32()),
    pa.field("spacegroup", pa.int16()),
    pa.field("symprec", pa.float64()),
    pa.field("lattice", pa.list_(pa.float64())),
    pa.field("sites", pa.list_(SITE_TYPE)),
    pa.field("cif", pa.string()),
]
CORE_COLUMNS = [f.name for f in CORE_FIELDS]
METADATA_KEY = b"xtalagent"


def to_table(rows: list[dict[str, Any]], metadata: dict[str, Any]) -> pa.Table:
    """Rows (core columns + properties) to an Arrow table with the documented schema."""
    property_names: list[str] = []
    for row in rows:
        for key in row["properties"]:
            if key not in property_names and key not in CORE_COLUMNS:
                property_names.append(key)
    columns = {name: [row[name] for row in rows] for name in CORE_COLUMNS}
    fields = list(CORE_FIELDS)
    for name in property_names:
        values = [row["properties"].get(name) for row in rows]
        array = pa.array(values) if any(v is not None for v in values) else pa.array(values, pa.float64())
        columns[name] = array
        fields.append(pa.field(name, array.type))
    schema = pa.schema(fields, metadata={METADATA_KEY: json.dumps(metadata).encode()})
    return pa.table(columns, schema=schema)


def read_metadata(path: Path) -> dict[str, Any]:
    """The xtalagent metadata of a dataset file ({} if absent or unreadable)."""
    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta.get(METADATA_KEY, b"{}"))
    except Exception:
        return {}


def load_dataset(path: str | Path, split: str | None = None):
    """A labelled dataset as a pandas DataFrame, optionally one split only."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such dataset (build one with 'xtalagent data build')")
    try:
        frame = pq.read_table(path).to_pandas()
    except Exception as exc:
        raise InputError(f"{path}: not a readable Parquet dataset ({exc})") from None
    missing = [c for c in CORE_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: not an xtalagent dataset (missing columns: {', '.join(missing)})")
    if split is not None:
        frame = frame[frame["split"] == split].reset_index(drop=True)
    return frame


def row_to_record(row: dict[str, Any]) -> CrystalRecord:
    """A DataFrame row (as dict) to a validated :class:`CrystalRecord`."""
    data = {k: row[k] for k in CORE_COLUMNS}
    data["elements"] = list(data["elements"])
    data["lattice"] = tuple(float(v) for v in data["lattice"])
    data["sites"] = [
        {**site, "position": tuple(site["position"]), "free_params": list(site["free_params"])}
        for site in data["sites"]
    ]
    data["spacegroup"] = int(data["spacegroup"])
    data["natoms"] = int(data["natoms"])
    props = {}
    for key, value in row.items():
        if key in CORE_COLUMNS or isinstance(value, str):
            continue
        try:
            props[key] = None if value is None or value != value else float(value)
        except (TypeError, ValueError):
            continue
    data["properties"] = props
    return CrystalRecord.model_validate(data)


def load_records(path: str | Path, split: str | None = None) -> list[CrystalRecord]:
    """A labelled dataset as a list of :class:`CrystalRecord`."""
    frame = load_dataset(path, split)
    return [row_to_record(row) for row in frame.to_dict("records")]
