"""What the screening stage writes: ranked CIFs, summary.csv/json and the E_hull histogram."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pymatgen.core import Structure

from xtalagent.io import atomic_path, write_json_atomic, write_text_atomic
from xtalagent.tools import checks
from xtalagent.tools.hull import StabilityModel
from xtalagent.tools.screen_records import SUMMARY_COLUMNS, ScreenReport, ScreenSettings


def symmetry_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per crystal system (of the requested group): relaxed crystals and how many kept their group."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        if r.get("symmetry_kept") is None or not r.get("crystal_system"):
            continue
        entry = out.setdefault(r["crystal_system"], {"n": 0, "kept": 0})
        entry["n"] += 1
        entry["kept"] += int(bool(r["symmetry_kept"]))
    for entry in out.values():
        entry["fraction_kept"] = entry["kept"] / entry["n"]
    return out


def write_outputs(
    report: ScreenReport, settings: ScreenSettings, stab: StabilityModel | None, symprec: float, plot: bool
) -> None:
    """Ranked CIFs, summary.csv/json and the e_hull histogram (all written atomically)."""
    from pymatgen.io.cif import CifWriter

    out = report.out
    cif_dir = out / "cifs"
    cif_dir.mkdir(parents=True, exist_ok=True)
    for old in cif_dir.glob("*.cif"):
        old.unlink()
    for r in report.rows:
        r["cif"] = None
        if r.get("rank") is None:
            continue
        structure = Structure.from_dict(r["final_structure"])
        name = f"{r['rank']:04d}_{r['id']}.cif"
        try:
            text = str(CifWriter(structure, symprec=symprec))
        except Exception:  # symmetry analysis failed: write P1 rather than nothing
            text = str(CifWriter(structure))
        write_text_atomic(cif_dir / name, text)
        r["cif"] = f"cifs/{name}"
    table = [{c: r.get(c) for c in SUMMARY_COLUMNS} for r in report.rows]
    frame = pd.DataFrame(table, columns=SUMMARY_COLUMNS).sort_values("rank", na_position="last")
    with atomic_path(out / "summary.csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    summary = {
        "n_candidates": report.n_candidates,
        "n_failed": report.n_failed,
        "n_from_cache": report.n_cached,
        "sun_rate": report.sun_rate,
        "stable_threshold_eV_per_atom": report.extra.get("stable_threshold"),
        "symmetry_kept_by_crystal_system": report.symmetry_by_system,
        "provenance": report.provenance,
        "energy_reference": stab.description if stab else None,
        "settings": asdict(settings),
        "rows": [{k: v for k, v in r.items() if k != "final_structure"} for r in report.rows],
    }
    write_json_atomic(out / "summary.json", summary)
    if plot:
        threshold = report.extra.get("stable_threshold", checks.STABLE_E_HULL)
        plot_ehull([r.get("e_hull") for r in report.rows], out / "ehull.png", report.provenance, threshold)


def plot_ehull(
    values: Sequence[float | None], path: Path, provenance: dict[str, Any], threshold: float = checks.STABLE_E_HULL
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if len(data):
        ax.hist(data, bins=min(40, max(5, len(data) // 3)), color="tab:blue", alpha=0.8)
    ax.axvline(threshold, color="tab:red", ls="--", lw=1, label=f"stable: <= {threshold:g} eV/atom")
    ax.set_xlabel("E above hull (eV/atom)")
    ax.set_ylabel("candidates")
    who = provenance.get("potential") or ", ".join(p["potential"] for p in provenance.get("potentials", []))
    ax.set_title(f"{len(data)} candidates, {who} {provenance.get('checkpoint', '')}".strip(), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
