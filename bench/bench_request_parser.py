"""Kept for tests/test_request_parser.py, which loads this file by path: the benchmark is ``xtalagent bench
request-parser`` (code: eval/benchmarks/request_parser.py); ``python bench/bench_request_parser.py ARGS`` runs it."""

import sys

from xtalagent.eval.benchmarks.request_parser import SUITE, judge, load_suite, run_suite

__all__ = ["SUITE", "judge", "load_suite", "run_suite"]

if __name__ == "__main__":
    from xtalagent.agent.cli import main

    sys.exit(main(["bench", "request-parser", *sys.argv[1:]]))
