"""``xtalagent constraints``: predict and evaluate space group + Wyckoff sites."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from xtalagent.agent.cli_common import console, out, read_text_input
from xtalagent.errors import InputError
from xtalagent.finetune.settings import ConstraintSettings

constraints_app = typer.Typer(
    help="Predict space group + Wyckoff sites from composition and target properties.", no_args_is_help=True
)


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
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="requests in flight (default: 8 with --endpoint, which batches them; else 1)"),
    ] = None,
) -> None:
    """Predict space group and Wyckoff sites for each request of a JSONL file.

    With --endpoint, --model names the folder the server serves (default: the embedded model, as
    'xtalagent serve' does): its tokenizer and voters are used here, so the answers match in process.
    Through a server, each request's candidate groups are decoded side by side and 8 requests are
    in flight (--concurrency). The output keeps the order of the requests, whatever the concurrency.
    """
    from concurrent.futures import ThreadPoolExecutor

    from rich.progress import track

    from xtalagent.finetune.predictor import duplicate_ids, load_predictor, read_request_lines
    from xtalagent.finetune.requests import Prediction
    from xtalagent.io import atomic_path, check_output_file, exclusive_output

    if concurrency is not None and concurrency > 1 and not endpoint:
        raise InputError("--concurrency needs --endpoint (in process, requests run one at a time)")
    items = list(read_request_lines(read_text_input(requests, "request file")))
    if not items:
        raise InputError(f"{requests} holds no requests (one JSON object per line)")
    for key in duplicate_ids(items):
        console.print(f"[yellow]warning:[/] request id {key} is given more than once in {requests}")
    check_output_file(output)
    replaced = output.exists()
    with exclusive_output(output):
        scoring = {"timeout": timeout} if endpoint else {}
        predictor = load_predictor(model=model, endpoint=endpoint, use_prior=prior, variant=variant, **scoring)
        n_errors = 0

        def predict(item):
            if isinstance(item, Prediction):  # a line that could not be read: its error, as it is
                return item
            return predictor.predict_request(item, top_k=top_k, temperature=temperature, seed=seed)

        workers = concurrency or (8 if endpoint else 1)
        with (
            ThreadPoolExecutor(workers) as pool,
            atomic_path(output) as tmp,
            open(tmp, "w") as handle,
        ):  # map() yields in request order; a worker ahead of the file waits in its buffer
            answers = pool.map(predict, items) if workers > 1 else map(predict, items)
            for prediction in track(answers, total=len(items), description="predicting", console=console):
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
