"""``xtalagent eval``: end-to-end benchmarks of the whole pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from xtalagent import config
from xtalagent.agent.cli_common import console, out
from xtalagent.errors import InputError

eval_app = typer.Typer(help="End-to-end benchmarks of the whole pipeline.", no_args_is_help=True)


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
