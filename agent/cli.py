"""The ``xtalagent`` command line: one verb per job, sensible defaults, clear errors.

Commands are thin: they parse options, call the stage API and print. Errors the user can fix
(:class:`~xtalagent.errors.XtalAgentError`, invalid records) become one red line and exit code 1.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table
from typer.exceptions import TyperException

from xtalagent import config
from xtalagent.agent.design_records import DesignSettings
from xtalagent.errors import InputError, XtalAgentError, validation_message
from xtalagent.eval.bench_cli import bench_app
from xtalagent.finetune.settings import ConstraintSettings, FinetuneSettings
from xtalagent.structure_gen.settings import (
    SAMPLES_PER_CONSTRAINT,
    CspEvalSettings,
    DiffusionTrainConfig,
    SamplerSettings,
)
from xtalagent.tools.settings import RelaxSettings

#: The design run's defaults, shown as the defaults of design, chat and web.
DESIGN = {name: field.default for name, field in DesignSettings.model_fields.items()}

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

app = typer.Typer(
    name="xtalagent",
    help="From a design request to screened crystal structures with exact space-group symmetry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Build and inspect symmetry-labelled crystal datasets.", no_args_is_help=True)
constraints_app = typer.Typer(
    help="Predict space group + Wyckoff sites from composition and target properties.", no_args_is_help=True
)
structures_app = typer.Typer(
    help="Generate crystal structures that carry a given symmetry constraint.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
app.add_typer(constraints_app, name="constraints")
app.add_typer(structures_app, name="structures")
eval_app = typer.Typer(help="End-to-end benchmarks of the whole pipeline.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(bench_app, name="bench")  # xtalagent bench NAME: eval/bench_cli.py


def configure_logging(level: int) -> None:
    """Show the library's log records (``xtalagent.*`` loggers) on stderr through rich, one handler
    per process however often :func:`main` runs; records still reach the root logger's handlers."""
    package = logging.getLogger("xtalagent")
    if not any(isinstance(h, RichHandler) for h in package.handlers):
        package.addHandler(RichHandler(console=console, show_time=False, show_path=False, markup=False))
    package.setLevel(level)


@app.callback()
def _logging_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="also show debug messages")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="show only warnings and errors")] = False,
) -> None:
    configure_logging(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)


# --- data ---------------------------------------------------------------------------------------
@data_app.command("build")
def data_build(
    inputs: Annotated[
        list[Path], typer.Argument(help="CSV(.gz) with a 'cif' column, .cif file, folder of CIFs, or ASE .db")
    ],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Parquet file to write")] = None,
    symprec: Annotated[float, typer.Option(help="symmetry tolerance in Å")] = config.SYMPREC,
    workers: Annotated[int, typer.Option(help="worker processes (0: all cores)")] = 0,
    force: Annotated[bool, typer.Option("--force", help="rebuild even if a cached result exists")] = False,
    limit: Annotated[int | None, typer.Option(help="label only the first N crystals")] = None,
) -> None:
    """Label crystals with space group, conventional cell and Wyckoff sites; write Parquet + report."""
    from xtalagent.data import build_dataset
    from xtalagent.data.build import report_path

    if output is None:
        stem = inputs[0].name.split(".")[0] or "dataset"
        output = Path("datasets") / f"{stem}.parquet"
    report = build_dataset(inputs, output, symprec=symprec, workers=workers or None, force=force, limit=limit)
    state = "cached result reused" if report.cached else f"{report.seconds:.1f} s on {report.workers} worker(s)"
    out.print(
        f"[green]labelled {report.n_labelled}/{report.n_read}[/] crystals "
        f"({100 * report.labelled_fraction:.2f}%) -> {output}  [dim]({state})[/]"
    )
    if report.skipped_by_reason:
        reasons = ", ".join(f"{n} {why}" for why, n in report.skipped_by_reason.items())
        out.print(f"skipped: {reasons}  [dim](details in {report_path(output)})[/]")
        for item in report.skipped[:5]:
            out.print(f"  {item['id']}: {item['reason']}", highlight=False, markup=False)
        if report.n_skipped > 5:
            out.print(f"  ... and {report.n_skipped - 5} more")
    out.print("splits: " + ", ".join(f"{k} {v}" for k, v in sorted(report.splits.items())))


@data_app.command("info")
def data_info(dataset: Annotated[Path, typer.Argument(help="Parquet file from 'xtalagent data build'")]) -> None:
    """Summarise a labelled dataset: rows per split, frequent space groups, property columns."""
    from xtalagent.data import load_dataset
    from xtalagent.data.schema import CORE_COLUMNS

    frame = load_dataset(dataset)
    table = Table(title=f"{dataset} ({len(frame)} crystals)")
    table.add_column("split")
    table.add_column("crystals", justify="right")
    table.add_column("top space groups")
    for split, part in frame.groupby("split"):
        top = part["spacegroup"].value_counts().head(5)
        table.add_row(str(split), str(len(part)), ", ".join(f"{g} ({n})" for g, n in top.items()))
    out.print(table)
    props = [c for c in frame.columns if c not in CORE_COLUMNS]
    out.print("properties: " + (", ".join(props) or "none"))


# --- later stages -------------------------------------------------------------------------------
def read_text_input(path: Path, what: str) -> list[str]:
    """Lines of a text input file; a folder, binary or unreadable file is one :class:`InputError` line."""
    if not path.exists():
        raise InputError(f"{what} {path}: no such file")
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder; give a file")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{what} {path} is not UTF-8 text (a binary file?)") from None
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read ({exc.strerror or type(exc).__name__})") from None


@constraints_app.command("predict")
def constraints_predict(
    requests: Annotated[Path, typer.Argument(help="JSONL: one request per line (see 'finetune/requests.py')")],
    output: Annotated[Path, typer.Option("-o", "--output", help="JSONL file to write")] = Path("constraints.jsonl"),
    top_k: Annotated[int, typer.Option("--top-k", help="candidates per request")] = ConstraintSettings.top_k,
    temperature: Annotated[float, typer.Option(help="0 = beam search; >0 = sampling")] = ConstraintSettings.temperature,
    seed: Annotated[int, typer.Option(help="random seed for sampling")] = ConstraintSettings.seed,
    model: Annotated[Path | None, typer.Option(help="model folder (base/, sg/, wyckoff/); default: embedded")] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint serving adapters 'sg' and 'wyckoff'")
    ] = None,
    prior: Annotated[
        bool,
        typer.Option(help="let known crystals (both stages) and the composition and ratio classifiers (stage 1) vote"),
    ] = True,
    variant: Annotated[
        str, typer.Option(help="release: the prior hears every known crystal; eval: the train split only")
    ] = "release",
    timeout: Annotated[float, typer.Option(min=1, help="seconds per call to --endpoint")] = 300.0,
) -> None:
    """Predict space group and Wyckoff sites for each request of a JSONL file.

    With --endpoint, --model names the folder the server serves (default: the embedded model, as
    'xtalagent serve' does): its tokenizer and voters are used here, so the answers match in process.
    """
    from rich.progress import track

    from xtalagent.finetune.predictor import duplicate_ids, load_predictor, read_request_lines
    from xtalagent.finetune.requests import Prediction
    from xtalagent.io import atomic_path, check_output_file, exclusive_output

    items = list(read_request_lines(read_text_input(requests, "request file")))
    if not items:
        raise InputError(f"{requests} holds no requests (one JSON object per line)")
    for key in duplicate_ids(items):
        console.print(f"[yellow]warning:[/] request id {key} is given more than once in {requests}")
    check_output_file(output)
    replaced = output.exists()
    with exclusive_output(output):
        scoring = {"timeout": timeout} if endpoint else {}
        predictor = load_predictor(model, endpoint, use_prior=prior, variant=variant, **scoring)
        n_errors = 0
        with atomic_path(output) as tmp, open(tmp, "w") as handle:
            for item in track(items, description="predicting", console=console):
                prediction = (
                    item
                    if isinstance(item, Prediction)
                    else predictor.predict_request(item, top_k=top_k, temperature=temperature, seed=seed)
                )
                n_errors += prediction.error is not None
                handle.write(prediction.model_dump_json(exclude_none=True) + "\n")
    note = " (replaced the previous file)" if replaced else ""
    out.print(f"{len(items) - n_errors} answered, {n_errors} with errors -> {output}{note}")


@constraints_app.command("eval")
def constraints_eval(
    dataset: Annotated[Path, typer.Argument(help="Parquet file from 'xtalagent data build'")],
    split: Annotated[str, typer.Option(help="split to evaluate")] = "val",
    output: Annotated[Path, typer.Option("-o", "--output", help="folder for JSON + confusion PNGs")] = Path(
        "eval-constraints"
    ),
    limit: Annotated[int | None, typer.Option(help="evaluate a random subset of N crystals")] = None,
    patterns: Annotated[
        str, typer.Option(help="comma-separated: formula,elements,composition")
    ] = "formula,elements,composition",
    properties: Annotated[
        str, typer.Option(help="comma-separated: band_gap,formation_energy,none")
    ] = "band_gap,formation_energy,none",
    top_k: Annotated[int, typer.Option("--top-k")] = ConstraintSettings.top_k,
    decode_k: Annotated[int | None, typer.Option(help="candidates fully decoded per request (default: top-k)")] = None,
    model: Annotated[Path | None, typer.Option(help="model folder; default: embedded")] = None,
    endpoint: Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint")] = None,
    prior: Annotated[
        bool, typer.Option(help="let known crystals and the composition and ratio classifiers vote beside the model")
    ] = True,
) -> None:
    """Evaluate the constraint generator on a labelled dataset split (accuracy, validity, baselines)."""
    from xtalagent.eval.constraints_report import run_constraint_eval

    summary = run_constraint_eval(
        dataset=dataset,
        split=split,
        output=output,
        limit=limit,
        patterns=patterns.split(","),
        properties=properties.split(","),
        top_k=top_k,
        model=model,
        endpoint=endpoint,
        decode_k=decode_k,
        use_prior=prior,
    )
    table = Table(title=f"constraint generator on {dataset.name}:{split}")
    columns = ("request", "n", "sg top-1", "sg top-k", "wyckoff|sg", "template", "valid", "NN", "prototype NN")
    for column in columns:
        table.add_column(column)
    for key, row in summary["results"].items():
        table.add_row(
            key,
            str(row["n"]),
            f"{row['sg_top1']:.3f}",
            f"{row['sg_topk']:.3f}",
            f"{row['wyckoff_top1_given_group']:.3f}",
            f"{row['template_top1']:.3f}",
            f"{row['valid_rate']:.3f}",
            f"{row['baseline_nearest_neighbour']:.3f}",
            f"{row['baseline_nearest_prototype']:.3f}",
        )
    out.print(table)
    out.print(f"-> {output}/constraints_eval.json")


@app.command("finetune")
def finetune(
    dataset: Annotated[Path, typer.Argument(help="Parquet from 'xtalagent data build', or a CSV of CIFs + properties")],
    output: Annotated[Path, typer.Option("-o", "--output", help="model folder to write (base/, sg/, wyckoff/)")] = Path(
        "runs/constraints"
    ),
    base_model: Annotated[
        str | None, typer.Option(help="local path or hub id of a causal LM; default: pretrain a compact one")
    ] = None,
    stages: Annotated[str, typer.Option(help="comma-separated stages to train")] = ",".join(FinetuneSettings.stages),
    epochs: Annotated[float, typer.Option(help="epochs per adapter")] = FinetuneSettings.epochs,
    base_epochs: Annotated[
        float, typer.Option(help="epochs of base pretraining (compact model only)")
    ] = FinetuneSettings.base_epochs,
    learning_rate: Annotated[float, typer.Option()] = FinetuneSettings.learning_rate,
    batch_size: Annotated[int, typer.Option()] = FinetuneSettings.batch_size,
    lora_r: Annotated[int, typer.Option()] = FinetuneSettings.lora_r,
    threads: Annotated[int | None, typer.Option(help="torch threads")] = FinetuneSettings.threads,
    limit: Annotated[int | None, typer.Option(help="use only N training crystals")] = FinetuneSettings.limit,
    base_hidden: Annotated[
        int, typer.Option(help="hidden size of the compact base (a multiple of 64)")
    ] = FinetuneSettings.base_hidden,
    base_layers: Annotated[
        int, typer.Option(help="transformer layers of the compact base")
    ] = FinetuneSettings.base_layers,
    variants_per_record: Annotated[
        int, typer.Option(help="training prompts per crystal: full formula + N-1 random pattern/property draws")
    ] = FinetuneSettings.variants_per_record,
    classifier_epochs: Annotated[
        int, typer.Option(help="epochs of the composition classifier")
    ] = FinetuneSettings.classifier_epochs,
    classifier_dropout: Annotated[
        float, typer.Option(help="dropout of the composition classifier, in [0, 1)")
    ] = FinetuneSettings.classifier_dropout,
) -> None:
    """Fine-tune the constraint generator: (compact base LM +) one LoRA adapter per stage. Resumable."""
    from xtalagent.finetune.workflow import run_finetune

    settings = FinetuneSettings(
        base_model=base_model,
        stages=tuple(stages.split(",")),
        epochs=epochs,
        base_epochs=base_epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        lora_r=lora_r,
        threads=threads,
        limit=limit,
        base_hidden=base_hidden,
        base_layers=base_layers,
        variants_per_record=variants_per_record,
        classifier_epochs=classifier_epochs,
        classifier_dropout=classifier_dropout,
    )
    folder = run_finetune(dataset=dataset, output=output, settings=settings)
    out.print(f"[green]constraint model ready[/] -> {folder}")


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
        echo=out.print,
    )


RAY_HELP = "relax on a Ray cluster: a local one started here, unless --ray-address (needs the 'ray' extra)"
RAY_ADDRESS_HELP = (
    "Ray cluster to join (implies --ray): auto (the one 'ray start' made here), HOST:6379, ray://HOST:10001"
)


def ray_cluster(ray: bool, address: str | None) -> str | None:
    """The Ray address of --ray/--ray-address: None (no Ray), 'local' (start one here) or the cluster's."""
    if address is None and not ray:
        return None
    from xtalagent.tools.distributed import require_ray

    require_ray()  # one line naming the extra, before any work
    return address or "local"


@app.command("screen")
def screen(
    source: Annotated[Path, typer.Argument(help="folder of CIFs, or a JSONL/CSV index with a 'cif_path' column")],
    output: Annotated[Path, typer.Option("-o", "--output", help="output folder")] = Path("screened"),
    potential: Annotated[
        str, typer.Option(help="auto (MatterSim if its checkpoint is present, else CHGNet), chgnet, mattersim")
    ] = "auto",
    checkpoint: Annotated[str | None, typer.Option(help="potential checkpoint path or name")] = None,
    relax: Annotated[bool, typer.Option("--relax/--no-relax", help="ML-potential relaxation")] = True,
    symmetric: Annotated[
        bool, typer.Option("--symmetric/--free", help="keep the symmetry while relaxing (FixSymmetry)")
    ] = True,
    fmax: Annotated[float, typer.Option(help="force convergence, eV/Å")] = RelaxSettings.fmax,
    max_steps: Annotated[int, typer.Option(help="optimizer step limit per structure")] = RelaxSettings.max_steps,
    timeout: Annotated[float, typer.Option(help="seconds per structure")] = RelaxSettings.timeout,
    batch_size: Annotated[int, typer.Option(help="structures evaluated together")] = RelaxSettings.batch_size,
    stability: Annotated[bool, typer.Option("--stability/--no-stability", help="formation energy and e_hull")] = True,
    hull_table: Annotated[
        Path | None, typer.Option(help="CSV of reference formation energies (formula,e_form)")
    ] = None,
    references: Annotated[Path | None, typer.Option(help="reference structures for novelty (folder or index)")] = None,
    phonons: Annotated[bool, typer.Option("--phonons", help="Γ-point phonon check")] = False,
    limit: Annotated[int | None, typer.Option(help="screen only the first N candidates")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads")] = None,
    optimizer: Annotated[str, typer.Option(help="BFGS, LBFGS or FIRE (CHGNet's StructOptimizer uses FIRE)")] = (
        RelaxSettings.optimizer
    ),
    prerelax: Annotated[bool, typer.Option("--prerelax", help="LEGO descriptor pre-relaxation first")] = False,
    prerelax_reference: Annotated[Path | None, typer.Option(help="reference structures/dataset for --prerelax")] = None,
    band_gap: Annotated[
        bool, typer.Option("--band-gap/--no-band-gap", help="predict PBE band gaps with the shipped model")
    ] = True,
    band_gap_min: Annotated[float | None, typer.Option(help="band-gap window, lower end (eV): adds meets_band_gap")] = (
        None
    ),
    band_gap_max: Annotated[float | None, typer.Option(help="band-gap window, upper end (eV)")] = None,
    ray: Annotated[bool, typer.Option("--ray", help=RAY_HELP)] = False,
    ray_address: Annotated[str | None, typer.Option(help=RAY_ADDRESS_HELP)] = None,
) -> None:
    """Relax candidates with an ML potential, score stability, check and rank them. Re-runs skip finished ones."""
    from xtalagent.tools.screen import screen_command

    hook = None
    if prerelax:
        from xtalagent.tools.prerelax import structure_hook

        hook = structure_hook(prerelax_reference)
    screen_command(
        source=source,
        out=output,
        potential=potential,
        checkpoint=checkpoint,
        relax=relax,
        symmetric=symmetric,
        fmax=fmax,
        max_steps=max_steps,
        timeout=timeout,
        batch_size=batch_size,
        stability=stability,
        hull_table=hull_table,
        references=references,
        phonons=phonons,
        limit=limit,
        threads=threads,
        prerelax=hook,
        optimizer=optimizer,
        band_gap=band_gap,
        band_gap_min=band_gap_min,
        band_gap_max=band_gap_max,
        ray=ray_cluster(ray, ray_address),
        echo=typer.echo,
    )


@app.command("properties")
def properties(
    source: Annotated[Path, typer.Argument(help="folder of CIFs (searched recursively), a .cif, or a CSV with 'cif'")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV to write")] = Path("properties.csv"),
    potential: Annotated[
        str, typer.Option(help="auto (MatterSim if present, else CHGNet), chgnet, mattersim")
    ] = "auto",
    checkpoint: Annotated[str | None, typer.Option(help="potential checkpoint path or name")] = None,
    band_gap_model: Annotated[Path | None, typer.Option(help="band-gap model folder (default: shipped)")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads")] = None,
) -> None:
    """PBE band gap (± spread) and formation energy of crystals as given (no relaxation), one CSV."""
    from xtalagent.tools.potentials import limit_threads
    from xtalagent.tools.properties import properties_command

    limit_threads(threads)
    frame = properties_command(
        source=source, output=output, potential=potential, checkpoint=checkpoint, band_gap_model=band_gap_model
    )
    skipped = int(frame["reason"].notna().sum())
    out.print(f"[green]{len(frame) - skipped}/{len(frame)}[/] crystals -> {output}")
    if skipped:
        out.print(f"{skipped} with a problem (see the 'reason' column)")


@app.command("design")
def design(
    prompt: Annotated[str, typer.Argument(help='the request in words, e.g. "a stable Ti-O compound, band gap ~3 eV"')],
    n: Annotated[
        int | None, typer.Option("-n", help="structures to generate (default: from the prompt, else 10)")
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="run folder (re-running resumes)")] = Path("design"),
    top_k: Annotated[int, typer.Option(help="constraint candidates tried")] = DESIGN["top_k"],
    sampler: Annotated[str, typer.Option(help="auto, diffusion or pyxtal")] = DESIGN["sampler"],
    prerelax: Annotated[str, typer.Option(help="LEGO pre-relaxation: auto, on or off")] = DESIGN["prerelax"],
    potential: Annotated[
        str, typer.Option(help="auto (MatterSim if present, else CHGNet), chgnet, mattersim")
    ] = DESIGN["potential"],
    relax_steps: Annotated[int, typer.Option(help="relaxation steps per structure")] = DESIGN["relax_max_steps"],
    endpoint: Annotated[
        str | None, typer.Option(help="OpenAI-compatible chat endpoint that reads the prompt (default: offline parser)")
    ] = None,
    model: Annotated[str | None, typer.Option(help="chat model name at --endpoint")] = None,
    seed: Annotated[int, typer.Option()] = DESIGN["seed"],
    threads: Annotated[int | None, typer.Option(help="torch threads (default: all cores)")] = None,
    known_phases: Annotated[
        int, typer.Option(help="known phases of the chemistry relaxed beside the candidates (0: none)", min=0, max=50)
    ] = DESIGN["known_phases"],
    band_gap: Annotated[
        bool, typer.Option("--band-gap/--no-band-gap", help="predict band gaps with the shipped model")
    ] = DESIGN["band_gap"],
    band_gap_window: Annotated[
        float, typer.Option(help="eV either side of a bare band-gap value ('near 3 eV') that counts as met")
    ] = DESIGN["band_gap_window"],
    formation_energy_window: Annotated[
        float, typer.Option(help="eV/atom either side of a bare formation-energy value that counts as met")
    ] = DESIGN["formation_energy_window"],
    band_gap_offset: Annotated[
        float,
        typer.Option(help="read the band-gap wish as a measured gap: subtract this (eV) to get the PBE target"),
    ] = DESIGN["band_gap_offset"],
    variant: Annotated[
        str, typer.Option(help="release: every known crystal informs the run; eval: train split only (benchmarks)")
    ] = DESIGN["variant"],
    ray: Annotated[bool, typer.Option("--ray", help=RAY_HELP)] = False,
    ray_address: Annotated[str | None, typer.Option(help=RAY_ADDRESS_HELP)] = None,
    oversample: Annotated[
        int | None,
        typer.Option(
            help="structures generated per candidate; the potential's single-point energy picks which to relax "
            "(default: the measured setting, see README)",
            min=1,
            max=5,
        ),
    ] = None,
) -> None:
    """Run the whole pipeline on a design request in plain words: ranked CIFs, summary and report.md."""
    from xtalagent.agent.commands import NeedsAnswer, design_command
    from xtalagent.agent.pipeline import DesignSettings
    from xtalagent.tools.potentials import limit_threads

    limit_threads(threads)
    settings = DesignSettings(
        top_k=top_k,
        sampler=sampler,
        prerelax=prerelax,
        potential=potential,
        relax_max_steps=relax_steps,
        seed=seed,
        known_phases=known_phases,
        band_gap=band_gap,
        band_gap_window=band_gap_window,
        formation_energy_window=formation_energy_window,
        band_gap_offset=band_gap_offset,
        variant=variant,
        ray_address=ray_cluster(ray, ray_address),
        **({} if oversample is None else {"oversample": oversample}),
    )
    try:
        design_command(prompt, output, n=n, settings=settings, endpoint=endpoint, model=model, console=console)
    except NeedsAnswer as exc:
        console.print(f"[yellow]question:[/] {exc}")
        raise typer.Exit(2) from None


@eval_app.command("design")
def eval_design(
    dataset: Annotated[Path, typer.Argument(help="Parquet from 'xtalagent data build' with a 'test' split")],
    output: Annotated[Path, typer.Option("-o", "--output", help="folder for run folders and the JSON")] = Path(
        "runs/eval-design"
    ),
    pattern: Annotated[str, typer.Option(help="formula (cell formula) or elements")] = "formula",
    prop: Annotated[str, typer.Option("--property", help="formation_energy or band_gap")] = "formation_energy",
    reference: Annotated[
        str, typer.Option(help="model (the pipeline), random (unconstrained baseline) or true (true constraints)")
    ] = "model",
    n: Annotated[int, typer.Option("-n", help="test requests (seeded)", min=1)] = 50,
    candidates: Annotated[int, typer.Option(help="candidates per request", min=1, max=50)] = 5,
    seed: Annotated[int, typer.Option()] = 0,
    relax_steps: Annotated[int, typer.Option(help="relaxation steps", min=1)] = config.DESIGN_RELAX_MAX_STEPS,
    shard: Annotated[str, typer.Option(help="I/M: run every M-th request starting at I (split a run over cores)")] = (
        "0/1"
    ),
    threads: Annotated[int | None, typer.Option(help="torch threads")] = 1,
    results: Annotated[Path | None, typer.Option(help="folder for the JSON (default: --output)")] = None,
    split: Annotated[str, typer.Option(help="test (reported figures) or val (tuning the pipeline)")] = "test",
    oversample: Annotated[
        int | None, typer.Option(help="structures per candidate (default: design's default)", min=1, max=5)
    ] = None,
) -> None:
    """Design rounds on MP test crystals as users run them: hit rate, composition precision, S.U.N., rediscovery."""
    from rich.progress import Progress

    from xtalagent.errors import InputError
    from xtalagent.eval.design_benchmark import DesignBenchSettings, run_benchmark
    from xtalagent.tools.potentials import limit_threads

    choices = {"pattern": ("formula", "elements"), "property": ("formation_energy", "band_gap"),
               "reference": ("model", "random", "true"), "split": ("test", "val")}  # fmt: skip
    for name, value in (("pattern", pattern), ("property", prop), ("reference", reference), ("split", split)):
        if value not in choices[name]:
            raise InputError(f"--{name} must be one of {', '.join(choices[name])}, not {value!r}")
    if reference != "model" and pattern != "formula":
        raise InputError("the random and true references need cell-formula requests (--pattern formula)")
    try:
        index, count = (int(x) for x in shard.split("/"))
        if not 0 <= index < count:
            raise ValueError
    except ValueError:
        raise InputError(f"--shard must look like I/M with 0 <= I < M, not {shard!r}") from None
    if not dataset.is_file():
        raise InputError(f"{dataset}: no such dataset (build one with 'xtalagent data build')")
    limit_threads(threads)
    settings = DesignBenchSettings(
        dataset=dataset,
        out=output,
        pattern=pattern,  # type: ignore[arg-type]
        prop=prop,  # type: ignore[arg-type]
        reference=reference,  # type: ignore[arg-type]
        n_requests=n,
        candidates=candidates,
        seed=seed,
        relax_steps=relax_steps,
        shard=(index, count),
        results=results,
        split=split,  # type: ignore[arg-type]
        oversample=oversample,
    )
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("design requests", total=None)
        result = run_benchmark(settings, progress=lambda done, total: bar.update(task, completed=done, total=total))
    summary = result["summary"]
    table = Table(title=f"{pattern} + {prop}, {reference} constraints ({result['variant'].split(' ')[0]} variant)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key != "refusals":
            table.add_row(key, str(value))
    out.print(table)
    out.print(f"property proxy: {result['property_proxy']}")
    out.print(f"-> {result['path']}")


@app.command("chat")
def chat(
    output: Annotated[Path, typer.Option("-o", "--output", help="session folder (outputs and transcript)")] = Path(
        "chat"
    ),
    endpoint: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint with tool calling (default: offline model)")
    ] = None,
    model: Annotated[str | None, typer.Option(help="chat model name at --endpoint")] = None,
    script: Annotated[Path | None, typer.Option(help="read the user's turns from this text file, one per line")] = None,
    potential: Annotated[str, typer.Option(help="auto, chgnet or mattersim")] = DESIGN["potential"],
    prerelax: Annotated[str, typer.Option(help="LEGO pre-relaxation: auto, on or off")] = DESIGN["prerelax"],
    threads: Annotated[int | None, typer.Option(help="torch threads (default: all cores)")] = None,
) -> None:
    """Talk to the design agent in the terminal; it keeps context across turns and saves the transcript."""
    from xtalagent.agent.chat import chat_loop, console_events, make_agent
    from xtalagent.agent.pipeline import DesignSettings
    from xtalagent.tools.potentials import limit_threads

    limit_threads(threads)
    lines = None if script is None else read_text_input(script, "script")
    agent = make_agent(
        output=output,
        settings=DesignSettings(potential=potential, prerelax=prerelax),
        endpoint=endpoint,
        model=model,
        on_event=console_events(out),
    )
    chat_loop(agent, Console(), lines)


@app.command("web")
def web(
    output: Annotated[Path, typer.Option("-o", "--output", help="session folder (outputs and transcript)")] = Path(
        "chat"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port, 1-65535")] = 7860,
    host: Annotated[str, typer.Option(help="address to bind; the default serves this machine only")] = "127.0.0.1",
    endpoint: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint with tool calling (default: offline model)")
    ] = None,
    model: Annotated[str | None, typer.Option(help="chat model name at --endpoint")] = None,
    potential: Annotated[str, typer.Option(help="auto, chgnet or mattersim")] = DESIGN["potential"],
    prerelax: Annotated[str, typer.Option(help="LEGO pre-relaxation: auto, on or off")] = DESIGN["prerelax"],
    threads: Annotated[int | None, typer.Option(help="torch threads (default: all cores)")] = None,
    settings: Annotated[str | None, typer.Option(hidden=True, help="every design setting as JSON (tests)")] = None,
) -> None:
    """The chat agent in a local browser page: tool steps, candidate table, 3D viewer, E_hull plot, downloads."""
    from xtalagent.agent.web import serve_web, web_settings
    from xtalagent.tools.potentials import limit_threads

    limit_threads(threads)
    design = web_settings(potential=potential, prerelax=prerelax, settings_json=settings)
    serve_web(output=output, host=host, port=port, endpoint=endpoint, model=model, settings=design, announce=out.print)


@app.command("serve", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def serve(
    ctx: typer.Context,
    model: Annotated[Path | None, typer.Option(help="model folder (base/, sg/, wyckoff/); default: embedded")] = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port, 1-65535")] = 8000,
    vllm_python: Annotated[
        str | None,
        typer.Option(
            envvar="XTALAGENT_VLLM_PYTHON",
            help="Python with vLLM (default: the virtualenv of install_vllm.sh if present, else this one)",
        ),
    ] = None,
    dtype: Annotated[str, typer.Option(help="float32 gives the in-process scores; bfloat16 halves memory")] = "float32",
    max_model_len: Annotated[int | None, typer.Option(help="context (default: the model's, at most 2048)")] = None,
    ready_timeout: Annotated[float, typer.Option(help="seconds to wait for the server to answer")] = 600.0,
    merge: Annotated[
        bool,
        typer.Option("--merge/--no-merge", help="serve the Wyckoff-merged weights with stage 1 as one LoRA on them"),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the vLLM command instead of running it")] = False,
) -> None:
    """Serve the constraint models with vLLM's OpenAI-compatible server (multi-LoRA).

    Flags after the options go to vLLM unchanged and replace serve's own (e.g. --max-num-seqs 64).
    """
    from xtalagent.finetune.serve import serve as start
    from xtalagent.finetune.serve import vllm_command
    from xtalagent.finetune.serve import vllm_python as python_for_vllm

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "dtype": dtype,
        "max_model_len": max_model_len,
        "merge": merge,
        "extra": list(ctx.args),
    }
    folder = model or config.CONSTRAINT_MODEL_DIR
    if dry_run:
        out.print(" ".join(vllm_command(folder, python=python_for_vllm(vllm_python), **options)))
        return
    raise typer.Exit(start(folder, python=vllm_python, ready_timeout=ready_timeout, announce=out.print, **options))


def main(argv: list[str] | None = None) -> int:
    """Console entry point; turns user errors into one line and a non-zero exit."""
    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(n) is returned, not raised, without standalone mode
            return code
    except (click.exceptions.Exit, typer.Exit) as exc:
        return exc.exit_code
    except (click.ClickException, TyperException) as exc:  # typer >= 0.2x raises its own copy of click's
        if type(exc).__name__ == "NoArgsIsHelpError" or not exc.format_message():  # a bare group: its help
            exc.show()  # type: ignore[union-attr]  # typer's NoArgsIsHelpError is a click exception
            return exc.exit_code
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        console.print(f"[red]error:[/] {escape(exc.format_message())}{hint}", highlight=False)
        return 1
    except (click.exceptions.Abort, typer.Abort, KeyboardInterrupt):
        console.print("[yellow]interrupted[/]")
        return 130
    except XtalAgentError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")  # escaped: "xtalagent[finetune]" is not markup
        return 1
    except ValidationError as exc:
        console.print(f"[red]error:[/] {escape(validation_message(exc))}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
