"""The screening stage: (pre-relax →) ML-potential relaxation → stability → checks → ranked output.

``screen(source, out)`` reads candidates from a folder of CIFs or an index (JSONL/CSV with a
``cif_path`` column, relative to the index; optional ``id`` and ``spacegroup`` (the requested
group) columns), relaxes them in batches (:mod:`xtalagent.tools.relax`), scores formation energy
and e_hull (:mod:`xtalagent.tools.hull`), runs the checks (:mod:`xtalagent.tools.checks`) and
writes to ``out``:

* ``cifs/NNNN_<id>.cif`` — relaxed structures ranked (those in the band-gap window, when one is
  given, first; then by e_hull), written with symmetry;
* ``summary.csv`` / ``summary.json`` — one row per candidate (failures included, with reason);
  every energy row names the potential and checkpoint that produced it;
* ``ehull.png`` — distribution of e_hull;
* ``cache/<id>.json`` — per-structure results, written atomically the moment a structure is done.
  Re-running with the same settings reuses them, so an interrupt (Ctrl-C) loses nothing finished;
  changed settings or a changed input CIF invalidate a structure's cache entry.

When no requested group is given, the group detected on the input structure is the requested one.
With a band-gap model (:mod:`xtalagent.tools.band_gap`), every relaxed structure also gets its
predicted PBE band gap and the ensemble's spread (``band_gap``, ``band_gap_std``), and, when a
window is given, ``meets_band_gap``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from xtalagent import config
from xtalagent.errors import InputError
from xtalagent.io import write_json_atomic
from xtalagent.symmetry import crystal_system, detect_spacegroup
from xtalagent.tools import checks
from xtalagent.tools import relax as relaxation
from xtalagent.tools.hull import ReferenceHull, StabilityModel
from xtalagent.tools.potentials import Potential, load_potential
from xtalagent.tools.screen_input import read_candidates
from xtalagent.tools.screen_outputs import plot_ehull, symmetry_summary, write_outputs
from xtalagent.tools.screen_records import (
    CACHE_VERSION,
    SUMMARY_COLUMNS,
    ScreenReport,
    ScreenSettings,
    StructureCandidate,
)
from xtalagent.tools.settings import RelaxSettings

__all__ = [
    "CACHE_VERSION", "SUMMARY_COLUMNS", "ScreenReport", "ScreenSettings", "StructureCandidate",
    "plot_ehull", "read_candidates", "screen", "screen_command", "symmetry_summary", "write_outputs",
]  # fmt: skip

if TYPE_CHECKING:
    from xtalagent.tools.distributed import RayOptions

logger = logging.getLogger(__name__)


# --- input ----------------------------------------------------------------------------------------
# --- per-structure scoring ------------------------------------------------------------------------
def _score(
    cand: StructureCandidate,
    result: relaxation.RelaxResult | None,
    potential: Potential | None,
    stability: StabilityModel | None,
    settings: ScreenSettings,
    failure: str | None = None,
) -> dict[str, Any]:
    """One summary row (without batch-level flags) for a finished structure."""
    row: dict[str, Any] = {
        "id": cand.id,
        "source": cand.source,
        "requested_spacegroup": cand.requested_spacegroup,
        "status": "failed",
        "failure": failure,
    }
    if potential is not None:
        row |= {"potential": potential.name, "checkpoint": potential.checkpoint, "reportable": potential.reportable}
    structure = cand.structure
    if structure is not None:
        row |= {"formula": structure.composition.reduced_formula, "natoms": len(structure)}
        if cand.requested_spacegroup:
            row["crystal_system"] = crystal_system(cand.requested_spacegroup)
    if result is None or failure:
        return row
    row |= {
        "status": result.status,
        "failure": result.failure,
        "steps": result.steps,
        "fmax": result.fmax,
        "seconds": round(result.seconds, 2),
    }
    if not result.ok:
        return row
    final = AseAtomsAdaptor.get_structure(result.atoms)
    row["final_structure"] = final.as_dict()
    row["energy_eV"] = result.energy
    row["energy_per_atom"] = result.energy_per_atom
    row["final_spacegroup"] = detect_spacegroup(final, settings.symprec)
    if cand.requested_spacegroup:
        row["symmetry_kept"] = row["final_spacegroup"] == cand.requested_spacegroup
    valid = checks.structure_validity(final)
    row["valid_structure"] = valid.ok
    row["valid_composition"] = checks.composition_validity(final.composition).ok
    reasons = [] if valid.ok else [valid.reason]
    if stability is not None:
        try:
            row["e_form"], row["e_hull"] = stability.evaluate(final.composition, result.energy)
        except InputError as exc:
            reasons.append(str(exc))
    if settings.phonons and potential is not None:
        try:
            ph = checks.gamma_phonons(result.atoms, potential)
            row |= {"phonon_stable": ph.stable, "phonon_min_thz": ph.min_frequency_thz}
        except Exception as exc:
            reasons.append(f"phonons failed: {exc}")
    if reasons:
        row["check_notes"] = "; ".join(reasons)
    return row


@dataclass
class StructureScreener:
    """The per-structure half of screening: relax candidates and turn each into its summary row.

    Why a separate object: the same screener runs in-process (serial) and on Ray workers
    (:mod:`xtalagent.tools.distributed`), which unpickle it once and keep it, so a worker loads
    the potential once, not per structure. ``potential`` None means "load ``settings.potential`` /
    ``settings.checkpoint`` on first use": a Ray worker then loads its own copy instead of
    receiving the driver's. Rows depend on nothing else, so where they are computed does not
    change them; the batch-level flags (rank, uniqueness, novelty) stay with the caller.
    """

    settings: ScreenSettings
    potential: Potential | None = None
    stability: StabilityModel | None = None
    band_gap_model: Any | None = None
    batch_size: int = 16

    def loaded_potential(self) -> Potential:
        if self.potential is None:
            self.potential = load_potential(
                self.settings.potential, self.settings.checkpoint, batch_size=self.batch_size
            )
        return self.potential

    def run(
        self, cands: Sequence[StructureCandidate], on_row: Callable[[StructureCandidate, dict[str, Any]], None]
    ) -> None:
        """Relax (or single-point) ``cands`` in batches; ``on_row(cand, row)`` as each one finishes.

        A candidate with ``error`` set (unreadable CIF, failed pre-relaxation) gets its failed row
        without being relaxed.
        """
        settings, potential = self.settings, self.loaded_potential()
        runnable: list[StructureCandidate] = []
        for cand in cands:
            if cand.error or cand.structure is None:
                on_row(cand, self.row(cand, None, cand.error or "no structure"))
            else:
                runnable.append(cand)
        atoms = [AseAtomsAdaptor.get_atoms(c.structure) for c in runnable]  # type: ignore[arg-type]  # all parsed
        if runnable and settings.relax:
            relaxation.relax_batch(
                atoms,
                potential,
                fmax=settings.fmax,
                max_steps=settings.max_steps,
                timeout=settings.timeout,
                symmetric=settings.symmetric,
                batch_size=self.batch_size,
                optimizer=settings.optimizer,
                on_done=lambda res: on_row(runnable[res.index], self.row(runnable[res.index], res)),
            )
        elif runnable:  # single points on the input structures
            for i0 in range(0, len(atoms), self.batch_size):
                chunk = atoms[i0 : i0 + self.batch_size]
                for j, ev in enumerate(potential.evaluate(chunk)):
                    res = relaxation.RelaxResult(i0 + j, chunk[j], status="single_point", energy=ev.energy)
                    if not ev.finite:
                        res.status, res.failure = "failed", ev.error or "non-finite energy or forces (NaN/inf)"
                    on_row(runnable[i0 + j], self.row(runnable[i0 + j], res))

    def row(
        self, cand: StructureCandidate, result: relaxation.RelaxResult | None, failure: str | None = None
    ) -> dict[str, Any]:
        """One summary row (without batch-level flags): energies, checks, stability, band gap."""
        row = _score(cand, result, self.potential, self.stability, self.settings, failure)
        if self.band_gap_model is not None and row.get("final_structure"):
            row |= predict_band_gap(self.band_gap_model, Structure.from_dict(row["final_structure"]))
        return row


def _cache_path(out: Path, cid: str) -> Path:
    return out / "cache" / f"{cid}.json"


def _load_cached(out: Path, cand: StructureCandidate, key: str) -> dict[str, Any] | None:
    path = _cache_path(out, cand.id)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("settings_key") != key or data.get("input_hash") != cand.input_hash:
        return None
    return data["row"]


def _save(out: Path, cand: StructureCandidate, key: str, row: dict[str, Any]) -> None:
    write_json_atomic(
        _cache_path(out, cand.id), {"settings_key": key, "input_hash": cand.input_hash, "row": _jsonable(row)}
    )


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, float) and not np.isfinite(v):
            return None
        return v

    return {k: conv(v) for k, v in row.items()}


# --- the stage ------------------------------------------------------------------------------------
def screen(
    source: Path | str | Sequence[StructureCandidate],
    out: Path | str,
    *,
    potential: str | Potential = "auto",
    checkpoint: str | None = None,
    relax_structures: bool = True,
    symmetric: bool = True,
    fmax: float = RelaxSettings.fmax,
    max_steps: int = RelaxSettings.max_steps,
    timeout: float = RelaxSettings.timeout,
    optimizer: str = RelaxSettings.optimizer,
    batch_size: int = RelaxSettings.batch_size,
    stability: bool = True,
    hull_table: Path | str | None = None,
    references: Sequence[Structure] | None = None,
    phonons: bool = False,
    stable_threshold: float = checks.STABLE_E_HULL,
    symprec: float = config.CHECK_SYMPREC,
    prerelax: Callable[[Structure], Structure] | None = None,
    limit: int | None = None,
    plot: bool = True,
    progress: Callable[[dict[str, Any]], None] | None = None,
    band_gap_model: Any | None = None,
    band_gap_window: tuple[float | None, float | None] | None = None,
    ray: RayOptions | str | None = None,
) -> ScreenReport:
    """Screen candidates; see the module docstring for inputs and outputs.

    ``prerelax`` (e.g. LEGO descriptor pre-relaxation) maps a structure to a pre-relaxed one before
    the ML relaxation; ``progress`` is called with each finished row (cached ones included).
    ``band_gap_model`` (a :class:`~xtalagent.tools.band_gap.BandGapModel`) adds the predicted gap
    of every relaxed structure; ``band_gap_window`` (eV, either side open) adds ``meets_band_gap``
    and ranks the structures inside the window first.
    ``ray`` (a :class:`~xtalagent.tools.distributed.RayOptions` or a cluster address; ``"local"``
    starts a local Ray instance) relaxes and scores the structures on a Ray cluster instead of in
    this process; rows, cache and outputs are the same.
    """
    start = time.perf_counter()
    if ray is not None:
        from xtalagent.tools.distributed import require_ray

        require_ray()  # fail before any work when the extra is missing
    if optimizer not in relaxation.OPTIMIZERS:
        raise InputError(f"unknown optimizer {optimizer!r} (choose from {', '.join(relaxation.OPTIMIZERS)})")
    out = Path(out)
    if isinstance(source, Sequence) and not isinstance(source, str):
        cands = list(source)
    else:
        cands = read_candidates(source, limit)
    if not cands:
        raise InputError("no candidates to screen")
    pot_obj = potential if isinstance(potential, Potential) else None
    settings = ScreenSettings(
        potential=pot_obj.label if pot_obj else str(potential),
        checkpoint=checkpoint,
        relax=relax_structures,
        symmetric=symmetric,
        fmax=fmax,
        max_steps=max_steps,
        timeout=timeout,
        optimizer=optimizer,
        stability=stability,
        hull_table=str(hull_table) if hull_table else None,
        phonons=phonons,
        symprec=symprec,
        prerelax=getattr(prerelax, "__qualname__", repr(prerelax)) if prerelax else None,
        band_gap_model=band_gap_model.name if band_gap_model is not None else None,
    )
    key = settings.key()
    rows: dict[str, dict[str, Any]] = {}
    todo: list[StructureCandidate] = []
    for cand in cands:
        cached = _load_cached(out, cand, key)
        if cached is not None:
            rows[cand.id] = cached
            if progress:
                progress(cached)
        else:
            todo.append(cand)
    n_cached = len(rows)

    stab = None
    if stability and todo:
        stab = StabilityModel(ReferenceHull.from_csv(hull_table) if hull_table else None)
    screener = StructureScreener(
        settings, potential=pot_obj, stability=stab, band_gap_model=band_gap_model, batch_size=batch_size
    )
    prerelaxed: dict[str, dict[str, Any]] = {}  # id -> what the pre-relaxation hook reported

    def finish(cand: StructureCandidate, row: dict[str, Any]) -> None:
        """Called in this process for every finished structure, wherever it was relaxed: saved at once."""
        row = row | prerelaxed.get(cand.id, {})
        _save(out, cand, key, row)
        rows[cand.id] = _jsonable(row)
        if progress:
            progress(rows[cand.id])

    if prerelax is not None:
        todo = [_prerelaxed(cand, prerelax, prerelaxed) for cand in todo]
    provenance: dict[str, Any] | None = None
    extra: dict[str, Any] = {}  # report.extra: how a Ray run went
    if todo and ray is not None:
        from xtalagent.tools import distributed

        ray_run = distributed.screen_on_ray(screener, todo, on_row=finish, options=distributed.RayOptions.of(ray))
        provenance, extra["ray"] = ray_run.provenance, ray_run.as_dict()
    elif todo:
        screener.run(todo, finish)
        provenance = screener.loaded_potential().provenance

    ordered = [rows[c.id] for c in cands]
    for row in ordered:
        row["meets_band_gap"] = in_window(row.get("band_gap"), band_gap_window)
    batch_flags(ordered, references, stable_threshold)
    provenance = provenance or (pot_obj.provenance if pot_obj else _provenance_from_rows(ordered))
    report = ScreenReport(
        out=out,
        rows=ordered,
        n_candidates=len(cands),
        n_cached=n_cached,
        n_relaxed=len(todo),
        n_failed=sum(r["status"] == "failed" for r in ordered),
        sun_rate=checks.sun_rate(
            [r.get("stable") for r in ordered],
            [r.get("unique", False) for r in ordered],
            [r.get("novel") for r in ordered],
        ),
        symmetry_by_system=symmetry_summary(ordered),
        provenance=provenance,
        seconds=time.perf_counter() - start,
        extra={"stable_threshold": stable_threshold, **extra},
    )
    write_outputs(report, settings, stab, symprec, plot)
    return report


def _prerelaxed(
    cand: StructureCandidate, hook: Callable[[Structure], Structure], outcomes: dict[str, dict[str, Any]]
) -> StructureCandidate:
    """``cand`` with its pre-relaxed structure (or its failure as ``error``); the hook's report of
    each structure goes to ``outcomes``."""
    if cand.error or cand.structure is None:
        return cand
    try:
        structure = hook(cand.structure)
    except Exception as exc:
        return replace(cand, error=f"pre-relaxation failed: {type(exc).__name__}: {exc}")
    outcome = getattr(hook, "last_result", None)  # set by tools.prerelax.structure_hook
    if outcome is not None:
        outcomes[cand.id] = {
            "prerelax_reached": outcome.reached,
            "prerelax_used": outcome.failure is None and bool(outcome.cif),
            "prerelax_failure": outcome.failure,
        }
    return replace(cand, structure=structure)


def predict_band_gap(model: Any, structure: Structure) -> dict[str, Any]:
    """The band-gap columns of one relaxed structure (a failed prediction is noted, not fatal)."""
    try:
        pred = model.predict([structure])[0]
    except Exception as exc:  # the row keeps its energies; the gap is reported missing with the cause
        return {"band_gap": None, "band_gap_std": None, "band_gap_failure": f"{type(exc).__name__}: {exc}"}
    if not (np.isfinite(pred.band_gap) and np.isfinite(pred.band_gap_std)):
        return {"band_gap": None, "band_gap_std": None, "band_gap_failure": "the model could not featurise it"}
    return {"band_gap": round(pred.band_gap, 4), "band_gap_std": round(pred.band_gap_std, 4)}


def in_window(value: float | None, window: tuple[float | None, float | None] | None) -> bool | None:
    """Whether a value lies in ``window`` (None when there is no window or no value)."""
    if window is None or value is None:
        return None
    lo, hi = window
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _provenance_from_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = sorted({(r.get("potential"), r.get("checkpoint")) for r in rows if r.get("potential")})
    return {"potentials": [{"potential": p, "checkpoint": c} for p, c in pairs]}


def batch_flags(rows: list[dict[str, Any]], references: Sequence[Structure] | None, threshold: float) -> None:
    """Add rank, stable, unique, novel, sun to rows in place (uniqueness favours lower e_hull)."""
    ok = [r for r in rows if r.get("status") in relaxation.OK_STATUSES and r.get("final_structure")]
    score = "e_hull" if all(r.get("e_hull") is not None for r in ok) else "energy_per_atom"
    ok.sort(
        key=lambda r: (
            r.get("meets_band_gap") is False,
            r.get(score) is None,
            r.get(score) if r.get(score) is not None else 0.0,
        )
    )
    structures = [Structure.from_dict(r["final_structure"]) for r in ok]
    uniq = checks.unique_flags(structures)
    novel = checks.novel_flags(structures, references) if references is not None else [None] * len(ok)
    for rank, (r, u, n) in enumerate(zip(ok, uniq, novel), start=1):
        r["rank"], r["unique"], r["novel"] = rank, u, n
        valid = bool(r.get("valid_structure")) and bool(r.get("valid_composition"))
        r["stable"] = None if r.get("e_hull") is None else bool(r["e_hull"] <= threshold and valid)
        r["sun"] = None if (r["stable"] is None or n is None) else bool(r["stable"] and u and n)
    ok_ids = {id(r) for r in ok}
    for r in rows:
        if id(r) not in ok_ids:
            r.update(rank=None, unique=False, novel=None, stable=False, sun=False if references is not None else None)


def screen_command(
    source: Path,
    out: Path,
    *,
    potential: str = "auto",
    checkpoint: str | None = None,
    relax: bool = True,
    symmetric: bool = True,
    fmax: float = RelaxSettings.fmax,
    max_steps: int = RelaxSettings.max_steps,
    timeout: float = RelaxSettings.timeout,
    batch_size: int = RelaxSettings.batch_size,
    stability: bool = True,
    hull_table: Path | None = None,
    optimizer: str = RelaxSettings.optimizer,
    references: Path | None = None,
    phonons: bool = False,
    limit: int | None = None,
    threads: int | None = 1,
    prerelax: Callable[[Structure], Structure] | None = None,
    band_gap: bool = True,
    band_gap_min: float | None = None,
    band_gap_max: float | None = None,
    ray: RayOptions | str | None = None,
    echo: Callable[[str], None] = logger.info,
) -> ScreenReport:
    """CLI body for ``xtalagent screen SOURCE -o OUT`` (wrap with typer); ``echo`` takes the short
    summary's lines (the CLI prints them; a library caller gets log records).

    ``band_gap`` adds the shipped band-gap model's prediction to every row (skipped, with a note,
    when the model is absent); ``band_gap_min``/``band_gap_max`` (eV) add ``meets_band_gap``.
    ``ray``: a Ray cluster address (``local`` starts one here) or options to relax and score on.
    """
    from xtalagent.tools.potentials import limit_threads

    if ray is not None:
        from xtalagent.tools.distributed import require_ray

        require_ray()  # before the band-gap model is loaded
    limit_threads(threads)
    window = None
    if band_gap_min is not None or band_gap_max is not None:
        if not band_gap:
            raise InputError("a band-gap window needs the band-gap model (drop --no-band-gap)")
        if band_gap_min is not None and band_gap_max is not None and band_gap_min > band_gap_max:
            raise InputError(f"band-gap window is empty: minimum {band_gap_min} > maximum {band_gap_max}")
        window = (band_gap_min, band_gap_max)
    gap_model = None
    if band_gap:
        from xtalagent.tools.band_gap import default_band_gap_model

        # what users get (trained on every split); loads its own CHGNet: screening may use another potential
        gap_model = default_band_gap_model(variant="release")
        if gap_model is None and window is not None:
            raise InputError("a band-gap window was given but no band-gap model is installed")
    refs = None
    if references is not None:
        refs = [c.structure for c in read_candidates(references) if c.structure is not None]
    report = screen(
        source,
        out,
        potential=potential,
        checkpoint=checkpoint,
        relax_structures=relax,
        symmetric=symmetric,
        fmax=fmax,
        max_steps=max_steps,
        timeout=timeout,
        optimizer=optimizer,
        batch_size=batch_size,
        stability=stability,
        hull_table=hull_table,
        references=refs,
        phonons=phonons,
        limit=limit,
        prerelax=prerelax,
        band_gap_model=gap_model,
        band_gap_window=window,
        ray=ray,
    )
    ok = report.n_candidates - report.n_failed
    prov = report.provenance
    echo(
        f"screened {report.n_candidates} candidates ({report.n_cached} from cache, {report.n_failed} failed) "
        f"with {prov.get('potential', '?')}:{prov.get('checkpoint', '?')} in {report.seconds:.1f} s -> {out}"
    )
    stable = sum(bool(r.get("stable")) for r in report.rows)
    echo(f"stable (e_hull <= {checks.STABLE_E_HULL} eV/atom): {stable}/{ok}; S.U.N. rate: {report.sun_rate}")
    for system, entry in sorted(report.symmetry_by_system.items()):
        echo(f"  {system}: space group kept {entry['kept']}/{entry['n']}")
    if gap_model is not None:
        line = f"band gaps (PBE level) by {gap_model.name}"
        if window is not None:
            line += f"; in the window: {sum(bool(r.get('meets_band_gap')) for r in report.rows)}/{ok}"
        echo(line)
    return report
