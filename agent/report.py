"""``report.md``: what was asked, tried and found, in plain words, with the source of every number.

Written from a :class:`~xtalagent.agent.pipeline.DesignRun` only (no recomputation), so the report
can never disagree with ``summary.json``.
"""

from __future__ import annotations

from typing import Any

from xtalagent.agent.pipeline import DesignRun, wish_window
from xtalagent.io import write_text_atomic
from xtalagent.symmetry import spacegroup_symbol

#: Candidates listed in the report's table (all are in summary.csv).
REPORT_ROWS: int = 20


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def describe_request(run: DesignRun) -> list[str]:
    r = run.request
    lines = []
    if r.formula:
        lines.append(f"- composition: exactly {r.formula} in the conventional cell")
    elif r.composition:
        lines.append(f"- composition: {r.composition} (any number of formula units up to {r.max_atoms} atoms)")
    elif r.elements:
        lines.append(f"- elements: {', '.join(r.elements)} (ratio proposed by the model, up to {r.max_atoms} atoms)")
    s = run.settings
    if r.band_gap:
        window = _window(r.band_gap, s.band_gap_window)
        line = f"- band gap: {r.band_gap.describe('eV')} (PBE level), checked in {window} eV"
        if s.band_gap_offset:
            line += (
                f"; the request was read as a measured gap and moved down by {s.band_gap_offset:g} eV "
                "to the PBE gap the models know (--band-gap-offset)"
            )
        lines.append(line)
    if r.formation_energy:
        window = _window(r.formation_energy, s.formation_energy_window)
        lines.append(f"- formation energy: {r.formation_energy.describe('eV/atom')}, checked in {window} eV/atom")
    if r.stable:
        lines.append("- thermodynamically stable (on or near the convex hull)")
    if r.crystal_systems:
        lines.append(f"- crystal system: {' or '.join(r.crystal_systems)}")
    if r.spacegroups:
        lines.append(f"- space group: {', '.join(f'{spacegroup_symbol(g)} (#{g})' for g in r.spacegroups)}")
    for name, values in (
        ("elements", r.exclude_elements),
        ("space groups", r.exclude_spacegroups),
        ("crystal systems", r.exclude_crystal_systems),
    ):
        if values:
            lines.append(f"- excluded {name}: {', '.join(map(str, values))}")
    lines.append(f"- candidates: {r.n_candidates}, at most {r.max_atoms} atoms per conventional cell")
    return lines


def _window(target, half_width: float) -> str:
    lo, hi = wish_window(target, half_width) or (None, None)
    return f"[{'−∞' if lo is None else f'{lo:g}'}, {'∞' if hi is None else f'{hi:g}'}]"


def _wishes(row: dict[str, Any]) -> str:
    """The wishes a row meets, as short words ('gap, stable'), '–' when nothing was checkable."""
    names = {"meets_band_gap": "gap", "meets_formation_energy": "E_form", "meets_stability": "stable",
             "meets_symmetry": "symmetry"}  # fmt: skip
    checked = {word: row.get(key) for key, word in names.items() if row.get(key) is not None}
    if not checked:
        return "–"
    met = [w for w, ok in checked.items() if ok]
    return (", ".join(met) or "none") + f" ({len(met)}/{len(checked)})"


def band_gap_sentence(run: DesignRun) -> str:
    """Which model gave the band gaps, its measured error, and what PBE-level means."""
    if not run.band_gap_model:
        return (
            "Band gaps were not predicted (no band-gap model installed, or switched off): "
            "the band-gap wish is unchecked."
        )
    m = run.band_gap_metrics
    error = ""
    if m.get("mae") is not None:
        error = f" (measured: MAE {m['mae']:.2f} eV"
        if m.get("metal_accuracy") is not None:
            error += f", metal/non-metal right {100 * m['metal_accuracy']:.0f} %"
        error += f" on {m.get('n', '?')} MP {m.get('split', 'test')} crystals as given"
        if m.get("measured_on", "").startswith("eval"):
            error += ", by its train-only twin: this release model also learned from those crystals"
        error += ")"
    return (
        f"Band gaps were predicted by {run.band_gap_model}{error}, ± the ensemble's spread. They are PBE-level "
        "gaps, as in the Materials Project: PBE underestimates measured gaps (TiO2: about 2 eV against about "
        "3 eV measured). To read a request as a measured gap, pass --band-gap-offset (never applied silently)."
    )


def report_text(run: DesignRun) -> str:
    r = run.request
    prov = run.screen_summary.get("provenance", {})
    potential = prov.get("potential") or ", ".join(p.get("potential", "") for p in prov.get("potentials", []))
    checkpoint = prov.get("checkpoint", "")
    out: list[str] = ["# Design report", ""]
    out += ["## What was asked", ""]
    if run.prompt:
        out += [f"> {run.prompt}", ""]
    out += describe_request(run)
    if run.not_understood:
        out += ["", "Not understood (ignored): " + "; ".join(run.not_understood)]
    out += ["", "## What was tried", ""]
    out.append(
        f"1. **Constraints** ({run.constraint_model} constraint model, two stages: space group, then Wyckoff "
        f"sites): {len(run.constraints)} candidate(s), best first — the score is the model's log-probability"
        + (
            " plus the log-weight of the answers of the most similar known crystals (neighbour prior)"
            if run.constraint_prior
            else ""
        )
        + (
            " plus the weighted log-probability of the group under the composition classifier"
            if run.constraint_classifier
            else ""
        )
        + (
            " plus the vote of the likeliest composition ratios, each ranked as a ratio request (ratio classifier)."
            if run.constraint_ratio_vote
            else "."
        )
    )
    for c in run.constraints:
        out.append(f"   - {c.id}: {c.label()} (score {c.score:.2f})")
    n_ok = sum(s.ok for s in run.structures)
    out.append(
        f"2. **Structures**: {len(run.structures)} requested from {run.sampler_note}; {n_ok} passed the checks "
        "(re-detected space group and Wyckoff sites, shortest distance, volume)."
    )
    transplanted = [s for s in run.structures if s.ok and s.prototype]
    if transplanted:
        variant = "every split" if run.settings.variant == "release" else "the train split only"
        out.append(
            f"   - {len(transplanted)} took the geometry of a known prototype (the closest-chemistry known crystal "
            f"with the same site pattern, elements substituted; known crystals of {variant}): "
            + ", ".join(f"{s.id} from {s.prototype}" for s in transplanted)
            + "; the others were sampled by the diffusion model."
        )
    triaged = [s for s in run.structures if s.triage_e_form is not None]
    if triaged:
        kept = sum(s.selected for s in triaged)
        out.append(
            f"   - Triage ({run.settings.oversample} structures per requested candidate): the potential's "
            f"single-point formation energy, without relaxation, picked {kept} of {len(triaged)} to relax "
            "(inside the formation-energy window first, then the lowest energy above the hull)."
        )
    if run.prerelax:
        reached = sum(bool(p.get("reached")) for p in run.prerelax)
        used = sum(bool(p.get("used")) for p in run.prerelax)
        out.append(
            f"3. **Pre-relaxation** (LEGO-xtal SO(3) descriptors, symmetry kept): {reached}/{len(run.prerelax)} "
            f"reached the reference coordination, {used} pre-relaxed geometries used; {run.prerelax_note}."
        )
    else:
        out.append(f"3. **Pre-relaxation**: {run.prerelax_note}.")
    if run.rows:
        out.append(
            f"4. **Screening**: relaxation with {potential} {checkpoint} (symmetry kept with ASE FixSymmetry, "
            f"at most {run.settings.relax_max_steps} steps, fmax {run.settings.relax_fmax} eV/Å); formation "
            "energy from the potential's energy minus elemental reference energies, energy above the hull of "
            "the shipped Materials Project formation-energy table."
        )
        if prov.get("reportable") is False:
            out.append("   **Warning: this potential is not reportable (random or test weights); energies are "
                       "plumbing checks only.**")  # fmt: skip
    out += ["", "## What was found", ""]
    relaxed = [row for row in run.rows if row.get("design_rank") is not None]
    if not relaxed:
        out.append("No candidate made it through screening.")
    else:
        stable = [row for row in relaxed if row.get("stable")]
        thr = run.screen_summary.get("stable_threshold")
        out.append(
            f"{len(relaxed)} candidate(s) relaxed; {len(stable)} within {thr} eV/atom of the hull "
            f"(S.U.N. rate {_fmt(run.screen_summary.get('sun_rate'), 2)}). All energies below were computed by "
            f"{potential} {checkpoint}. " + band_gap_sentence(run)
        )
        meeting = [row for row in relaxed if row.get("meets_all_checked")]
        out.append(
            f"{len(meeting)} candidate(s) meet every wish that could be checked; they are ranked first, then "
            "everything by E_hull."
        )
        if r.band_gap is not None:
            meets = sum(bool(row.get("meets_band_gap")) for row in relaxed)
            out.append(f"{meets} candidate(s) have a predicted band gap in the window.")
        if r.formation_energy is not None:
            meets = sum(bool(row.get("meets_formation_energy")) for row in relaxed)
            out.append(
                f"{meets} candidate(s) meet the formation-energy target ({r.formation_energy.describe('eV/atom')})."
            )
        out += [
            "",
            "| rank | id | constraint | formula | group requested → final | E_form (eV/atom) | E_hull (eV/atom) "
            "| band gap (eV) | wishes met | stable | unique | novel | pre-relax reached | CIF |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in relaxed[:REPORT_ROWS]:
            out.append(
                f"| {row['design_rank']} | {row['id']} | {row.get('constraint_id', '–')} | {row.get('formula')} "
                f"| {row.get('requested_spacegroup')} → {row.get('final_spacegroup') or '?'} "
                f"| {_fmt(row.get('e_form'))} | {_fmt(row.get('e_hull'))} | {_gap(row)} | {_wishes(row)} "
                f"| {_fmt(row.get('stable'))} | {_fmt(row.get('unique'))} "
                f"| {_fmt(row.get('novel'))} | {_fmt(row.get('prerelax_reached'))} | {row.get('cif') or '–'} |"
            )
        if len(relaxed) > REPORT_ROWS:
            out.append(f"\n{len(relaxed) - REPORT_ROWS} more in summary.csv.")
    out += known_phases_section(run)
    out += ["", "## What failed and why", ""]
    out += [f"- {f}" for f in run.failures] or ["Nothing failed."]
    out += ["", "## Time", ""]
    out += [f"- {stage}: {sec:.1f} s" for stage, sec in run.times.seconds.items()]
    out += [
        "",
        "Files: `summary.csv` (candidates, then the known phases), `summary.json`, `constraints.jsonl`, `cifs/`, "
        "`known/cifs/`, `structures/`, `prerelax.json`.",
    ]
    return "\n".join(out) + "\n"


def _gap(row: dict[str, Any]) -> str:
    if row.get("band_gap") is None:
        return "–"
    return f"{row['band_gap']:.2f} ± {row.get('band_gap_std') or 0.0:.2f}"


def known_phases_section(run: DesignRun) -> list[str]:
    """The known phases of the chemistry, screened like the candidates, beside the database's values."""
    out = ["", "## Known phases (reference rows)", ""]
    if not run.known_rows:
        what = "none found in the shipped reference set" if run.settings.known_phases else "switched off"
        return out + [f'Known phases of this chemistry: {what}. "Novel" is judged against the same set.']
    variant = "every split" if run.settings.variant == "release" else "the train split only (eval variant)"
    out += [
        f"The {len(run.known_rows)} most stable known crystals of this chemistry in the shipped Materials Project "
        f"set ({variant}), relaxed and placed on the hull by the same potential as the candidates, so both are "
        "on one scale; the database's own (DFT) values beside them. A candidate is novel when it matches none "
        "of the known crystals of its elements.",
        "",
        "| id | source | formula | group → final | E_form (eV/atom) | E_hull (eV/atom) | band gap (eV) "
        "| wishes met | MP E_form | MP E_hull | MP band gap | CIF |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in run.known_rows:
        out.append(
            f"| {row['id']} | {row.get('source')} | {row.get('formula')} "
            f"| {row.get('requested_spacegroup')} → {row.get('final_spacegroup') or '?'} | {_fmt(row.get('e_form'))} "
            f"| {_fmt(row.get('e_hull'))} | {_gap(row)} | {_wishes(row)} | {_fmt(row.get('db_formation_energy'))} "
            f"| {_fmt(row.get('db_e_hull'))} | {_fmt(row.get('db_band_gap'))} | {row.get('cif') or '–'} |"
        )
    return out


def write_report(run: DesignRun) -> None:
    write_text_atomic(run.out / "report.md", report_text(run))
