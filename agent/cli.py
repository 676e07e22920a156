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
from typer.exceptions import TyperException

from xtalagent import config
from xtalagent.agent.cli_common import DESIGN, console, out, read_text_input
from xtalagent.agent.cli_constraints import constraints_app
from xtalagent.agent.cli_data import data_app
from xtalagent.agent.cli_eval import eval_app
from xtalagent.agent.cli_structures import structures_app
from xtalagent.errors import XtalAgentError, validation_message
from xtalagent.eval.bench_cli import bench_app
from xtalagent.finetune.settings import FinetuneSettings
from xtalagent.tools.settings import RelaxSettings

app = typer.Typer(
    name="xtalagent",
    help="From a design request to screened crystal structures with exact space-group symmetry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.add_typer(constraints_app, name="constraints")
app.add_typer(structures_app, name="structures")
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


# --- later stages -------------------------------------------------------------------------------
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
        ray=ray_cluster(ray=ray, address=ray_address),
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
    prototypes: Annotated[
        int,
        typer.Option(
            min=0, max=20, help="structures per constraint from the closest known prototypes, before the model"
        ),
    ] = DESIGN["prototypes"],
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
        prototypes=prototypes,
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
        ray_address=ray_cluster(ray=ray, address=ray_address),
        **({} if oversample is None else {"oversample": oversample}),
    )
    try:
        design_command(
            prompt=prompt, output=output, n=n, settings=settings, endpoint=endpoint, model=model, console=console
        )
    except NeedsAnswer as exc:
        console.print(f"[yellow]question:[/] {exc}")
        raise typer.Exit(2) from None


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
    layout: Annotated[
        str,
        typer.Option(
            help="split: one server per stage (ports P, P+1), adapters merged in, fastest on CPU; "
            "lora: one server with both adapters (GPU, or a base too large to hold twice)"
        ),
    ] = "split",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the vLLM command instead of running it")] = False,
) -> None:
    """Serve the constraint models with vLLM's OpenAI-compatible server.

    Prints the --endpoint to use once every server answers. Flags after the options go to vLLM
    unchanged (to every server) and replace serve's own (e.g. --max-num-seqs 64).
    """
    from xtalagent.finetune.serve import serve as start
    from xtalagent.finetune.serve import vllm_commands
    from xtalagent.finetune.serve import vllm_python as python_for_vllm

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "dtype": dtype,
        "max_model_len": max_model_len,
        "layout": layout,
        "extra": list(ctx.args),
    }
    folder = model or config.CONSTRAINT_MODEL_DIR
    if dry_run:
        for spec in vllm_commands(folder, python=python_for_vllm(vllm_python), **options):
            out.print(" ".join(spec.command))
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
