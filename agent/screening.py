"""Stage 4 of a design round: screening, the known phases beside the candidates, the user's
wishes checked on every row, and the ranking."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from xtalagent.agent.design_records import DesignRun, DesignSettings, GeneratedStructure
from xtalagent.agent.request import DesignRequest, PropertyTarget
from xtalagent.agent.stages import read_structure
from xtalagent.errors import InputError
from xtalagent.symmetry import crystal_system


# --- stage 4: screening ---------------------------------------------------------------------------
def known_phases(
    request: DesignRequest, variant: str = "release", limit: int = 8, settings: DesignSettings | None = None
) -> list[Any]:
    """The known crystals of the requested chemistry that answer the request best: the same reduced
    composition for formula and ratio requests, the same element set for elements-only requests.

    Ordered as a scientist would read them: crystals within 0.1 eV/atom of the hull (Materials
    Project values) first, among them those whose database band gap / formation energy lie
    closest to the wish windows (distance in window half-widths), then by E_hull. Lookup data of
    the shipped reference set (all splits for ``release``).
    """
    from xtalagent.tools.reference_set import with_elements, with_formula

    if not request.has_composition() or limit <= 0:
        return []
    settings = settings or DesignSettings()
    composition = request.formula or request.composition
    if composition:
        hits = with_formula(composition, variant=variant)
    else:
        hits = with_elements(request.composition_elements(), exact=True, variant=variant)
    wishes = [
        (wish_window(request.band_gap, settings.band_gap_window), settings.band_gap_window, "band_gap"),
        (wish_window(request.formation_energy, settings.formation_energy_window),
         settings.formation_energy_window, "formation_energy"),
    ]  # fmt: skip

    def miss(crystal) -> float:
        total = 0.0
        for window, width, name in wishes:
            if window is None:
                continue
            value = getattr(crystal, name)
            if value is None:
                total += 10.0
                continue
            total += outside_window(value, window) / width
        return total

    def key(crystal) -> tuple:
        e_hull = crystal.e_above_hull if crystal.e_above_hull is not None else 9.0
        return e_hull > 0.1, round(miss(crystal), 3), e_hull

    return sorted(hits, key=key)[:limit]


def load_band_gap_model(settings: DesignSettings, potential: Any = None) -> Any | None:
    """The shipped band-gap model of the run's knowledge variant (``release``: trained on every
    split; ``eval``: train only), or None when switched off or not installed. A loaded CHGNet
    potential lends it its network, so the features cost no second copy of CHGNet."""
    if not settings.band_gap:
        return None
    from xtalagent.tools.band_gap import default_band_gap_model

    chgnet = potential if getattr(potential, "name", None) == "chgnet" else None
    return default_band_gap_model(chgnet=chgnet, variant=settings.variant)


def screen_structures(
    structures: list[GeneratedStructure],
    prerelaxed: list[dict[str, Any]],
    request: DesignRequest,
    settings: DesignSettings,
    out: Path,
    progress: Callable[[dict[str, Any]], None] | None = None,
    potential=None,
):
    """Relax with the ML potential, score stability, band gap and flags; returns the screening
    report of the candidates and the screened rows of the known phases (same potential, same hull)."""
    from xtalagent.tools.reference_set import with_elements
    from xtalagent.tools.screen import StructureCandidate, screen

    used = {r["id"]: r["cif"] for r in prerelaxed if r.get("used")}
    cands = []
    for s in structures:
        if not s.ok or not s.selected:
            continue
        path = out / used.get(s.id, s.cif)
        text = path.read_text()
        cands.append(
            StructureCandidate(
                id=s.id, source=str(path.relative_to(out)), cif_text=text, structure=read_structure(path),
                requested_spacegroup=s.spacegroup,
            )
        )  # fmt: skip
    if not cands:
        raise InputError("no structure passed generation, nothing to screen")
    elements = request.composition_elements()
    known_all = with_elements(elements, exact=True, variant=settings.variant) if request.has_composition() else []
    references = [k.structure() for k in known_all] or None
    pot = load_round_potential(settings, potential)
    gap_model = load_band_gap_model(settings, pot)
    gap_window = wish_window(request.band_gap, settings.band_gap_window)
    common = dict(
        potential=pot,
        checkpoint=settings.potential_checkpoint,
        max_steps=settings.relax_max_steps,
        fmax=settings.relax_fmax,
        band_gap_model=gap_model,
        band_gap_window=gap_window,
        ray=settings.ray_address,
    )
    report = screen(cands, out, references=references, progress=progress, **common)
    if gap_model is not None:  # the report names it and quotes its measured error
        report.extra["band_gap_model"] = {"name": gap_model.name, "metrics": dict(gap_model.metrics)}
    phases = known_phases(request, settings.variant, settings.known_phases, settings)
    known_rows: list[dict[str, Any]] = []
    if phases:
        known_cands = [
            StructureCandidate(id=f"K{i + 1}", source=f"known:{k.id}", cif_text=k.id, structure=k.structure(),
                      requested_spacegroup=k.spacegroup)
            for i, k in enumerate(phases)
        ]  # fmt: skip
        known_report = screen(known_cands, out / "known", plot=False, **common)
        for k, row in zip(phases, known_report.rows):
            row = {key: v for key, v in row.items() if key not in ("final_structure", "rank", "unique", "novel", "sun")}
            row |= {
                "kind": "known",
                "source": f"known:{k.id}",
                "material_id": k.id,
                "db_formation_energy": k.formation_energy,
                "db_e_hull": k.e_above_hull,
                "db_band_gap": k.band_gap,
                "db_split": k.split,
                "cif": f"known/{row['cif']}" if row.get("cif") else None,
            }
            known_rows.append(row)
    return report, known_rows


def load_round_potential(settings: DesignSettings, potential: Any = None) -> Any:
    """The loaded potential of a round: the one given (tests, a chat reusing it), else the settings'."""
    from xtalagent.tools.potentials import Potential, load_potential

    pot = potential or settings.potential
    return pot if isinstance(pot, Potential) else load_potential(str(pot), settings.potential_checkpoint)


def triage_order(
    e_forms: list[float], request: DesignRequest, settings: DesignSettings, e_hulls: list[float] | None = None
) -> list[int]:
    """Indices of generated structures, most promising first, from single-point energies.

    With a formation-energy wish the structures inside its window come first, then by distance to
    the window; among equals, and without such a wish, the lowest energy above the shipped hull
    first (the lowest formation energy when no hull value is given): lower energy right after
    generation goes with lower energy, and lower E_hull, after relaxation. E_hull rather than the
    formation energy so that an elements-only round does not favour its most negative composition.
    Tuned on MP ``val`` requests (bench/experiments/2026-12-design-triage).
    """
    window = wish_window(request.formation_energy, settings.formation_energy_window)
    energy = e_hulls if e_hulls is not None else e_forms

    def miss(e: float) -> float:
        return 0.0 if window is None else outside_window(e, window)

    return sorted(range(len(e_forms)), key=lambda i: (round(miss(e_forms[i]), 3), energy[i]))


def triage_structures(
    structures: list[GeneratedStructure], keep: int, request: DesignRequest, settings: DesignSettings, out: Path,
    potential: Any, prerelaxed: list[dict[str, Any]] | None = None,
) -> None:  # fmt: skip
    """Mark all but the ``keep`` most promising passed structures as not selected for relaxation
    (:func:`triage_order` on the potential's single-point energies)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    from xtalagent.tools.hull import ReferenceHull, formation_energy, load_element_refs

    used = {r["id"]: r["cif"] for r in prerelaxed or [] if r.get("used")}
    todo = [s for s in structures if s.ok and s.triage_e_form is None]
    if not todo:
        return
    crystals = [read_structure(out / used.get(s.id, s.cif)) for s in todo]
    evaluations = potential.evaluate([AseAtomsAdaptor.get_atoms(c) for c in crystals])
    refs, hull = load_element_refs(), ReferenceHull.default()
    e_hulls = []
    for s, crystal, ev in zip(todo, crystals, evaluations):
        s.triage_e_form = round(formation_energy(crystal.composition, ev.energy, refs), 5) if ev.finite else 9.0
        e_hulls.append(hull.e_above_hull(crystal.composition, s.triage_e_form) if ev.finite else 9.0)
    order = triage_order([s.triage_e_form or 9.0 for s in todo], request, settings, e_hulls)
    for rank, i in enumerate(order):
        todo[i].selected = rank < keep


def screen_summary(report) -> dict[str, Any]:
    """The batch-level screening facts a design run keeps (provenance, S.U.N. rate, symmetry kept)."""
    return {
        "provenance": report.provenance,
        "sun_rate": report.sun_rate,
        "n_failed": report.n_failed,
        "symmetry_kept_by_crystal_system": report.symmetry_by_system,
        "stable_threshold": report.extra.get("stable_threshold"),
    }


def outside_window(value: float, window: tuple[float | None, float | None]) -> float:
    """How far ``value`` lies outside ``window`` (0 inside; an open side never misses); what ranks
    the known phases and the triage by closeness to a wish."""
    lo, hi = window
    return max(0.0, (lo if lo is not None else value) - value, value - (hi if hi is not None else value))


def wish_window(target: PropertyTarget | None, half_width: float) -> tuple[float | None, float | None] | None:
    """The interval a property wish is checked in: its tolerance or bounds, or, for a bare value
    ("near 3 eV"), the value ± ``half_width``. None when there is no wish."""
    if target is None:
        return None
    lo, hi = target.bounds()
    if target.value is not None and lo is None and hi is None:
        return target.value - half_width, target.value + half_width
    return lo, hi


def pbe_request(request: DesignRequest, offset: float) -> DesignRequest:
    """The request with its band-gap wish moved down by ``offset`` eV (a measured gap read as the
    PBE gap the models know); unchanged for offset 0 or no band-gap wish."""
    if not offset or request.band_gap is None:
        return request

    def shift(x: float | None) -> float | None:
        return None if x is None else max(0.0, x - offset)

    gap = request.band_gap
    moved = gap.model_copy(update={"value": shift(gap.value), "minimum": shift(gap.minimum),
                                   "maximum": shift(gap.maximum)})  # fmt: skip
    return request.model_copy(update={"band_gap": moved})


def target_flags(row: dict[str, Any], request: DesignRequest, settings: DesignSettings | None = None) -> dict[str, Any]:
    """Which of the user's wishes a screened row meets (None: cannot be checked)."""
    from xtalagent.tools.screen import in_window

    settings = settings or DesignSettings()
    flags: dict[str, Any] = {}
    if request.band_gap is not None:
        flags["meets_band_gap"] = in_window(row.get("band_gap"), wish_window(request.band_gap,
                                                                              settings.band_gap_window))  # fmt: skip
    if request.formation_energy is not None:
        window = wish_window(request.formation_energy, settings.formation_energy_window)
        flags["meets_formation_energy"] = in_window(row.get("e_form"), window)
    if request.stable:
        flags["meets_stability"] = row.get("stable")
    final = row.get("final_spacegroup")
    if final and (request.crystal_systems or request.spacegroups):
        ok = (not request.spacegroups or final in request.spacegroups) and (
            not request.crystal_systems or crystal_system(final) in request.crystal_systems
        )
        flags["meets_symmetry"] = ok
    checked = [v for v in flags.values() if v is not None]
    flags["meets_all_checked"] = all(checked) if checked else None
    return flags


def rank_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Screened rows, best first: relaxed ones meeting the checked wishes, then by e_hull."""

    def key(r: dict[str, Any]) -> tuple:
        relaxed = r.get("rank") is not None
        meets = r.get("meets_all_checked")
        e = r.get("e_hull")
        if e is None:
            e = r.get("energy_per_atom")
        return (not relaxed, meets is False, e is None, e if e is not None else 0.0)

    ordered = sorted(rows, key=key)
    for i, r in enumerate(ordered, start=1):
        r["design_rank"] = i if r.get("rank") is not None else None
    return ordered


def record_screening(run: DesignRun, report, known: list[dict[str, Any]]) -> None:
    """Keep a screening's outcome on the run: ranked candidate rows, known-phase rows, provenance."""
    run.screen_summary = screen_summary(report)
    run.rows = finish_rows(report.rows, run, run.request)
    run.known_rows = [r | target_flags(r, run.request, run.settings) for r in known]
    gap_model = report.extra.get("band_gap_model")
    if gap_model and any(r.get("band_gap") is not None for r in run.rows + run.known_rows):
        run.band_gap_model, run.band_gap_metrics = gap_model["name"], gap_model["metrics"]


def finish_rows(rows: list[dict[str, Any]], run: DesignRun, request: DesignRequest) -> list[dict[str, Any]]:
    """Screen rows joined with their constraint and pre-relaxation outcome, target flags, ranked."""
    by_id = {s.id: s for s in run.structures}
    pre = {r["id"]: r for r in run.prerelax}
    out = []
    for row in rows:
        row = {k: v for k, v in row.items() if k != "final_structure"}
        s = by_id.get(row["id"])
        if s is not None:
            row["constraint_id"] = s.constraint_id
            row["sampler"] = s.sampler
        row["input_cif"], row["source"] = row.get("source"), "generated"
        p = pre.get(row["id"])
        row["prerelaxed"] = bool(p and p.get("used"))
        row["prerelax_reached"] = p.get("reached") if p else None
        row["kind"] = "candidate"
        row |= target_flags(row, request, run.settings)
        out.append(row)
    return rank_rows(out)
