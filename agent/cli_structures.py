"""``xtalagent structures``: sample, train and evaluate the structure generator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xtalagent.agent.cli_common import out
from xtalagent.structure_gen.settings import (
    SAMPLES_PER_CONSTRAINT,
    CspEvalSettings,
    DiffusionTrainConfig,
    SamplerSettings,
)

structures_app = typer.Typer(
    help="Generate crystal structures that carry a given symmetry constraint.", no_args_is_help=True
)


@structures_app.command("sample")
def structures_sample(
    constraints: Annotated[Path, typer.Argument(help="JSONL of constraints, or the output of 'constraints predict'")],
    n: Annotated[int, typer.Option("-n", help="structures per constraint")] = SAMPLES_PER_CONSTRAINT,
    output: Annotated[Path, typer.Option("-o", "--output", help="folder for CIFs + index")] = Path("structures"),
    sampler: Annotated[str, typer.Option(help="diffusion or pyxtal")] = SamplerSettings.sampler,
    checkpoint: Annotated[
        Path | None, typer.Option(help="diffusion checkpoint; default: shipped")
    ] = SamplerSettings.checkpoint,
    seed: Annotated[int | None, typer.Option(help="random seed")] = SamplerSettings.seed,
    max_attempts: Annotated[
        int, typer.Option(help="retries for structures that fail the checks")
    ] = SamplerSettings.max_attempts,
    steps: Annotated[int, typer.Option(help="diffusion denoising steps")] = SamplerSettings.steps,
    temperature: Annotated[
        float, typer.Option(help="diffusion noise scale (1: exact reverse process; lower: likelier structures)")
    ] = SamplerSettings.temperature,
    prototypes: Annotated[
        int,
        typer.Option(
            min=0,
            help="samples per constraint taken from the closest known prototypes before the diffusion model (0: none)",
        ),
    ] = SamplerSettings.prototypes,
    variant: Annotated[
        str, typer.Option(help="known crystals for prototypes: release (every split) or eval (train only)")
    ] = SamplerSettings.variant,
) -> None:
    """Sample crystal structures that carry each symmetry constraint exactly (checked with spglib)."""
    from xtalagent.structure_gen.commands import sample_command

    settings = SamplerSettings(
        sampler=sampler,
        checkpoint=checkpoint,
        seed=seed,
        max_attempts=max_attempts,
        steps=steps,
        temperature=temperature,
        prototypes=prototypes,
        variant=variant,
    )
    sample_command(constraints=constraints, n=n, output=output, settings=settings, echo=out.print)


@structures_app.command("train")
def structures_train(
    dataset: Annotated[Path, typer.Argument(help="Parquet from 'xtalagent data build'")],
    output: Annotated[Path, typer.Option("-o", "--output", help="run folder (checkpoints, log)")] = Path(
        "runs/structure_gen"
    ),
    train_split: Annotated[str | None, typer.Option(help="split to train on (default: train, or all rows)")] = None,
    val_split: Annotated[str | None, typer.Option(help="split for the validation match rate")] = None,
    hidden: Annotated[int, typer.Option()] = DiffusionTrainConfig.hidden,
    layers: Annotated[int, typer.Option()] = DiffusionTrainConfig.layers,
    batch_size: Annotated[int, typer.Option()] = DiffusionTrainConfig.batch_size,
    lr: Annotated[float, typer.Option()] = DiffusionTrainConfig.lr,
    max_steps: Annotated[int, typer.Option()] = DiffusionTrainConfig.max_steps,
    max_minutes: Annotated[
        float, typer.Option(help="stop (with a checkpoint) after this long")
    ] = DiffusionTrainConfig.max_minutes,
    eval_every: Annotated[
        int, typer.Option(help="steps between validation match rates")
    ] = DiffusionTrainConfig.eval_every,
    eval_samples: Annotated[
        int, typer.Option(help="validation crystals sampled per match-rate check")
    ] = DiffusionTrainConfig.eval_samples,
    max_atoms: Annotated[int, typer.Option(help="skip larger conventional cells")] = DiffusionTrainConfig.max_atoms,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the last checkpoint")] = False,
    seed: Annotated[int, typer.Option()] = DiffusionTrainConfig.seed,
    threads: Annotated[int, typer.Option(help="torch threads")] = DiffusionTrainConfig.threads,
    init_from: Annotated[
        Path | None, typer.Option(help="start from this checkpoint's weights (fresh optimiser and schedule)")
    ] = None,
    ema_decay: Annotated[
        float,
        typer.Option(min=0.0, max=0.9999, help="moving average of the weights, validated and saved (0: off)"),
    ] = DiffusionTrainConfig.ema_decay,
    warmup_steps: Annotated[int, typer.Option(min=0)] = DiffusionTrainConfig.warmup_steps,
) -> None:
    """Train the symmetry-conditioned diffusion model (checkpoints, resume, validation match rate)."""
    from xtalagent.structure_gen.commands import train_command

    settings = DiffusionTrainConfig(
        data=str(dataset),
        out_dir=str(output),
        train_split=train_split,
        val_split=val_split,
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
        ema_decay=ema_decay,
        warmup_steps=warmup_steps,
    )
    best = train_command(settings)
    out.print(f"best checkpoint: {best}")


@structures_app.command("eval-csp")
def structures_eval_csp(
    dataset: Annotated[Path, typer.Argument(help="Parquet from 'xtalagent data build'")],
    split: Annotated[str, typer.Option(help="split to evaluate ('all' for every row)")] = "test",
    sampler: Annotated[str, typer.Option(help="diffusion, pyxtal or both")] = "both",
    n: Annotated[int, typer.Option("-n", help="random crystals to evaluate")] = CspEvalSettings.crystals,
    k: Annotated[int, typer.Option("-k", help="samples per crystal for match@k")] = CspEvalSettings.k,
    seed: Annotated[int, typer.Option()] = 0,
    checkpoint: Annotated[Path | None, typer.Option(help="diffusion checkpoint; default: shipped")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="JSON report")] = Path("eval-csp.json"),
    steps: Annotated[int, typer.Option(help="diffusion denoising steps")] = SamplerSettings.steps,
    temperature: Annotated[
        float, typer.Option(help="diffusion noise scale (1: exact reverse process)")
    ] = SamplerSettings.temperature,
    prototypes: Annotated[
        int,
        typer.Option(
            min=0,
            help="samples per crystal from the closest known prototypes (train split only), then the model (0: none)",
        ),
    ] = SamplerSettings.prototypes,
) -> None:
    """Crystal structure prediction with the true constraints: match rate, RMSE, validity, speed."""
    from xtalagent.structure_gen.commands import eval_csp_command

    eval_csp_command(
        dataset=dataset,
        split=None if split == "all" else split,
        sampler=sampler,
        n=n,
        k=k,
        seed=seed,
        checkpoint=checkpoint,
        output=output,
        steps=steps,
        temperature=temperature,
        prototypes=prototypes,
        echo=out.print,
    )
