"""The design pipeline: request → constraints → structures → pre-relaxation → screening → ranking.

Each stage is a function on plain objects (so the chat agent can call them one by one as tools)
and writes its result into the run folder as soon as it is done; re-running the same request with
the same settings in the same folder reuses finished stages (and, inside screening, finished
structures), so an interrupted run loses nothing.

Run folder::

    request.json        what was asked (parsed request, settings, the prompt)
    constraints.jsonl   constraint candidates tried (space group + Wyckoff sites), best first
    structures/         generated structures (CIFs with symmetry) + index.jsonl
    prerelax.json       per-structure descriptor pre-relaxation results
    cifs/ summary.csv summary.json ehull.png cache/   screening (tools/screen.py)
    known/              the known phases of the requested chemistry, relaxed and placed on the hull
                        by the same potential (reference rows of summary.csv, ``source = known:<id>``)
    report.md           the plain-words report (agent/report.py)

Every wish that can be checked is checked on the relaxed candidates: formation energy and stability
from the potential, symmetry from the final structure, band gap from the shipped band-gap model
(PBE level). A wish given as a bare value ("near 3 eV") is checked within a stated window
(:attr:`DesignSettings.band_gap_window`, :attr:`DesignSettings.formation_energy_window`).

The stages live in :mod:`xtalagent.agent.stages` (constraints, structures, pre-relaxation) and
:mod:`xtalagent.agent.screening` (screening, wishes, ranking); :class:`DesignRound` runs them with
stage caching, timing and progress. ``design`` (:func:`run_design`), the chat agent's tools
(:class:`~xtalagent.agent.session.DesignSession`) and the web page all drive a ``DesignRound``, so
one request gives the same constraints, structures and report whichever front door asked.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from xtalagent.agent.design_records import (
    PIPELINE_VERSION,
    ConstraintChoice,
    DesignRun,
    DesignSettings,
    GeneratedStructure,
    Log,
    Progress,
    StageTimes,
)
from xtalagent.agent.request import DesignRequest
from xtalagent.agent.screening import (
    finish_rows,
    known_phases,
    load_band_gap_model,
    load_round_potential,
    pbe_request,
    rank_rows,
    record_screening,
    screen_structures,
    screen_summary,
    target_flags,
    triage_structures,
    wish_window,
)
from xtalagent.agent.stages import (
    allowed_groups,
    choose_sampler,
    constraint_request,
    general_diffusion_checkpoint,
    generate_structures,
    generation_failures,
    note_constraint_model,
    prerelax_decision,
    prerelax_structures,
    propose_constraints,
    slot_order,
    slots_for,
)
from xtalagent.errors import InputError
from xtalagent.io import write_json_atomic, write_text_atomic

__all__ = [
    "PIPELINE_VERSION", "ConstraintChoice", "DesignRound", "DesignRun", "DesignSettings", "GeneratedStructure",
    "StageTimes", "allowed_groups", "choose_sampler", "constraint_request", "finish_rows",
    "general_diffusion_checkpoint", "known_phases", "load_band_gap_model", "pbe_request", "prune_stale",
    "rank_rows", "run_design", "screen_summary", "slot_order", "slots_for", "target_flags", "wish_window",
    "write_summary",
]  # fmt: skip


# --- stage cache ----------------------------------------------------------------------------------
def _stage_cache(out: Path, name: str, key: str) -> dict[str, Any] | None:
    """A finished stage's saved record (``items`` plus extras) if it was made with this key."""
    path = out / name
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return data if data.get("key") == key else None


def _save_stage(out: Path, name: str, key: str, items: Any, **extra: Any) -> None:
    write_json_atomic(out / name, {"key": key, **extra, "items": items})


def prune_stale(out: Path, keep: set[str]) -> list[Path]:
    """Remove the files an earlier, larger run left for structure ids this run does not have
    (``structures/S0NN_*.cif``, ``cache/S0NN.json``), so nothing stale is read as this run's."""
    import re

    removed = []
    pattern = re.compile(r"^(S\d{3,})[_.]")
    for folder in (out / "structures", out / "cache"):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = pattern.match(path.name)
            if match and match.group(1) not in keep:
                path.unlink()
                removed.append(path)
    return removed


# --- one design round -----------------------------------------------------------------------------
class DesignRound:
    """One request's round through the stages, in one folder.

    Every stage method writes its output into the folder as soon as it is done and records it on
    :attr:`run` (what the report is written from). A stage whose output was saved by an earlier
    round with the same request and settings (same :meth:`DesignSettings.key`) is read back instead
    of recomputed, so an interrupted ``design`` loses nothing. ``structures`` may be called again
    to add structures to the round ("20 more" in the chat).
    """

    def __init__(
        self,
        out: str | Path,
        request: DesignRequest,
        settings: DesignSettings | None = None,
        *,
        prompt: str | None = None,
        not_understood: list[str] | None = None,
        predictor: Any = None,
        potential: Any = None,
        progress: Progress | None = None,
        log: Log | None = None,
    ) -> None:
        self.settings = settings or DesignSettings()
        self.asked = request  # as the user put it (before any band-gap offset)
        request = pbe_request(request, self.settings.band_gap_offset)
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.run = DesignRun(self.out, request, self.settings, prompt, list(not_understood or []))
        self.key = self.settings.key(request)
        self.predictor = predictor
        self.potential = potential
        self.tick: Progress = progress or (lambda _stage, _done, _total: None)
        self.say: Log = log or (lambda _msg: None)
        write_json_atomic(
            self.out / "request.json",
            {"prompt": prompt, "request": self.asked.model_dump(exclude_defaults=False),
             "settings": self.settings.model_dump(), "not_understood": self.run.not_understood, "key": self.key},
        )  # fmt: skip

    # --- stage 1 ------------------------------------------------------------------------------------
    def constraints(self) -> list[ConstraintChoice]:
        """Top-k constraints for the request (cached)."""
        run, t0 = self.run, time.perf_counter()
        self.tick("constraints", 0, 1)
        cached = _stage_cache(self.out, "constraints.json", self.key)
        if cached is not None:
            run.constraints = [ConstraintChoice.model_validate(c) for c in cached["items"]]
            self.say(f"constraints: {len(run.constraints)} from the previous run in {self.out}")
        else:
            if self.predictor is None:
                self.predictor = _load_predictor(self.settings)
            run.constraints = propose_constraints(run.request, self.predictor, self.settings.top_k, self.settings.seed)
            _save_stage(self.out, "constraints.json", self.key, [c.model_dump() for c in run.constraints])
        note_constraint_model(run, self.predictor)
        run.sampler, _, run.sampler_note = choose_sampler(self.settings)
        write_text_atomic(self.out / "constraints.jsonl", "".join(c.model_dump_json() + "\n" for c in run.constraints))
        run.times.add("constraints", time.perf_counter() - t0)
        self.tick("constraints", 1, 1)
        self.say(f"constraints: {', '.join(f'{c.id} {c.formula} #{c.spacegroup}' for c in run.constraints)}")
        return run.constraints

    # --- stage 2 ------------------------------------------------------------------------------------
    def structures(self, n: int | None = None) -> list[GeneratedStructure]:
        """Structures for ``n`` more candidates (default: the request's), spread over the constraints:
        ``n`` x ``oversample`` of them, of which screening relaxes ``n`` (see :meth:`screen`). Returns
        the new ones. Cached: the slots an earlier identical round made are read back."""
        run, t0 = self.run, time.perf_counter()
        if not run.constraints:
            raise InputError("no constraints yet: propose constraints first")
        n = n or run.request.n_candidates
        run.wanted += n
        n *= self.settings.oversample
        start = len(run.structures)
        self.tick("structures", 0, n)
        cached = _stage_cache(self.out, "structures.json", self.key)
        items = cached["items"] if cached is not None else []
        wanted = items[start : start + n]
        if len(wanted) == n and all(not s["ok"] or (self.out / s["cif"]).is_file() for s in wanted):
            made = [GeneratedStructure.model_validate(s) for s in wanted]
        else:
            made = generate_structures(run.constraints, n, self.out, self.settings, run.request, start=start)
            if start == 0:
                prune_stale(self.out, {s.id for s in made})
        run.structures += made
        self._save_structures()
        run.failures += generation_failures(made)
        run.times.add("structures", time.perf_counter() - t0)
        self.tick("structures", n, n)
        n_ok = sum(s.ok for s in made)
        self.say(f"structures: {n_ok}/{len(made)} passed the symmetry and distance checks ({run.sampler_note})")
        return made

    def _save_structures(self) -> None:
        _save_stage(self.out, "structures.json", self.key, [s.model_dump() for s in self.run.structures])

    # --- stage 3 ------------------------------------------------------------------------------------
    def prerelax(self) -> list[dict[str, Any]]:
        """Descriptor pre-relaxation of the structures not yet pre-relaxed, when the settings and the
        request call for it (see :func:`prerelax_decision`); returns the new results."""
        run, t0 = self.run, time.perf_counter()
        use, note = prerelax_decision(self.settings, run.request)
        if not use:
            run.prerelax_note = note
            self.say(f"pre-relaxation: {note}")
            return []
        done = {p["id"] for p in run.prerelax}
        todo = [s for s in run.structures if s.ok and s.id not in done]
        self.tick("pre-relaxation", 0, len(todo))
        cached = _stage_cache(self.out, "prerelax.json", self.key)
        ids = {s.id for s in todo}
        if cached is not None and ids <= {r["id"] for r in cached["items"]}:
            results, run.prerelax_note = [r for r in cached["items"] if r["id"] in ids], cached.get("note", "")
        else:
            results, run.prerelax_note = prerelax_structures(todo, self.out)
            _save_stage(self.out, "prerelax.json", self.key, run.prerelax + results, note=run.prerelax_note)
        run.prerelax += results
        run.times.add("pre-relaxation", time.perf_counter() - t0)
        self.tick("pre-relaxation", len(todo), len(todo))
        reached = sum(bool(r.get("reached")) for r in results)
        self.say(f"pre-relaxation: {reached}/{len(results)} reached the reference environments; {run.prerelax_note}")
        return results

    # --- stage 4 ------------------------------------------------------------------------------------
    def screen(self) -> DesignRun:
        """Relax and score every generated structure (finished ones are read from the screening
        cache), the known phases beside them; rank; write summary and report."""
        run, t0 = self.run, time.perf_counter()
        if not any(s.ok for s in run.structures):
            raise InputError("no structure passed generation, nothing to screen")
        if self.settings.oversample > 1:
            self.triage()
        total = sum(s.ok and s.selected for s in run.structures)
        done = [0]

        def screened(_row: dict[str, Any]) -> None:
            done[0] += 1
            self.tick("screening", done[0], total)

        self.tick("screening", 0, total)
        self.potential = load_round_potential(self.settings, self.potential)
        report, known = screen_structures(
            run.structures, run.prerelax, run.request, self.settings, self.out, progress=screened,
            potential=self.potential,
        )  # fmt: skip
        record_screening(run, report, known)
        run.times.add("screening", time.perf_counter() - t0)
        run.failures = [f for f in run.failures if ": screening failed: " not in f] + [
            f"{r['id']}: screening failed: {r.get('failure')}" for r in run.rows if r.get("status") == "failed"
        ]
        self.finish()
        return run

    def triage(self) -> None:
        """Pick which of an oversampled round's structures screening relaxes: as many as the round's
        candidates, by the potential's single-point formation energy (:func:`triage_order`)."""
        run, t0 = self.run, time.perf_counter()
        self.potential = load_round_potential(self.settings, self.potential)
        kept = sum(s.selected for s in run.structures if s.triage_e_form is not None)
        triage_structures(
            run.structures, max(0, run.wanted - kept), run.request, self.settings, self.out, self.potential,
            run.prerelax,
        )  # fmt: skip
        self._save_structures()
        run.times.add("triage", time.perf_counter() - t0)
        n_ok = sum(s.ok for s in run.structures)
        self.say(f"triage: {sum(s.ok and s.selected for s in run.structures)} of {n_ok} structures kept to relax")

    def finish(self) -> None:
        """Write summary.csv/json (when anything was screened) and report.md from the run."""
        from xtalagent.agent.report import write_report

        if self.run.rows:
            write_summary(self.run)
        write_report(self.run)


def run_design(
    request: DesignRequest,
    out: str | Path,
    settings: DesignSettings | None = None,
    prompt: str | None = None,
    not_understood: list[str] | None = None,
    predictor=None,
    progress: Progress | None = None,
    log: Log | None = None,
    potential=None,
) -> DesignRun:
    """Run every stage for one request into ``out`` and write ``report.md``; see the module docstring."""
    round_ = DesignRound(
        out, request, settings, prompt=prompt, not_understood=not_understood, predictor=predictor,
        potential=potential, progress=progress, log=log,
    )  # fmt: skip
    round_.constraints()
    round_.structures()
    round_.prerelax()
    if any(s.ok for s in round_.run.structures):
        round_.screen()
    else:
        round_.finish()
    return round_.run


DESIGN_COLUMNS = [
    "design_rank", "kind", "source", "id", "constraint_id", "formula", "natoms", "requested_spacegroup",
    "final_spacegroup", "symmetry_kept", "e_form", "e_hull", "band_gap", "band_gap_std", "energy_per_atom",
    "stable", "unique", "novel", "valid_structure", "valid_composition", "meets_band_gap",
    "meets_formation_energy", "meets_stability", "meets_symmetry", "meets_all_checked", "db_formation_energy",
    "db_e_hull", "db_band_gap", "prerelaxed", "prerelax_reached", "steps", "status", "potential", "checkpoint",
    "sampler", "cif", "failure",
]  # fmt: skip


def write_summary(run: DesignRun) -> None:
    """Design-level summary.csv / summary.json (the screening columns plus constraints, targets)."""
    import pandas as pd

    from xtalagent.io import atomic_path

    for r in run.rows:  # screening named the CIFs by e_hull rank; name them by the design rank
        if r.get("cif") and r.get("design_rank") is not None:
            new = f"cifs/{r['design_rank']:04d}_{r['id']}.cif"
            if new != r["cif"]:
                (run.out / r["cif"]).rename(run.out / f"{new}.tmp")
                r["cif"] = new
    for r in run.rows:
        if r.get("cif") and (run.out / f"{r['cif']}.tmp").exists():
            (run.out / f"{r['cif']}.tmp").rename(run.out / r["cif"])
    table = [{c: r.get(c) for c in DESIGN_COLUMNS} for r in run.rows + run.known_rows]
    frame = pd.DataFrame(table, columns=DESIGN_COLUMNS)
    with atomic_path(run.out / "summary.csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    write_json_atomic(
        run.out / "summary.json",
        {
            "request": run.request.model_dump(exclude_defaults=True),
            "constraints": [c.model_dump() for c in run.constraints],
            "sampler": run.sampler_note,
            "prerelax": run.prerelax_note,
            "screening": run.screen_summary,
            "variant": run.settings.variant,
            "band_gap_model": {"name": run.band_gap_model, "metrics": run.band_gap_metrics},
            "seconds": run.times.seconds,
            "rows": run.rows,
            "known_phases": run.known_rows,
        },
    )


def _load_predictor(settings: DesignSettings):
    from xtalagent.finetune.predictor import load_predictor

    return load_predictor(settings.constraint_model, endpoint=settings.constraint_endpoint, variant=settings.variant)
