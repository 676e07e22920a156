"""Plain functions behind ``xtalagent structures sample | train | eval-csp`` (the CLI wraps them).

Each takes the input path, then keyword-only options or a settings object
(:mod:`xtalagent.structure_gen.settings`, where the defaults live), so a reordered signature cannot
silently shift an argument; it does the whole job, reports progress through ``echo`` and returns a
summary; user errors raise :class:`~xtalagent.errors.InputError`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from xtalagent.errors import InputError
from xtalagent.structure_gen.evaluate import crystal_system_table, run_eval_csp, summary_line
from xtalagent.structure_gen.samplers import SAMPLERS, generate, make_sampler
from xtalagent.structure_gen.settings import (
    SAMPLES_PER_CONSTRAINT,
    CspEvalSettings,
    DiffusionTrainConfig,
    SamplerSettings,
)
from xtalagent.tools.reference_set import check_variant


def sample_command(
    constraints: Path,
    *,
    n: int = SAMPLES_PER_CONSTRAINT,
    output: Path = Path("structures"),
    settings: SamplerSettings | None = None,
    echo: Callable[[str], None] = print,
) -> dict:
    """Sample ``n`` checked structures per constraint of a JSONL file; write CIFs + index to ``output``.

    ``settings`` chooses the sampler, checkpoint, seed, attempts, steps and temperature
    (default: :class:`SamplerSettings`).

    Returns ``{"index": path, "ok": n_ok, "failed": n_failed, "constraints": n_constraints}``, plus
    ``"skipped": [{"line", "id", "reason"}, ...]`` when lines of the file gave no constraint (a
    request that failed in ``constraints predict``, bad JSON): those are skipped, named and listed
    in ``skipped.jsonl`` so one failed request does not block the others. Requests that still fail
    after ``max_attempts`` are listed in the index with their reasons.
    """
    import json

    from xtalagent.io import check_output_dir, write_text_atomic
    from xtalagent.structure_gen.io import load_constraints, write_results

    s = settings or SamplerSettings()
    if n < 1:
        raise InputError("-n must be at least 1")
    if s.max_attempts < 1:
        raise InputError("--max-attempts must be at least 1")
    entries, skipped = load_constraints(constraints)
    check_output_dir(output)
    echo(f"{len(entries)} constraint(s) from {constraints}; sampling {n} each with {s.sampler}")
    lines = [{"line": s.line, "id": s.source_id, "reason": s.reason} for s in skipped]
    listing = Path(output) / "skipped.jsonl"
    listing.unlink(missing_ok=True)  # a list left by an earlier run on another file would mislead
    if skipped:
        write_text_atomic(listing, "".join(json.dumps(x) + "\n" for x in lines))
        echo(f"skipped {len(skipped)} line(s) without a usable constraint (listed in {listing}):")
        for item in skipped[:10]:
            echo(f"  {item.reason}")
        if len(skipped) > 10:
            echo(f"  ... and {len(skipped) - 10} more")
    chosen = make_sampler(
        s.sampler,
        checkpoint=s.checkpoint,
        seed=s.seed,
        steps=s.steps,
        temperature=s.temperature,
        prototypes=s.prototypes,
        variant=check_variant(s.variant),
    )
    if hasattr(chosen, "checkpoint_for"):  # the default sampler routes constraints to shipped models
        models = Counter(chosen.checkpoint_for(e.constraint).name for e in entries)
        echo("diffusion models: " + ", ".join(f"{name} for {k} constraint(s)" for name, k in models.most_common()))
    results = generate([e.constraint for e in entries], n=n, sampler=chosen, max_attempts=s.max_attempts)
    index, n_ok, n_failed = write_results(entries, results, output)
    echo(f"{n_ok} structure(s) written to {output} (index {index})")
    transplanted = sum(r.ok and r.prototype is not None for r in results)
    if transplanted:
        echo(f"{transplanted} of them on the geometry of a known prototype (its id in the index)")
    if n_failed:
        echo(f"{n_failed} request(s) failed every check after {s.max_attempts} attempts; reasons in {index}")
    summary = {"index": str(index), "ok": n_ok, "failed": n_failed, "constraints": len(entries)}
    return summary | ({"skipped": lines} if lines else {})


def train_command(settings: DiffusionTrainConfig) -> Path:
    """Train (or resume) the diffusion model as ``settings`` say; returns the best checkpoint path.

    With no ``val_split`` a 5% id-hashed share of the training rows is held out for the validation
    match rate. The ``test`` split is refused for training and validation.
    """
    from xtalagent.structure_gen.train import train

    return train(settings)


def eval_csp_command(
    dataset: Path,
    *,
    split: str | None = "test",
    sampler: str = "both",
    n: int | None = CspEvalSettings.crystals,
    k: int = CspEvalSettings.k,
    seed: int = 0,
    checkpoint: Path | None = None,
    output: Path | None = None,
    max_atoms: int | None = None,
    steps: int | None = SamplerSettings.steps,
    temperature: float = SamplerSettings.temperature,
    prototypes: int = SamplerSettings.prototypes,
    echo: Callable[[str], None] = print,
) -> dict:
    """CSP with the true constraints of ``n`` random crystals of ``split``; writes JSON to ``output``.

    ``sampler`` is ``diffusion``, ``pyxtal`` or ``both``; ``split=None`` uses every row (e.g. a
    dataset built from Perov-5's test file alone).
    """
    names = SAMPLERS if sampler == "both" else (sampler,)
    for name in names:
        if name not in SAMPLERS:
            raise InputError(f"unknown sampler {name!r} (choose from {', '.join(SAMPLERS)} or both)")
    if k < 1:
        raise InputError("-k must be at least 1")
    report = run_eval_csp(
        dataset,
        split,
        names,
        n=n,
        k=k,
        seed=seed,
        checkpoint=checkpoint,
        output=output,
        steps=steps,
        temperature=temperature,
        prototypes=prototypes,
    )
    for name, res in report["results"].items():
        echo(summary_line(name, res))
        echo(crystal_system_table(res))
    if output:
        echo(f"written to {output}")
    return report
