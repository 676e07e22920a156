"""Kept for tests/test_fuzz.py, which loads this file by path: the fuzz benchmark is ``xtalagent bench fuzz``
(code: eval/benchmarks/fuzz.py); ``python bench/bench_fuzz.py ARGS`` runs that command."""

import sys

from xtalagent.eval.benchmarks.fuzz import CHECKS, KINDS, fuzz, run_case, split_cases

__all__ = ["CHECKS", "KINDS", "fuzz", "run_case", "split_cases"]

if __name__ == "__main__":
    from xtalagent.agent.cli import main

    sys.exit(main(["bench", "fuzz", *sys.argv[1:]]))
