"""The benchmarks users can rerun, one module each, all run as ``xtalagent bench NAME``.

Each module exposes one ``run_*`` function with keyword-only options that returns the result and
writes it through :func:`xtalagent.eval.benchmarks.results.write_result` (machine, variant,
command). Where the data live (``../shared/data``, ``datasets/``, ``bench/results``) is decided in
:mod:`xtalagent.eval.benchmarks.paths`, seeded samples in :mod:`xtalagent.eval.benchmarks.subsets`.
Tuning experiments are not here: they live, with their conclusions, in ``bench/experiments/``.
"""
