"""``xtalagent bench NAME``: the benchmarks users can rerun, one command each.

These are the measurements the README quotes as current figures. Each command is thin: it parses
options and calls ``run_*`` of :mod:`xtalagent.eval.benchmarks`, which writes the result JSON
(with a ``run`` block naming the benchmark, its variant, the options and the machine) into
``bench/results/``. Three commands hand their arguments on unchanged: ``design-e2e`` to
``xtalagent eval design``, and ``csp`` / ``sampling-speed`` to the structure generator's scripts in
``bench/`` (a repository checkout is needed for those two). Tuning experiments are not here: see
``bench/experiments/``.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

out = Console(soft_wrap=True)

bench_app = typer.Typer(
    help="Rerun the benchmarks the README quotes; results go to bench/results/ (see bench/README.md).",
    no_args_is_help=True,
)

VariantOption = Annotated[
    str, typer.Option(help="name of this run's variant; the result file gets it as a suffix unless 'default'")
]
NoteOption = Annotated[str | None, typer.Option(help="what the variant changes (stored in the result)")]
ResultsOption = Annotated[Path | None, typer.Option(help="results folder (default: bench/results of the checkout)")]
SharedOption = Annotated[
    Path | None, typer.Option("--shared-data", help="shared raw data folder (default: ../shared/data)")
]
MpTableOption = Annotated[
    Path | None, typer.Option(help="MP table CSV (default: mp/structures.csv.gz of the shared data)")
]
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def _run(name: str, ctx: typer.Context, *, variant: str = "default", note: str | None = None) -> dict[str, Any]:
    """The ``run`` block of a result: this command and its options as given."""
    from xtalagent.eval.benchmarks.results import run_block

    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in ctx.params.items()}
    return run_block(benchmark=name, variant=variant, note=note, command=ctx.command_path, options=options)


def _threads(n: int | None) -> None:
    from xtalagent.tools.potentials import limit_threads

    limit_threads(n)


def _show(result: dict[str, Any], path: Path, title: str) -> None:
    """The result's headline figures (top-level numbers and short strings) and where it went."""
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [(k, v) for k, v in result.items() if not isinstance(v, dict)]
    rows += [(f"{k}.{sub}", v) for k, part in result.items() if isinstance(part, dict) for sub, v in part.items()]
    for key, value in rows:
        if isinstance(value, bool | int | float | str) and len(str(value)) < 80 and key.split(".")[0] != "run":
            table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    out.print(table)
    out.print(f"-> {path}")


def _script(relative: str, args: list[str]) -> None:
    """Run a checkout script as ``python SCRIPT ARGS`` in this process (its own argparse options)."""
    from xtalagent.eval.benchmarks.paths import checkout_path

    script = checkout_path(relative)
    saved = sys.argv
    sys.argv = [str(script), *args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = saved


def _split_list(text: str) -> list[str]:
    return [item for item in text.split(",") if item]


@bench_app.command("constraints")
def constraints(
    ctx: typer.Context,
    part: Annotated[str, typer.Argument(help="full (accuracy per pattern), patterns (all patterns), latency")],
    dataset: Annotated[Path | None, typer.Option(help="Parquet (default: datasets/mp_structures.parquet)")] = None,
    model: Annotated[Path | None, typer.Option(help="model folder (default: the embedded model)")] = None,
    properties: Annotated[str, typer.Option(help="full: comma-separated band_gap,formation_energy,none")] = "band_gap",
    patterns: Annotated[str, typer.Option(help="full: comma-separated formula,composition,elements; latency: one")] = (
        "formula"
    ),
    subset: Annotated[int | None, typer.Option(min=1, help="seeded crystals (full: all; patterns: 100)")] = None,
    split: Annotated[str, typer.Option(help="full: val, or test for a finished model's final report")] = "val",
    no_prior: Annotated[bool, typer.Option("--no-prior", help="stage 1 from the language model alone")] = False,
    requests: Annotated[int, typer.Option(min=1, help="latency: requests timed")] = 40,
    threads: Annotated[int, typer.Option(min=1, help="torch threads")] = 1,
    variant: VariantOption = "default",
    note: NoteOption = None,
    results: ResultsOption = None,
) -> None:
    """Constraint generator on MP val: space-group and Wyckoff accuracy, validity, baselines, latency."""
    from xtalagent.errors import InputError
    from xtalagent.eval.benchmarks.constraints import PARTS, run_constraints

    if part not in PARTS:
        raise InputError(f"PART must be one of {', '.join(PARTS)}, not {part!r}")
    if split not in ("val", "test"):
        raise InputError(f"--split must be val or test, not {split!r}")
    _threads(threads)
    result, path = run_constraints(
        part,  # type: ignore[arg-type]
        dataset=dataset,
        model=model,
        properties=_split_list(properties),
        patterns=_split_list(patterns),
        subset=subset,
        split=split,  # type: ignore[arg-type]
        use_prior=not no_prior,
        latency_requests=requests,
        variant=variant,
        note=note,
        results=results,
        run=_run(f"constraints {part}", ctx, variant=variant, note=note),
    )
    _show(result.get("results", result) if isinstance(result.get("results"), dict) else result, path, part)


@bench_app.command("band-gap")
def band_gap(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("-n", "--n", min=1, help="seeded crystals")] = 500,
    seed: Annotated[int, typer.Option()] = 0,
    split: Annotated[str, typer.Option(help="test (the reported figure) or val")] = "test",
    model: Annotated[Path | None, typer.Option(help="an eval model folder (default: the shipped eval variant)")] = None,
    record: Annotated[bool, typer.Option("--record", help="store the test figures in the model's model.json")] = False,
    threads: Annotated[int, typer.Option(min=1, help="torch threads")] = 1,
    mp_table: MpTableOption = None,
    shared_data: SharedOption = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="result JSON")] = None,
    variant: VariantOption = "default",
    note: NoteOption = None,
    results: ResultsOption = None,
) -> None:
    """Band-gap model (eval variant) on a seeded sample of MP test as given: MAE, metal accuracy, speed."""
    from xtalagent.errors import InputError
    from xtalagent.eval.benchmarks.band_gap import run_band_gap

    if split not in ("test", "val"):
        raise InputError(f"--split must be test or val, not {split!r}")
    _threads(threads)
    result, path = run_band_gap(model=model, n=n, seed=seed, split=split, threads=threads, record=record,  # type: ignore[arg-type]
                                mp_table=mp_table, shared=shared_data, output=output, results=results,
                                variant=variant, run=_run("band-gap", ctx, variant=variant, note=note))  # fmt: skip
    _show(result, path, "band gap")


@bench_app.command("screen")
def screen(
    ctx: typer.Context,
    which: Annotated[
        str,
        typer.Argument(
            help="ehull (vs MP e_above_hull), throughput (batched vs one at a time), check-table (hull table vs MP)"
        ),
    ],  # fmt: skip
    n: Annotated[int | None, typer.Option("-n", "--n", min=1, help="crystals (ehull 300, throughput 32)")] = None,
    split: Annotated[str, typer.Option(help="ehull: test or val")] = "test",
    seed: Annotated[int, typer.Option()] = 0,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    threads: Annotated[int, typer.Option(min=1, help="torch threads (throughput: all variants alike)")] = 1,
    mp_table: MpTableOption = None,
    shared_data: SharedOption = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="result JSON")] = None,
    variant: VariantOption = "default",
    note: NoteOption = None,
    results: ResultsOption = None,
) -> None:
    """Screening: E_hull of CHGNet-relaxed MP crystals against MP, and relaxation throughput."""
    from xtalagent.errors import InputError
    from xtalagent.eval.benchmarks.screen import WHICH, run_screen

    if which not in WHICH:
        raise InputError(f"WHICH must be one of {', '.join(WHICH)}, not {which!r}")
    if split not in ("test", "val"):
        raise InputError(f"--split must be test or val, not {split!r}")
    _threads(threads)
    run = _run(f"screen {which}", ctx, variant=variant, note=note)
    result, path = run_screen(which, n=n, split=split, seed=seed, batch_size=batch_size, threads=threads,  # type: ignore[arg-type]
                              mp_table=mp_table, shared=shared_data, output=output, results=results,
                              variant=variant, run=run)  # fmt: skip
    _show(result, path, f"screen {which}")


@bench_app.command("design-timing")
def design_timing(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Option(help="the request in words (default: the README's)")] = (
        "A stable Ti-O compound with a band gap near 3 eV"
    ),
    n: Annotated[int, typer.Option("-n", "--n", min=1, help="candidates")] = 10,
    name: Annotated[str, typer.Option(help="result name (bench/results/NAME.json)")] = "design_tio",
    work: Annotated[Path, typer.Option(help="run folder, emptied first (a cold run)")] = Path("runs/bench_design"),
    threads: Annotated[int | None, typer.Option(help="torch threads (default: all cores, as users run it)")] = None,
    results: ResultsOption = None,
) -> None:
    """Wall time of the README's main job, 'xtalagent design PROMPT -n 10', cold, per stage."""
    from xtalagent.eval.benchmarks.design_timing import run_design_timing

    _threads(threads)
    result, path = run_design_timing(prompt=prompt, n=n, name=name, work=work, results=results,
                                     run=_run("design-timing", ctx))  # fmt: skip
    _show(result, path, "design timing")


@bench_app.command("design-e2e", context_settings=PASS_THROUGH, add_help_option=False)
def design_e2e(ctx: typer.Context) -> None:
    """End-to-end design outcomes on MP test requests: the same as 'xtalagent eval design' (its options)."""
    from xtalagent.agent.cli import app

    typer.main.get_command(app).main(args=["eval", "design", *ctx.args], prog_name="xtalagent",
                                     standalone_mode=False)  # fmt: skip


@bench_app.command("csp", context_settings=PASS_THROUGH, add_help_option=False)
def csp(ctx: typer.Context) -> None:
    """Structure generator CSP match rate on true constraints (runs bench/bench_csp.py; its options)."""
    _script("bench/bench_csp.py", ctx.args)


@bench_app.command("sampling-speed", context_settings=PASS_THROUGH, add_help_option=False)
def sampling_speed(ctx: typer.Context) -> None:
    """Batched structures per second of the diffusion sampler (runs bench/bench_sampling_speed.py)."""
    _script("bench/bench_sampling_speed.py", ctx.args)


@bench_app.command("serving", context_settings=PASS_THROUGH, add_help_option=False)
def serving(ctx: typer.Context) -> None:
    """Constraint prediction through a real vLLM server against in process (runs bench/bench_serving.py)."""
    _script("bench/bench_serving.py", ctx.args)


@bench_app.command("ray", context_settings=PASS_THROUGH, add_help_option=False)
def ray_screen(ctx: typer.Context) -> None:
    """Screening on a local Ray cluster against serial: same rows, throughput (runs bench/bench_ray.py)."""
    _script("bench/bench_ray.py", ctx.args)


@bench_app.command("request-parser")
def request_parser(
    ctx: typer.Context,
    suite: Annotated[Path | None, typer.Option(help="phrasing suite (default: bench/request_suite.jsonl)")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="result JSON")] = None,
    results: ResultsOption = None,
) -> None:
    """The offline request parser on the phrasing suites: exact-match accuracy and every failure."""
    from xtalagent.eval.benchmarks.request_parser import SUITE, run_request_parser

    report, path = run_request_parser(suite=suite or SUITE, output=output, results=results,
                                      run=_run("request-parser", ctx))  # fmt: skip
    out.print(f"request parser: {report['correct']}/{report['n']} exact ({100 * report['exact_match_accuracy']:.1f}%)")
    for kind, row in report["by_kind"].items():
        out.print(f"  {kind:10s} {row['correct']}/{row['n']}")
    for failure in report["failures"]:
        line = (f"FAIL {failure['text']!r}: expected {failure['expected']}, got {failure['got']} "
                f"(questions {failure['questions']}, error {failure['error']!r})")  # fmt: skip
        out.print(line, markup=False, highlight=False)
    out.print(f"-> {path}")


@bench_app.command("fuzz")
def fuzz(
    ctx: typer.Context,
    cases: Annotated[int, typer.Option(min=1, help="cases in all, shared out by input kind")] = 10_000,
    seed: Annotated[int, typer.Option()] = 0,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="result JSON")] = None,
    variant: VariantOption = "default",
    note: NoteOption = None,
    results: ResultsOption = None,
) -> None:
    """Fuzzed request lines, constraint lines, CIFs and prompts through their readers: no traceback, ever."""
    from xtalagent.eval.benchmarks.fuzz import run_fuzz

    report, path = run_fuzz(cases=cases, seed=seed, output=output, results=results, variant=variant,
                            run=_run("fuzz", ctx, variant=variant, note=note))  # fmt: skip
    for kind, row in report["kinds"].items():
        out.print(f"{kind:16s} " + ", ".join(f"{k} {v}" for k, v in row.items() if not isinstance(v, dict)))
    failures = (f"{report['tracebacks']} tracebacks, {report['hidden_exceptions']} hidden exceptions, "
                f"{report['multiline_errors']} multi-line errors, {report['timeouts']} timeouts")  # fmt: skip
    out.print(f"{report['cases']} cases: {failures} -> {path}")


@bench_app.command("data-build")
def data_build(
    ctx: typer.Context,
    dataset: Annotated[list[str] | None, typer.Option(help="mp and/or perov_5 (default: both)")] = None,
    force: Annotated[bool, typer.Option("--force", help="rebuild even when cached")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="label only the first N crystals of each file")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="worker processes (default: all cores)")] = None,
    out_dir: Annotated[Path, typer.Option(help="where the Parquet files go")] = Path("datasets"),
    shared_data: SharedOption = None,
    variant: VariantOption = "default",
    note: NoteOption = None,
    results: ResultsOption = None,
) -> None:
    """'xtalagent data build' on the shared MP-20 and Perov-5 sets: labelled fraction and wall time."""
    from xtalagent.eval.benchmarks.data_build import DATASETS, run_data_build

    result, path = run_data_build(datasets=dataset or list(DATASETS), force=force, limit=limit, workers=workers,
                                  out_dir=out_dir, shared=shared_data, results=results, variant=variant,
                                  run=_run("data-build", ctx, variant=variant, note=note))  # fmt: skip
    for rel, row in result["datasets"].items():
        cached = " (cached)" if row["cached"] else ""
        out.print(f"{rel}: {row['n_labelled']}/{row['n_read']} labelled, {row['wall_seconds']} s{cached}")
    out.print(f"-> {path}")


@bench_app.command("web")
def web(
    ctx: typer.Context,
    reps: Annotated[int, typer.Option(min=1, help="alternating CLI and page runs")] = 2,
    threads: Annotated[int, typer.Option(min=1, help="torch threads of both")] = 2,
    results: ResultsOption = None,
) -> None:
    """'xtalagent web' against 'xtalagent design' on the README request (needs the web extra and chromium)."""
    from xtalagent.eval.benchmarks.web import run_web

    result, path = run_web(reps=reps, threads=threads, results=results, run=_run("web", ctx))
    _show(result, path, "web")
