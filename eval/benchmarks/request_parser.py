"""Offline request parser on the hand-written phrasing suite (bench/request_suite.jsonl).

Each line is ``{"text": ..., "expected": {...}}`` (DesignRequest fields, defaults left out),
optionally with ``"previous": {...}`` for a multi-turn refinement, or ``"expected_questions": true``
(correct when the parser asks back, without an error) or ``"expected_error": true`` (correct when
it answers with an error; ``"error_contains": "-2"`` also wants that text in the error). A request
case is correct only on an exact match of the whole request; ``"not_understood": [...]`` also wants
exactly that many leftovers, each containing its string (``[]``: nothing may be left over).

    python bench/bench_request_parser.py [--suite bench/request_suite.jsonl] [--out bench/results/request_parser.json]

The results go to ``bench/results/request_parser.json`` for the default suite and to
``request_parser_heldout.json`` for ``request_suite_heldout.jsonl`` (the suffix follows the suite).

Prints the exact-match accuracy and every failure with what the parser said it did not
understand, and writes the figures and failures as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from xtalagent.agent.parser import parse_request
from xtalagent.agent.request import DesignRequest, ParseResult

HERE = Path(__file__).resolve().parent
SUITE = HERE / "request_suite.jsonl"
RESULTS = HERE / "results"


def load_suite(path: Path = SUITE) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=SUITE)
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/request_parser<suffix>.json")
    args = parser.parse_args()
    if args.out is None:  # request_suite_heldout.jsonl -> request_parser_heldout.json
        args.out = RESULTS / f"request_parser{args.suite.stem.removeprefix('request_suite')}.json"
    report = run_suite(load_suite(args.suite))
    print(f"request parser: {report['correct']}/{report['n']} exact ({100 * report['exact_match_accuracy']:.1f}%)")
    for kind, v in report["by_kind"].items():
        print(f"  {kind:10s} {v['correct']}/{v['n']}")
    print(f"  {report['ms_per_request']:.1f} ms per request")
    for f in report["failures"]:
        print(f"\nFAIL {f['text']!r}")
        print(f"  expected: {f['expected']}")
        print(f"  got:      {f['got']}  questions={f['questions']} error={f['error']!r}")
        print(f"  not understood: {f['not_understood']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"suite": str(args.suite.name), **report}, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
