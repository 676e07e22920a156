"""A design session: the state the chat agent's tools share across turns.

One session owns one output folder. Each new request (``propose_constraints``) opens a round
folder ``round_NN`` inside it; "give me 20 more" appends structures to the current round, so every
file a tool writes lies inside the session folder (tools take no paths from the model).
Each method returns plain JSON-able data; the numbers in it are what the agent may quote.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymatgen.core import Composition

from xtalagent.agent.pipeline import DesignRound, DesignRun, DesignSettings
from xtalagent.agent.request import DesignRequest
from xtalagent.agent.stages import prerelax_decision
from xtalagent.errors import InputError

#: Rows of a screening result returned to the model (all are in the round's summary.csv).
TOOL_ROWS: int = 5


def _r(x: Any, digits: int = 3) -> Any:
    return round(x, digits) if isinstance(x, float) else x


class DesignSession:
    def __init__(
        self,
        out: str | Path,
        settings: DesignSettings | None = None,
        predictor=None,
        potential=None,
        on_progress: Callable[[str, int, int], None] | None = None,
    ):
        self.on_progress = on_progress or (lambda _stage, _done, _total: None)
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.settings = settings or DesignSettings()
        self._predictor = predictor
        self._potential = potential  # a loaded Potential (tests, or reuse across rounds)
        self.run: DesignRun | None = None
        self.round: DesignRound | None = None
        self.prompt: str | None = None  # the user's words of the current request (for the round's report)
        # a re-opened session folder continues after its last round instead of overwriting round_01
        self.rounds = max((int(p.name[6:]) for p in self.out.glob("round_[0-9][0-9]") if p.is_dir()), default=0)

    # --- stages: each tool call runs one stage of the current round (the same DesignRound as ``design``) --
    def propose_constraints(self, request: DesignRequest, top_k: int | None = None) -> dict[str, Any]:
        if not request.has_composition():
            raise InputError("the request names no composition (a formula or the elements)")
        settings = self.settings if top_k is None else self.settings.model_copy(update={"top_k": top_k})
        self.rounds += 1
        self.round = DesignRound(
            self.out / f"round_{self.rounds:02d}", request, settings, prompt=self.prompt, predictor=self._predictor,
            potential=self._potential, progress=self.on_progress,
        )  # fmt: skip
        constraints = self.round.constraints()
        self._predictor = self.round.predictor  # loaded once, reused by later rounds
        self.run = self.round.run
        return {
            "round": self.run.out.name,
            "constraints": [
                {"id": c.id, "formula": c.formula, "spacegroup": c.spacegroup, "symbol": c.spacegroup_symbol,
                 "crystal_system": c.crystal_system, "sites": [f"{s['element']} {s['wyckoff']}" for s in c.sites],
                 "score": c.score}
                for c in constraints
            ],
        }  # fmt: skip

    def _current(self) -> DesignRun:
        if self.run is None:
            raise InputError("no constraints yet: call propose_constraints with a request first")
        return self.run

    def _round(self) -> DesignRound:
        self._current()
        assert self.round is not None
        return self.round

    def generate_structures(self, n: int | None = None) -> dict[str, Any]:
        run = self._current()
        n = n or run.request.n_candidates
        if not 1 <= n <= 200:
            raise InputError("n must be between 1 and 200")
        made = self._round().structures(n)
        return {
            "generated": len(made),
            "passed_checks": sum(s.ok for s in made),
            "total_in_round": len(run.structures),
            "candidates_in_round": run.wanted,
            "structures_per_candidate": self.settings.oversample,
            "sampler": run.sampler_note,
            "failed": [{"id": s.id, "reason": s.failure} for s in made if not s.ok],
        }

    def prerelax_structures(self) -> dict[str, Any]:
        run = self._current()
        results = self._round().prerelax()
        if not results and not prerelax_decision(run.settings, run.request)[0]:
            return {"prerelaxed": 0, "note": run.prerelax_note}
        return {
            "prerelaxed": len(results),
            "reached_reference_environment": sum(bool(r.get("reached")) for r in results),
            "geometry_used": sum(bool(r.get("used")) for r in results),
            "note": run.prerelax_note,
        }

    def screen_structures(self) -> dict[str, Any]:
        run = self._current()
        if not any(s.ok for s in run.structures):
            raise InputError("no generated structure to screen: call generate_structures first")
        self._round().screen()
        relaxed = [r for r in run.rows if r.get("design_rank") is not None]
        prov = run.screen_summary.get("provenance", {})
        return {
            "screened": len(run.rows),
            "relaxed": len(relaxed),
            "stable": sum(bool(r.get("stable")) for r in relaxed),
            "stable_threshold_eV_per_atom": run.screen_summary["stable_threshold"],
            "energies_by": f"{prov.get('potential', '?')} {prov.get('checkpoint', '')}".strip(),
            "best": [self._row_brief(r) for r in relaxed[:TOOL_ROWS]],
            "known_phases": [self._row_brief(r) for r in run.known_rows[:TOOL_ROWS]],
            "report": str(run.out / "report.md"),
        }

    # --- questions about results ----------------------------------------------------------------
    @staticmethod
    def _row_brief(r: dict[str, Any]) -> dict[str, Any]:
        return {
            "rank": r.get("design_rank"),
            "id": r["id"],
            "formula": r.get("formula"),
            "spacegroup_requested": r.get("requested_spacegroup"),
            "spacegroup_final": r.get("final_spacegroup"),
            "e_form_eV_per_atom": _r(r.get("e_form")),
            "e_hull_eV_per_atom": _r(r.get("e_hull")),
            "band_gap_eV": _r(r.get("band_gap")),
            "stable": r.get("stable"),
            "novel": r.get("novel"),
            "source": r.get("source"),
        }

    def _find(self, candidate: str | int) -> dict[str, Any]:
        run = self._current()
        if not run.rows:
            raise InputError("nothing screened yet in this round")
        key = str(candidate).strip().lstrip("#")
        for r in run.rows:
            if str(r.get("design_rank")) == key or r["id"].lower() == key.lower():
                return r
        raise InputError(f"no candidate {candidate!r} in {run.out.name} (ranks 1-{len(run.rows)} or ids like S001)")

    def explain_candidate(self, candidate: str | int) -> dict[str, Any]:
        """Why a candidate ranks where it does: energies, hull decomposition, symmetry, checks."""
        from xtalagent.tools.hull import ReferenceHull

        r = self._find(candidate)
        run = self._current()
        out = self._row_brief(r) | {
            "constraint": next((c.label() for c in run.constraints if c.id == r.get("constraint_id")), None),
            "status": r.get("status"),
            "failure": r.get("failure"),
            "symmetry_kept": r.get("symmetry_kept"),
            "valid_structure": r.get("valid_structure"),
            "charge_balanced": r.get("valid_composition"),
            "unique": r.get("unique"),
            "relaxation_steps": r.get("steps"),
            "energies_by": f"{r.get('potential')} {r.get('checkpoint')}",
            "cif": str(run.out / r["cif"]) if r.get("cif") else None,
        }
        if r.get("e_form") is not None and r.get("formula"):
            threshold = run.screen_summary.get("stable_threshold")
            comp = Composition(r["formula"])
            hull = ReferenceHull.default()
            out["hull_energy_eV_per_atom"] = _r(hull.hull_energy(comp))
            out["decomposes_to"] = hull_decomposition(hull, comp)
            out["verdict"] = (
                "stable"
                if r.get("stable")
                else f"unstable: {out['e_hull_eV_per_atom']} eV/atom above the hull (threshold {threshold} eV/atom)"
            )
        return out

    def lookup_known_materials(self, formula: str | None = None, elements: list[str] | None = None,
                               limit: int = 10) -> dict[str, Any]:  # fmt: skip
        """Known crystals of the shipped reference set (MP-20 train + val)."""
        from xtalagent.tools.reference_set import with_elements, with_formula

        variant = self.settings.variant
        if formula:
            hits, what = with_formula(formula, variant=variant), f"formula {formula}"
        elif elements:
            hits, what = with_elements(elements, variant=variant), f"elements {'-'.join(elements)}"
        elif self.run is not None:
            els = self.run.request.composition_elements()
            hits, what = with_elements(els, variant=variant), f"elements {'-'.join(els)}"
        else:
            raise InputError("give a formula or elements to look up")
        return {
            "query": what,
            "source": (
                "shipped reference set (Materials Project; "
                + ("every split" if variant == "release" else "train split only (eval variant)")
                + "; DFT values)"
            ),
            "n_found": len(hits),
            "known": [h.as_dict() for h in hits[: max(1, min(limit, 50))]],
            "hull_table": hull_table_entries(formula, elements or (self.run.request.composition_elements()
                                                                    if self.run and not formula else None), limit),
        }  # fmt: skip


def hull_decomposition(hull, composition: Composition) -> list[dict[str, Any]]:
    """The hull phases a composition would decompose into, with fractions."""
    from pymatgen.analysis.phase_diagram import PDEntry

    chemsys = "-".join(sorted(el.symbol for el in composition.elements))
    try:
        diagram = hull.diagram(chemsys)
    except Exception:
        return []
    decomp = diagram.get_decomposition(composition.reduced_composition)
    return [
        {"phase": entry.composition.reduced_formula, "fraction": round(float(frac), 3)}
        for entry, frac in sorted(decomp.items(), key=lambda kv: -kv[1])
        if isinstance(entry, PDEntry)
    ]


def hull_table_entries(formula: str | None, elements: list[str] | None, limit: int = 10) -> dict[str, Any]:
    """Compositions of the shipped hull table (Matbench mp_e_form, no structures) for the query."""
    from xtalagent.composition import parse_counts
    from xtalagent.tools.hull import ReferenceHull

    hull = ReferenceHull.default()
    if formula:
        comp = Composition(parse_counts(formula))
        chemsys = "-".join(sorted(el.symbol for el in comp.elements))
        rows = [
            (f, e)
            for f, e in hull.formation_energies(chemsys)
            if Composition(f).reduced_formula == comp.reduced_formula
        ]
    elif elements:
        chemsys = "-".join(sorted(elements))
        rows = hull.formation_energies(chemsys)
    else:
        return {"n_found": 0, "entries": []}
    rows.sort(key=lambda fe: fe[1])
    return {
        "source": f"hull table {hull.name} (formation energies, eV/atom)",
        "n_found": len(rows),
        "entries": [
            {"formula": Composition(f).reduced_formula, "e_form_eV_per_atom": round(e, 3)} for f, e in rows[:limit]
        ],
    }
