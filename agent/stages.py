"""Stages 1-3 of a design round: constraints, structures, pre-relaxation.

Each stage is a function on plain objects (so the chat agent's tools and :class:`DesignRound` call
the same code) that writes its output into the run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pymatgen.core import Structure

from xtalagent import config
from xtalagent.agent.design_records import ConstraintChoice, DesignRun, DesignSettings, GeneratedStructure
from xtalagent.agent.request import DesignRequest
from xtalagent.errors import InputError, XtalAgentError
from xtalagent.io import write_text_atomic
from xtalagent.symmetry import crystal_system, spacegroup_symbol


def general_diffusion_checkpoint() -> str:
    """Shipped diffusion checkpoint trained on general inorganic crystals; ``auto`` uses diffusion only
    when it exists (the Perov-5 checkpoint knows perovskites only), else PyXtal's builder."""
    from xtalagent.structure_gen.samplers import DEFAULT_CHECKPOINTS

    return DEFAULT_CHECKPOINTS[0]


# --- stage 1: constraints -------------------------------------------------------------------------
def allowed_groups(request: DesignRequest) -> list[int] | None:
    """Space groups the user accepts (None: any), from groups, crystal systems and exclusions."""
    if not (request.spacegroups or request.crystal_systems or request.exclude_spacegroups
            or request.exclude_crystal_systems):  # fmt: skip
        return None
    groups = list(request.spacegroups) or list(range(1, 231))
    if request.crystal_systems:
        groups = [g for g in groups if crystal_system(g) in request.crystal_systems]
    groups = [
        g
        for g in groups
        if g not in request.exclude_spacegroups and crystal_system(g) not in request.exclude_crystal_systems
    ]
    if not groups:
        raise InputError("the symmetry wishes exclude every space group")
    return groups


def constraint_request(request: DesignRequest) -> dict[str, Any]:
    """The constraint generator's JSON request for a design request."""
    data: dict[str, Any] = {"max_atoms": request.max_atoms}
    if request.formula is not None:
        data["formula"] = request.formula
    elif request.composition is not None:
        data["composition"] = request.composition
    elif request.elements is not None:
        data["elements"] = list(request.elements)
    else:
        raise InputError("the request names no composition (a formula or the elements)")
    if request.band_gap is not None:
        data["band_gap"] = max(0.0, request.band_gap.conditioning_value())
    if request.formation_energy is not None:
        data["formation_energy"] = request.formation_energy.conditioning_value()
    return data


def propose_constraints(request: DesignRequest, predictor, top_k: int, seed: int = 0) -> list[ConstraintChoice]:
    """Top-k valid constraints for the request, restricted to the groups the user accepts."""
    groups = allowed_groups(request)
    data = constraint_request(request)
    if groups is not None and len(groups) == 1:
        data["spacegroup"] = groups[0]
        groups = None
    found = predictor.predict(data, top_k=top_k, seed=seed, allowed_groups=groups)
    return [
        ConstraintChoice(
            id=f"C{i + 1}",
            spacegroup=c.spacegroup,
            spacegroup_symbol=spacegroup_symbol(c.spacegroup),
            crystal_system=crystal_system(c.spacegroup),
            formula=c.formula,
            sites=[{"element": s.element, "wyckoff": s.wyckoff} for s in c.sites],
            score=c.score,
        )
        for i, c in enumerate(found)
    ]


def note_constraint_model(run: DesignRun, predictor: Any = None) -> None:
    """Record on the run which constraint model answered and which voters joined it (for the report):
    asked of the loaded predictor when there is one, else of the settings' model folder (a run whose
    constraints came from the cache loads no predictor)."""
    from xtalagent.finetune.predictor import ratio_vote_in_use, voters_in_use

    settings = run.settings
    run.constraint_model = settings.constraint_endpoint or settings.constraint_model or "embedded default"
    pattern = next(p for p in ("formula", "composition", "elements") if p in constraint_request(run.request))
    if predictor is not None and not hasattr(predictor, "voters"):  # a stand-in (benchmark references)
        run.constraint_model = getattr(predictor, "label", type(predictor).__name__)
        run.constraint_prior = run.constraint_classifier = run.constraint_ratio_vote = False
        return
    if predictor is not None:
        voters = predictor.voters(pattern)
        run.constraint_prior, run.constraint_classifier = voters["prior"], voters["classifier"]
        run.constraint_ratio_vote = voters["ratio_vote"]
        return
    run.constraint_prior, run.constraint_classifier = voters_in_use(
        settings.constraint_model, settings.constraint_endpoint, pattern
    )
    run.constraint_ratio_vote = ratio_vote_in_use(settings.constraint_model, settings.constraint_endpoint, pattern)


# --- stage 2: structures --------------------------------------------------------------------------
def choose_sampler(settings: DesignSettings) -> tuple[str, str | None, str]:
    """(sampler name, checkpoint, why) for the settings."""
    from xtalagent.structure_gen.samplers import CHECKPOINT_DIR

    if settings.sampler == "pyxtal":
        return "pyxtal", None, "PyXtal's random symmetric builder (chosen)"
    first = (
        f" after the closest known prototype{'s' if settings.prototypes > 1 else ''} "
        f"({settings.prototypes} per constraint)"
        if settings.prototypes
        else ""
    )
    if settings.diffusion_checkpoint:
        ckpt = settings.diffusion_checkpoint
        return "diffusion", ckpt, f"diffusion model {Path(ckpt).name}{first}"
    general = CHECKPOINT_DIR / general_diffusion_checkpoint()
    if general.exists() or settings.sampler == "diffusion":
        # no checkpoint: make_sampler routes each constraint to the shipped model whose training
        # domain holds it (structure_gen/routing.py)
        return (
            "diffusion",
            None,
            (
                f"diffusion model {general.name} (general inorganic crystals; constraints inside the Perov-5 "
                f"model's training domain go to perov_5.pt){first}"
            ),
        )
    return (
        "pyxtal",
        None,
        f"PyXtal's random symmetric builder: no general diffusion checkpoint ({general_diffusion_checkpoint()}) "
        "ships yet, and the Perov-5 one only knows perovskites",
    )


def slot_order(n_constraints: int, slot: int) -> int:
    """Index of the constraint that structure number ``slot`` (0-based) realises.

    Every other structure goes to the best constraint, the others take turns: C1 C2 C1 C3 C1 C4 ...
    The best group is right far more often than any runner-up (MP val, formula requests: top-1
    67-70 %, the next four 16-20 % together; elements-only 30-36 % against 28 %), and one diffusion sample
    matches the true structure about 60 % of the time given the right constraint, so a second and
    third sample of C1 buys more than a first sample of C5, while C2.. still get tried.
    """
    if n_constraints == 1 or slot % 2 == 0:
        return 0
    return 1 + (slot // 2) % (n_constraints - 1)


def slots_for(constraints: list[ConstraintChoice], n: int, start: int = 0) -> list[ConstraintChoice]:
    """Which constraint each of ``n`` new structures realises (see :func:`slot_order`); ``start``
    continues an earlier round ("20 more")."""
    return [constraints[slot_order(len(constraints), start + i)] for i in range(n)]


def generate_structures(
    constraints: list[ConstraintChoice],
    n: int,
    out: Path,
    settings: DesignSettings,
    request: DesignRequest,
    start: int = 0,
) -> list[GeneratedStructure]:
    """``n`` checked structures spread over the constraints; CIFs written to ``out/structures``."""
    from xtalagent.structure_gen.io import symmetrized_cif
    from xtalagent.structure_gen.samplers import generate, make_sampler

    if not constraints:
        raise InputError("no constraints to realise")
    name, ckpt, _ = choose_sampler(settings)
    sampler = make_sampler(
        name,
        checkpoint=ckpt,
        seed=settings.seed + start,
        steps=config.DESIGN_DIFFUSION_STEPS,
        prototypes=settings.prototypes,
        variant=settings.variant,
    )
    band_gap = request.band_gap.conditioning_value() if request.band_gap else None
    e_form = request.formation_energy.conditioning_value() if request.formation_energy else None
    chosen = slots_for(constraints, n, start)
    if hasattr(sampler, "skip"):  # a later round ("20 more"): its prototypes were used before
        for earlier in slots_for(constraints, start):
            sampler.skip(earlier.constraint(band_gap, e_form), 1)
    results = generate([c.constraint(band_gap, e_form) for c in chosen], n=1, sampler=sampler)
    folder = out / "structures"
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i, (choice, res) in enumerate(zip(chosen, results)):
        sid = f"S{start + i + 1:03d}"
        item = GeneratedStructure(
            id=sid,
            constraint_id=choice.id,
            spacegroup=choice.spacegroup,
            formula=choice.formula,
            sampler=name,
            ok=res.ok,
            attempts=res.attempts,
            seconds=round(res.seconds, 3),
            failure=res.reason,
            prototype=res.prototype,
        )
        if res.ok:
            path = folder / f"{sid}_{choice.id}_sg{choice.spacegroup}_{choice.formula}.cif"
            write_text_atomic(path, symmetrized_cif(res.structure))
            item.cif = str(path.relative_to(out))
        made.append(item)
    return made


def generation_failures(structures: list[GeneratedStructure]) -> list[str]:
    """One line per structure slot that failed every attempt (for the report)."""
    return [f"{s.id} ({s.constraint_id}): generation failed: {s.failure}" for s in structures if not s.ok]


# --- stage 3: pre-relaxation ----------------------------------------------------------------------
def prerelax_structures(structures: list[GeneratedStructure], out: Path) -> tuple[list[dict[str, Any]], str]:
    """LEGO pre-relaxation of every generated structure toward known environments of its elements.

    Returns per-structure results (JSON) and a note; a structure whose pre-relaxation fails or
    loses its group keeps its generated geometry (the ML relaxation still decides).
    """
    from xtalagent.tools.prerelax import build_references, lego_available, prerelax

    ok, reason = lego_available()
    if not ok:
        return [], f"skipped: {reason}"
    todo = [s for s in structures if s.ok]
    if not todo:
        return [], "nothing to pre-relax"
    elements = sorted({el for s in todo for el in _elements_of(s.formula)})
    try:
        env = build_references(None, elements)
    except XtalAgentError as exc:
        return [], f"skipped: {exc}"
    results = []
    for s in todo:
        structure = read_structure(out / s.cif)
        try:
            res = prerelax(structure, reference=env, id=s.id, max_steps=config.DESIGN_PRERELAX_STEPS)
        except XtalAgentError as exc:
            results.append({"id": s.id, "failure": str(exc), "reached": False, "used": False, "cif": ""})
            continue
        row = res.model_dump()
        row["used"], row["not_used_because"] = _usable(res)
        row["cif"] = ""
        if row["used"]:
            path = out / "structures" / f"{s.id}_prerelaxed.cif"
            write_text_atomic(path, res.cif)
            row["cif"] = str(path.relative_to(out))
        results.append(row)
    return results, f"references: {', '.join(env.sources)} (SO(3) power spectrum, rcut {env.rcut:.2f} Å)"


def prerelax_decision(settings: DesignSettings, request: DesignRequest) -> tuple[bool, str]:
    """Whether a design run pre-relaxes, and the reason given in the report.

    ``auto`` pre-relaxes single-element requests only: that is LEGO-xtal's validated setting
    (sp2 carbon toward graphite). For compounds it was measured not to earn its place: on the
    README's Ti–O request 0/10 candidates reached the reference coordination, 5/10 collapsed onto
    overlapping atoms, and it cost 85 s of a 180 s run
    (bench/experiments/2026-11-lego-prerelax/prerelax_effect.json has the with/without comparison). ``on`` forces it.
    """
    if settings.prerelax == "off":
        return False, "switched off"
    if settings.prerelax == "on":
        return True, ""
    if len(request.composition_elements()) == 1:
        return True, ""
    return False, (
        "skipped (auto: LEGO descriptor pre-relaxation is used for single-element requests, its validated "
        "setting; for compounds it did not help in our measurements — switch on with --prerelax on)"
    )


def _usable(res) -> tuple[bool, str | None]:
    """Whether a pre-relaxed geometry replaces the generated one, and if not, why."""
    if res.failure:
        return False, res.failure
    if not res.symmetry_kept:
        return False, "space group not kept"
    if res.distance_after is None or res.distance_before is None or res.distance_after >= res.distance_before:
        return False, "descriptor distance did not decrease"
    try:
        structure = Structure.from_str(res.cif, fmt="cif")
    except Exception:
        return False, "pre-relaxed structure could not be read back (overlapping atoms)"
    n = len(structure)
    low, high = config.VOLUME_PER_ATOM_RANGE
    if n > 1 and res.min_distance_after is not None and res.min_distance_after < config.MIN_INTERATOMIC_DISTANCE:
        return False, f"atoms closer than {config.MIN_INTERATOMIC_DISTANCE} Å"
    if not low <= structure.volume / n <= high:
        return False, "volume per atom out of range"
    return True, None


def _elements_of(formula: str) -> list[str]:
    from xtalagent.composition import parse_counts

    return list(parse_counts(formula))


def read_structure(path: Path) -> Structure:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_file(path)
