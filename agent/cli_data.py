"""``xtalagent data``: build and inspect symmetry-labelled crystal datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from xtalagent import config
from xtalagent.agent.cli_common import out

data_app = typer.Typer(help="Build and inspect symmetry-labelled crystal datasets.", no_args_is_help=True)


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
    report = build_dataset(
        inputs=inputs, output=output, symprec=symprec, workers=workers or None, force=force, limit=limit
    )
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
