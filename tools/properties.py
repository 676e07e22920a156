"""Band gap (± spread) and formation energy of crystals as given: no relaxation, one CSV out.

``xtalagent properties DIR_OR_CSV -o OUT.csv`` reads a folder of CIFs (recursively), a single CIF,
or a CSV with a ``cif`` column (CIF text) or a ``cif_path`` column (paths relative to the CSV).
For each crystal it writes the band-gap model's PBE gap and spread (:mod:`xtalagent.tools.band_gap`)
and the potential's single-point energy and formation energy per atom (``e_form``, against the MP
elemental references, as in :mod:`xtalagent.tools.hull`). A crystal that cannot be read or
evaluated gets a row with its ``reason`` and empty values; it never stops the run.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
from pymatgen.core import Element, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from xtalagent.errors import InputError
from xtalagent.io import atomic_path
from xtalagent.tools.screen_input import read_cif

logger = logging.getLogger(__name__)

#: Structures featurised / evaluated together.
BATCH = 64
COLUMNS = (
    "id",
    "formula",
    "n_sites",
    "band_gap",
    "band_gap_std",
    "is_metal",
    "energy_per_atom",
    "e_form",
    "potential",
    "band_gap_model",
    "reason",
)


def _parse(text: str) -> Structure:
    structure = read_cif(text)
    if len(structure) == 0:
        raise InputError("no sites")
    unknown = sorted({el.symbol for el in structure.composition.elements if not Element.is_valid_symbol(el.symbol)})
    if unknown:
        raise InputError(f"unknown element(s) {', '.join(unknown)}")
    return structure


def read_items(source: Path) -> list[tuple[str, str | None, str | None]]:
    """(id, CIF text or None, reason it cannot be read or None) for every item of ``source``."""
    source = Path(source)
    if source.is_dir():
        files = sorted(source.rglob("*.cif"))
        if not files:
            raise InputError(f"{source}: no .cif files found (searched recursively)")
        return [_read_file(f, str(f.relative_to(source).with_suffix(""))) for f in files]
    if not source.is_file():
        raise InputError(f"{source}: no such file or folder")
    if source.suffix.lower() == ".cif":
        return [_read_file(source, source.stem)]
    if not source.name.lower().endswith((".csv", ".csv.gz")):
        raise InputError(f"{source}: expected a folder of CIFs, a .cif, or a .csv with a 'cif' or 'cif_path' column")
    try:
        frame = pd.read_csv(source)
    except Exception as exc:
        raise InputError(f"{source}: unreadable CSV ({type(exc).__name__}: {exc})") from None
    column = "cif" if "cif" in frame else "cif_path" if "cif_path" in frame else None
    if column is None:
        raise InputError(f"{source}: needs a 'cif' or 'cif_path' column; found {', '.join(map(str, frame.columns))}")
    id_column = next((c for c in ("id", "material_id", "name") if c in frame), None)
    items: list[tuple[str, str | None, str | None]] = []
    for i, row in enumerate(frame.itertuples(index=False)):
        ident = str(getattr(row, id_column)) if id_column else str(i)
        value = getattr(row, column)
        if not isinstance(value, str) or not value.strip():
            items.append((ident, None, f"empty {column}"))
        elif column == "cif":
            items.append((ident, value, None))
        else:
            items.append(_read_file(source.parent / value, ident))
    return items


def _read_file(path: Path, ident: str) -> tuple[str, str | None, str | None]:
    try:
        return ident, Path(path).read_text(), None
    except (OSError, UnicodeDecodeError) as exc:
        return ident, None, f"cannot read {path}: {type(exc).__name__}"


def _predict_gaps(model: Any, structures: list[Structure]) -> list[Any]:
    """The model's predictions; if the batch fails, one structure at a time (None where that fails)."""
    try:
        return model.predict(structures)
    except Exception as exc:
        logger.warning("band-gap model failed on a batch (%s: %s); retrying one by one", type(exc).__name__, exc)
    out = []
    for structure in structures:
        try:
            out.append(model.predict([structure])[0])
        except Exception as exc:
            logger.warning("band gap of %s failed: %s: %s", structure.formula, type(exc).__name__, exc)
            out.append(None)
    return out


def properties_command(
    *,
    source: Path,
    output: Path,
    potential: str = "auto",
    checkpoint: str | None = None,
    band_gap_model: Path | None = None,
) -> pd.DataFrame:
    """Predict band gap ± spread and single-point formation energy of every crystal in ``source``;
    write ``output`` (CSV, atomically) and return the table (one row per item, skipped ones with a
    ``reason``)."""
    from xtalagent.tools.band_gap import METAL_GAP, BandGapModel, variant_dir
    from xtalagent.tools.hull import formation_energy, load_element_refs
    from xtalagent.tools.potentials import CHGNetPotential, load_potential

    t0 = time.perf_counter()
    items = read_items(Path(source))
    pot = load_potential(potential, checkpoint)
    chgnet = pot.model if isinstance(pot, CHGNetPotential) else None
    # users get the release model (trained on every split) unless they name one
    model = BandGapModel.load(band_gap_model or variant_dir("release"), chgnet=chgnet)
    refs = load_element_refs()
    rows: list[dict[str, Any]] = []
    parsed: list[tuple[dict[str, Any], Structure]] = []
    for ident, text, reason in items:
        row: dict[str, Any] = {c: None for c in COLUMNS}
        row.update(id=ident, potential=pot.label, band_gap_model=model.name, reason=reason)
        rows.append(row)
        if text is None:
            continue
        try:
            structure = _parse(text)
        except Exception as exc:
            row["reason"] = f"unreadable CIF: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            continue
        row.update(formula=structure.composition.reduced_formula, n_sites=len(structure))
        parsed.append((row, structure))
    for start in range(0, len(parsed), BATCH):
        chunk = parsed[start : start + BATCH]
        structures = [s for _, s in chunk]
        gaps = _predict_gaps(model, structures)
        evaluations = pot.evaluate([AseAtomsAdaptor.get_atoms(s) for s in structures])
        for (row, structure), gap, ev in zip(chunk, gaps, evaluations):
            problems = []
            if gap is not None and math.isfinite(gap.band_gap):
                row.update(
                    band_gap=round(gap.band_gap, 4),
                    band_gap_std=round(gap.band_gap_std, 4),
                    is_metal=bool(gap.band_gap < METAL_GAP),
                )
            else:
                problems.append(
                    "band gap not predicted (see the log)"
                    if gap is None
                    else "band gap not predicted (CHGNet graph failed)"
                )
            if ev.finite:
                row["energy_per_atom"] = round(ev.energy / len(structure), 5)
                try:
                    row["e_form"] = round(formation_energy(structure.composition, ev.energy, refs), 5)
                except InputError as exc:
                    problems.append(str(exc))
            else:
                problems.append(ev.error or "non-finite energy")
            row["reason"] = "; ".join(problems) or None
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    with atomic_path(Path(output)) as tmp:
        frame.to_csv(tmp, index=False)
    done = int(frame.reason.isna().sum())
    logger.info("properties: %d/%d crystals in %.1f s -> %s", done, len(frame), time.perf_counter() - t0, output)
    return frame
