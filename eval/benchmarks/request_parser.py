"""Offline request parser on the hand-written phrasing suite (bench/request_suite.jsonl).

Each line is ``{"text": ..., "expected": {...}}`` (DesignRequest fields, defaults left out),
optionally with ``"previous": {...}`` for a multi-turn refinement, or ``"expected_questions": true``
(correct when the parser asks back, without an error) or ``"expected_error": true`` (correct when
it answers with an error; ``"error_contains": "-2"`` also wants that text in the error). A request
case is correct only on an exact match of the whole request; ``"not_understood": [...]`` also wants
exactly that many leftovers, each containing its string (``[]``: nothing may be left over).

    xtalagent bench request-parser [--suite bench/request_suite_heldout.jsonl] [-o FILE]

The results go to ``bench/results/request_parser.json`` for the default suite and to
``request_parser_heldout.json`` for ``request_suite_heldout.jsonl`` (the suffix follows the suite).

Prints the exact-match accuracy and every failure with what the parser said it did not
understand, and writes the figures and failures as JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from xtalagent.agent.parser import parse_request
from xtalagent.agent.request import DesignRequest, ParseResult
from xtalagent.errors import InputError
from xtalagent.eval.benchmarks.paths import CHECKOUT, results_dir
from xtalagent.eval.benchmarks.results import write_result

#: The hand-written phrasing suite (a held-out one sits beside it, request_suite_heldout.jsonl).
SUITE = CHECKOUT / "bench" / "request_suite.jsonl"


def load_suite(path: Path = SUITE) -> list[dict]:
    """The suite's cases, one JSON object per non-empty line."""
    if not Path(path).is_file():
        raise InputError(f"{path}: no such suite (the suites are bench/request_suite*.jsonl of a checkout)")
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def judge(case: dict, result: ParseResult) -> tuple[bool, str]:
    """(correct, what was expected) for one suite case."""
    if case.get("expected_error"):
        wanted = case.get("error_contains", "")
        return result.error is not None and wanted in result.error, f"an error ({wanted!r})" if wanted else "an error"
    if case.get("expected_questions"):
        return bool(result.questions) and result.error is None, "a question"
    expected = DesignRequest.model_validate(case["expected"])
    ok = (
        result.error is None
        and not result.questions
        and result.request is not None
        and result.request.model_dump() == expected.model_dump()
    )
    shown = json.dumps(expected.model_dump(exclude_defaults=True))
    leftovers = case.get("not_understood")
    if leftovers is not None:
        ok = ok and len(result.not_understood) == len(leftovers)
        ok = ok and all(any(w in note for note in result.not_understood) for w in leftovers)
        shown += f", not understood: {leftovers}"
    return ok, shown


def run_suite(cases: list[dict]) -> dict:
    rows = []
    t0 = time.perf_counter()
    for case in cases:
        previous = DesignRequest.model_validate(case["previous"]) if case.get("previous") else None
        result = parse_request(case["text"], previous)
        ok, wanted = judge(case, result)
        got = result.request.model_dump(exclude_defaults=True) if result.request is not None else None
        rows.append(
            {
                "text": case["text"],
                "multi_turn": previous is not None,
                "correct": ok,
                "expected": wanted,
                "got": got,
                "questions": result.questions,
                "error": result.error,
                "not_understood": result.not_understood,
            }
        )
    seconds = time.perf_counter() - t0
    n_ok = sum(r["correct"] for r in rows)
    kinds = {
        "request": [r for r, c in zip(rows, cases) if "expected" in c],
        "question": [r for r, c in zip(rows, cases) if c.get("expected_questions")],
        "error": [r for r, c in zip(rows, cases) if c.get("expected_error")],
        "multi_turn": [r for r in rows if r["multi_turn"]],
    }
    return {
        "n": len(rows),
        "correct": n_ok,
        "exact_match_accuracy": n_ok / len(rows) if rows else 0.0,
        "by_kind": {k: {"n": len(v), "correct": sum(r["correct"] for r in v)} for k, v in kinds.items()},
        "ms_per_request": 1000 * seconds / max(len(rows), 1),
        "failures": [r for r in rows if not r["correct"]],
    }


def result_file(suite: Path) -> str:
    """``request_suite_heldout.jsonl`` -> ``request_parser_heldout.json`` (the suffix follows the suite)."""
    return f"request_parser{Path(suite).stem.removeprefix('request_suite')}.json"


def run_request_parser(
    *, suite: Path = SUITE, output: Path | None = None, results: Path | None = None, run: dict[str, Any]
) -> tuple[dict[str, Any], Path]:
    """Parse every case of ``suite``; return the report (figures and failures) and the JSON path."""
    report = {"suite": Path(suite).name, **run_suite(load_suite(suite))}
    path = output or results_dir(results) / result_file(suite)
    return report, write_result(path, report, run=run)
