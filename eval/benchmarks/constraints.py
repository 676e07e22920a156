"""Constraint generator on MP ``val`` (``test`` only for a finished model's final report).

``xtalagent bench constraints PART`` with PART one of:

* ``full``: requests of ``--patterns`` x ``--properties`` for every crystal of the split that has
  the property (or a seeded ``--subset``): space-group accuracy (exact top-1, top-5, CrystalGF's
  20 classes, 19 frequent + other), Wyckoff accuracy given the group, validity and composition
  consistency of the decoded top-1 candidate, both baselines. The current figures are
  ``constraints_full_*`` (formula, val), ``*_1960_test`` (``--split test --subset 1960``) and the
  elements rows ``*_ratio_neighbours`` (see ``finetune/checkpoints/default/README.md``).
* ``patterns``: a seeded subset, patterns formula / elements / composition x band gap / formation
  energy / none, top-5 candidates decoded and checked.
* ``latency``: median ms per request (top-1 and top-5) and requests/s, one request after another.

Every choice (weights, settings, recipes) is made on ``val``; ``--split test`` tells how those
choices hold on crystals nothing was tuned on. MP test holds 7,342 crystals, 3.7 times val, and
``--subset 1960`` keeps a run as long as one on val. Parts are independent processes, so two cores
can run two at once. Results: ``bench/results/constraints_<part>...`` (+ confusion-matrix PNGs);
a ``--variant`` name (e.g. a candidate model) becomes the suffix and is recorded in the JSON.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from xtalagent.eval.benchmarks.paths import dataset_file, results_dir
from xtalagent.eval.benchmarks.results import DEFAULT_VARIANT, result_name, write_result
from xtalagent.eval.benchmarks.subsets import seeded_sample

logger = logging.getLogger(__name__)

Part = Literal["latency", "full", "patterns"]
PARTS: tuple[str, ...] = ("latency", "full", "patterns")


def latency(dataset: Path, model: Path | None, *, n: int = 40, pattern: str = "formula") -> dict[str, Any]:
    """Median and 90th-percentile ms per request, top-1 and top-5, after one warm-up request."""
    import torch

    from xtalagent.data import load_records
    from xtalagent.eval.constraints import request_for
    from xtalagent.finetune.predictor import load_predictor

    records = seeded_sample(load_records(dataset, "val"), 200, seed=1)
    requests = [r for r in (request_for(rec, pattern, "band_gap") for rec in records) if r][:n]
    predictor = load_predictor(model, variant="eval")
    predictor.predict(requests[0], top_k=1)  # warm-up
    out: dict[str, Any] = {"pattern": pattern, "n_requests": len(requests), "torch_threads": torch.get_num_threads()}
    for k in (1, 5):
        times = []
        for request in requests:
            start = time.perf_counter()
            predictor.predict(request, top_k=k)
            times.append(time.perf_counter() - start)
        out[f"top{k}"] = {
            "median_ms": round(1000 * statistics.median(times), 1),
            "p90_ms": round(1000 * sorted(times)[max(int(0.9 * len(times)) - 1, 0)], 1),
            "requests_per_s": round(len(times) / sum(times), 2),
        }
    return out


def run_constraints(
    part: Part,
    *,
    dataset: Path | None = None,
    model: Path | None = None,
    properties: Sequence[str] = ("band_gap",),
    patterns: Sequence[str] = ("formula",),
    subset: int | None = None,
    split: Literal["val", "test"] = "val",
    use_prior: bool = True,
    latency_requests: int = 40,
    variant: str = DEFAULT_VARIANT,
    note: str | None = None,
    results: Path | None = None,
    run: dict[str, Any],
) -> tuple[dict[str, Any], Path]:
    """Run one part; return the result and the JSON path it was written to."""
    from xtalagent.eval.constraints_report import run_constraint_eval

    dataset = dataset_file(dataset)
    folder = results_dir(results)
    properties, patterns = list(properties), list(patterns)
    if part == "latency":
        pattern = patterns[0]
        result = latency(dataset, model, n=latency_requests, pattern=pattern)
        stem = "constraints_latency" + ("" if pattern == "formula" else f"_{pattern}")
        target = folder / f"{result_name(stem, variant)}.json"
    elif part == "full":
        prefix = "" if patterns == ["formula"] else "_".join(patterns) + "_"
        size = f"_{subset}" if subset else ""
        suffix = "" if split == "val" else f"_{split}"
        out = folder / result_name(f"constraints_full_{prefix}{'_'.join(properties)}{size}{suffix}", variant)
        result = run_constraint_eval(dataset, split, out, limit=subset, patterns=patterns, properties=properties,
                                     top_k=5, model=model, decode_k=1, use_prior=use_prior)  # fmt: skip
        target = out / "constraints_eval.json"
    elif part == "patterns":
        out = folder / result_name("constraints_patterns", variant)
        result = run_constraint_eval(dataset, "val", out, limit=subset or 100,
                                     patterns=["formula", "elements", "composition"],
                                     properties=["band_gap", "formation_energy", "none"], top_k=5, model=model,
                                     use_prior=use_prior)  # fmt: skip
        target = out / "constraints_eval.json"
    else:
        raise ValueError(f"unknown part {part!r}")
    result = {"variant": "eval", **result}  # the eval predictor: train-only models and known crystals
    write_result(target, result, run=run)
    logger.info("constraints %s -> %s", part, target)
    return result, target
