"""``report.md``: what was asked, tried and found, in plain words, with the source of every number.

Written from a :class:`~xtalagent.agent.pipeline.DesignRun` only (no recomputation), so the report
can never disagree with ``summary.json``.
"""

from __future__ import annotations

from typing import Any

from xtalagent.agent.pipeline import DesignRun
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
    if r.band_gap:
        lines.append(f"- band gap: {r.band_gap.describe('eV')}")
    if r.formation_energy:
        lines.append(f"- formation energy: {r.formation_energy.describe('eV/atom')}")
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
            f"{potential} {checkpoint}; band gaps were a generation target only — no stage here predicts them."
        )
        if r.formation_energy is not None:
            meets = sum(bool(row.get("meets_formation_energy")) for row in relaxed)
            out.append(
                f"{meets} candidate(s) meet the formation-energy target ({r.formation_energy.describe('eV/atom')})."
            )
        out += [
            "",
            "| rank | id | constraint | formula | group requested → final | E_form (eV/atom) | E_hull (eV/atom) "
            "| stable | unique | novel | pre-relax reached | CIF |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in relaxed[:REPORT_ROWS]:
            out.append(
                f"| {row['design_rank']} | {row['id']} | {row.get('constraint_id', '–')} | {row.get('formula')} "
                f"| {row.get('requested_spacegroup')} → {row.get('final_spacegroup') or '?'} "
                f"| {_fmt(row.get('e_form'))} "
                f"| {_fmt(row.get('e_hull'))} | {_fmt(row.get('stable'))} | {_fmt(row.get('unique'))} "
                f"| {_fmt(row.get('novel'))} | {_fmt(row.get('prerelax_reached'))} | {row.get('cif') or '–'} |"
            )
        if len(relaxed) > REPORT_ROWS:
            out.append(f"\n{len(relaxed) - REPORT_ROWS} more in summary.csv.")
    out += ["", "## What failed and why", ""]
    out += [f"- {f}" for f in run.failures] or ["Nothing failed."]
    out += ["", "## Time", ""]
    out += [f"- {stage}: {sec:.1f} s" for stage, sec in run.times.seconds.items()]
    out += ["", "Files: `summary.csv`, `summary.json`, `constraints.jsonl`, `cifs/`, `structures/`, `prerelax.json`."]
    return "\n".join(out) + "\n"


def write_report(run: DesignRun) -> None:
    write_text_atomic(run.out / "report.md", report_text(run))
