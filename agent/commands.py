"""Bodies of ``xtalagent design`` and ``xtalagent chat`` (the CLI wraps them with typer)."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from xtalagent.agent.pipeline import DesignRun, DesignSettings, run_design
from xtalagent.agent.understanding import endpoint_chat_model, understand
from xtalagent.errors import InputError
from xtalagent.io import check_output_dir

STAGES = ("constraints", "structures", "pre-relaxation", "screening")


class NeedsAnswer(InputError):
    """The request is incomplete; the message is the question to answer (exit code 2)."""


def design_command(
    prompt: str,
    output: Path,
    *,
    n: int | None = None,
    settings: DesignSettings | None = None,
    endpoint: str | None = None,
    model: str | None = None,
    console: Console | None = None,
) -> DesignRun:
    """Understand ``prompt``, run the pipeline into ``output`` with live progress, print the best.

    ``output`` is checked (a folder, creatable and writable) as soon as the prompt is understood and
    before any model loads, so a wrong ``-o`` costs one line instead of a traceback; a prompt that
    needs an answer creates no folder.
    """
    console = console or Console(stderr=True)
    chat_model = endpoint_chat_model(endpoint, model) if endpoint else None
    parsed = understand(prompt, chat_model)
    if parsed.error:
        raise InputError(parsed.error)
    if parsed.questions or parsed.request is None:
        raise NeedsAnswer(" ".join(parsed.questions) or "the request could not be understood")
    request = parsed.request
    if n is not None:
        # re-validated from what was stated (plus the count), so the echo shows only what the user set
        request = type(request).model_validate(request.model_dump(exclude_unset=True) | {"n_candidates": n})
    check_output_dir(Path(output), "run folder")
    reader = f"chat model {model or 'default'} at {endpoint}" if endpoint else "offline parser"
    console.print(f"[bold]request[/] ({reader}): {request.model_dump_json(exclude_defaults=True)}")
    for note in parsed.not_understood:
        console.print(f"[yellow]not understood:[/] {note}")
    start = time.perf_counter()
    with Progress(
        TextColumn("{task.description:<15}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    ) as bar:  # fmt: skip
        tasks = {stage: bar.add_task(stage, total=None, start=False) for stage in STAGES}

        def tick(stage: str, done: int, total: int) -> None:
            task = tasks[stage]
            bar.start_task(task)
            bar.update(task, completed=done, total=max(total, 1))

        run = run_design(
            request,
            output,
            settings=settings,
            prompt=prompt,
            not_understood=parsed.not_understood,
            progress=tick,
            log=lambda msg: bar.console.print(f"[dim]{msg}[/]"),
        )
    _print_best(run, console, time.perf_counter() - start)
    return run


def _print_best(run: DesignRun, console: Console, seconds: float, rows: int = 10) -> None:
    table = Table(title=f"best candidates ({run.out}/summary.csv has all)")
    for col in ("rank", "id", "formula", "group", "E_form eV/at", "E_hull eV/at", "stable", "CIF"):
        table.add_column(col)
    for r in [r for r in run.rows if r.get("design_rank") is not None][:rows]:
        table.add_row(
            str(r["design_rank"]),
            r["id"],
            str(r.get("formula")),
            f"{r.get('requested_spacegroup')}→{r.get('final_spacegroup') or '?'}",
            _num(r.get("e_form")),
            _num(r.get("e_hull")),
            "yes" if r.get("stable") else "no",
            str(r.get("cif") or "–"),
        )
    console.print(table)
    prov = run.screen_summary.get("provenance", {})
    if prov:
        console.print(f"energies by {prov.get('potential')} {prov.get('checkpoint', '')}")
    console.print(f"report: {run.out / 'report.md'}  ({seconds:.0f} s)")


def _num(x) -> str:
    return "–" if x is None else f"{x:.3f}"
