"""Plain functions behind ``xtalagent structures sample | train | eval-csp`` (the CLI wraps them).

Each takes the input path, then keyword-only options (a reordered signature cannot silently shift an
argument), does the whole job, reports progress through ``echo`` and returns a summary; user errors
raise :class:`~xtalagent.errors.InputError`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from xtalagent.errors import InputError
from xtalagent.structure_gen.evaluate import EVAL_K, EVAL_N_CRYSTALS, run_eval_csp, summary_line
from xtalagent.structure_gen.samplers import (
    DIFFUSION_STEPS,
    DIFFUSION_TEMPERATURE,
    MAX_ATTEMPTS,
    SAMPLERS,
    generate,
    make_sampler,
)


def sample_command(
    constraints: Path,
    *,
    n: int = 10,
    output: Path = Path("structures"),
    sampler: str = "diffusion",
    checkpoint: Path | None = None,
    seed: int | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    steps: int | None = DIFFUSION_STEPS,
    temperature: float = DIFFUSION_TEMPERATURE,
    echo: Callable[[str], None] = print,
) -> dict:
    """Sample ``n`` checked structures per constraint of a JSONL file; write CIFs + index to ``output``.

    Returns ``{"index": path, "ok": n_ok, "failed": n_failed, "constraints": n_constraints}``, plus
    ``"skipped": [{"line", "id", "reason"}, ...]`` when lines of the file gave no constraint (a
    request that failed in ``constraints predict``, bad JSON): those are skipped, named and listed
    in ``skipped.jsonl`` so one failed request does not block the others. Requests that still fail
    after ``max_attempts`` are listed in the index with their reasons.
    """
    import json

    from xtalagent.io import check_output_dir, write_text_atomic
    from xtalagent.structure_gen.io import load_constraints, write_results

    if n < 1:
        raise InputError("-n must be at least 1")
    if max_attempts < 1:
        raise InputError("--max-attempts must be at least 1")
    entries, skipped = load_constraints(constraints)
    check_output_dir(output)
    echo(f"{len(entries)} constraint(s) from {constraints}; sampling {n} each with {sampler}")
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
    chosen = make_sampler(sampler, checkpoint=checkpoint, seed=seed, steps=steps, temperature=temperature)
    results = generate([e.constraint for e in entries], n=n, sampler=chosen, max_attempts=max_attempts)
    index, n_ok, n_failed = write_results(entries, results, output)
    echo(f"{n_ok} structure(s) written to {output} (index {index})")
    if n_failed:
        echo(f"{n_failed} request(s) failed every check after {max_attempts} attempts; reasons in {index}")
    summary = {"index": str(index), "ok": n_ok, "failed": n_failed, "constraints": len(entries)}
    return summary | ({"skipped": lines} if lines else {})


def train_command(
    data: Path,
    *,
    out_dir: Path = Path("runs/structure_gen"),
    train_split: str | None = None,
    val_split: str | None = None,
    hidden: int = 128,
    layers: int = 4,
    batch_size: int = 64,
    lr: float = 1e-3,
    max_steps: int = 20000,
    max_minutes: float = 60.0,
    eval_every: int = 1000,
    eval_samples: int = 64,
    max_atoms: int = 60,
    resume: bool = False,
    seed: int = 0,
    threads: int = 1,
    init_from: Path | None = None,
) -> Path:
    """Train (or resume) the diffusion model on a labelled dataset; returns the best checkpoint path.

    With no ``val_split`` a 5% id-hashed share of the training rows is held out for the validation
    match rate. The ``test`` split is refused for training and validation.
    """
    from xtalagent.structure_gen.train import TrainConfig, train

    cfg = TrainConfig(
        data=str(data),
        train_split=train_split,
        val_split=val_split,
        out_dir=str(out_dir),
        hidden=hidden,
        layers=layers,
        batch_size=batch_size,
        lr=lr,
        max_steps=max_steps,
        max_minutes=max_minutes,
        eval_every=eval_every,
        eval_samples=eval_samples,
        max_atoms=max_atoms,
        resume=resume,
        seed=seed,
        threads=threads,
        init_from=str(init_from) if init_from else None,
    )
    return train(cfg)


def eval_csp_command(
    dataset: Path,
    *,
    split: str | None = "test",
    sampler: str = "both",
    n: int | None = EVAL_N_CRYSTALS,
    k: int = EVAL_K,
    seed: int = 0,
    checkpoint: Path | None = None,
    output: Path | None = None,
    max_atoms: int | None = None,
    steps: int | None = DIFFUSION_STEPS,
    temperature: float = DIFFUSION_TEMPERATURE,
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
    )
    for name, res in report["results"].items():
        echo(summary_line(name, res))
    if output:
        echo(f"written to {output}")
    return report
