"""Constraint prediction through a real vLLM server against in process (issue #25).

20 requests, a seeded mix of MP ``val`` crystals asked as formula, composition and elements
requests with a band-gap or formation-energy target (``request_for``, as the constraint
benchmarks ask them), are predicted (top 5, release variant, voters on) by

* ``in_process``: the embedded model in this process (one torch thread);
* ``endpoint``: the same model served by ``xtalagent serve``'s vLLM (started here unless
  ``--endpoint`` is given), once one request after another (concurrency 1) and once with 8
  requests in flight (8 client threads, one scorer each);

and the answers are compared: same candidates in the same order, scores to their printed 4
decimals (float noise of a different summation order is reported as the largest difference).
Latency is per request (median, 90th percentile), throughput is requests per second of wall time.
The server's start-up time is reported apart. Quality bar: endpoint total time <= 3x in process.

Run: ``OMP_NUM_THREADS=1 python bench/bench_serving.py`` -> bench/results/serving_vllm.json
(needs vLLM: ``bash install_vllm.sh``). The machine's 2 cores are shared with other jobs; the
vLLM worker binds one core and leaves the other to its API server and this client.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PATTERNS = ("formula", "composition", "elements")
PROPERTIES = ("band_gap", "formation_energy")


def mixed_requests(n: int, seed: int = 0) -> list[dict]:
    """``n`` requests cycling through pattern x property over a seeded sample of MP val."""
    from xtalagent.data import load_records
    from xtalagent.eval.benchmarks.paths import dataset_file
    from xtalagent.eval.benchmarks.subsets import seeded_sample
    from xtalagent.eval.constraints import request_for

    records = seeded_sample(load_records(dataset_file(), "val"), 5 * n, seed=seed)
    kinds = [(p, q) for p in PATTERNS for q in PROPERTIES]
    out: list[dict] = []
    for record in records:
        request = request_for(record, *kinds[len(out) % len(kinds)])
        if request is not None:
            out.append(request)
        if len(out) == n:
            break
    return out


def timed(predictor, requests: list[dict]) -> tuple[list, list[float]]:
    answers, seconds = [], []
    for request in requests:
        start = time.perf_counter()
        answers.append(predictor.predict_request(_parsed(request), top_k=5))
        seconds.append(time.perf_counter() - start)
    return answers, seconds


def _parsed(request: dict):
    from xtalagent.finetune.requests import ConstraintRequest

    return ConstraintRequest.model_validate(request)


def latency(seconds: list[float], wall: float) -> dict[str, Any]:
    ordered = sorted(seconds)
    return {
        "total_s": round(wall, 2),
        "median_s": round(statistics.median(seconds), 3),
        "p90_s": round(ordered[max(int(0.9 * len(ordered)) - 1, 0)], 3),
        "requests_per_s": round(len(seconds) / wall, 3),
    }


def compare(reference: list, other: list) -> dict[str, Any]:
    """Same candidates (group and sites, in order) and the largest score difference."""
    same, worst = 0, 0.0
    for a, b in zip(reference, other):
        keys_a = [(c.spacegroup, [(s.element, s.wyckoff) for s in c.sites]) for c in a.candidates or []]
        keys_b = [(c.spacegroup, [(s.element, s.wyckoff) for s in c.sites]) for c in b.candidates or []]
        if keys_a == keys_b and a.error == b.error:
            same += 1
            for ca, cb in zip(a.candidates or [], b.candidates or []):
                worst = max(worst, abs(ca.score - cb.score))
    return {"same_candidates": same, "of": len(reference), "max_score_difference": round(worst, 6)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--endpoint", help="use this running server instead of starting one")
    parser.add_argument("--vllm-python", help="interpreter with vLLM (default: see 'xtalagent serve --help')")
    parser.add_argument("--port", type=int, default=8391)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "serving_vllm.json")
    args = parser.parse_args(argv)

    import torch

    from xtalagent import config
    from xtalagent.eval.benchmarks.results import run_block, write_result
    from xtalagent.finetune.predictor import load_predictor
    from xtalagent.finetune.serve import VLLMServer

    torch.set_num_threads(1)
    requests = mixed_requests(args.n)
    result: dict[str, Any] = {
        "machine_note": "2 CPU cores shared with other agents' jobs; the vLLM worker binds one core",
        "requests": requests,
        "top_k": 5,
        "variant": "release",
    }
    local = load_predictor(variant="release")
    local.predict_request(_parsed(requests[0]), top_k=5)  # warm-up (first-call allocations)
    start = time.perf_counter()
    local_answers, local_seconds = timed(local, requests)
    result["in_process"] = latency(local_seconds, time.perf_counter() - start)

    server = None
    url = args.endpoint
    if url is None:
        log = Path(tempfile.gettempdir()) / "serving_vllm.server.log"
        server = VLLMServer(config.CONSTRAINT_MODEL_DIR, port=args.port, python=args.vllm_python, log=log)
        url = server.start()
        result["server_startup_s"] = round(server.startup_seconds or 0.0, 1)
        result["server_command"] = server.command[1:]
    try:
        remote = load_predictor(endpoint=url, variant="release")
        remote.predict_request(_parsed(requests[0]), top_k=5)  # warm-up (LoRA load, first compile)
        start = time.perf_counter()
        remote_answers, remote_seconds = timed(remote, requests)
        result["endpoint_concurrency_1"] = latency(remote_seconds, time.perf_counter() - start)
        result["endpoint_vs_in_process"] = round(
            result["endpoint_concurrency_1"]["total_s"] / result["in_process"]["total_s"], 2
        )
        result["agreement"] = compare(local_answers, remote_answers)

        scorers = [load_predictor(endpoint=url, variant="release") for _ in range(args.concurrency)]

        def one(index: int):
            predictor = scorers[index % args.concurrency]
            t0 = time.perf_counter()
            answer = predictor.predict_request(_parsed(requests[index]), top_k=5)
            return answer, time.perf_counter() - t0

        start = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            pairs = list(pool.map(one, range(len(requests))))
        wall = time.perf_counter() - start
        result[f"endpoint_concurrency_{args.concurrency}"] = latency([s for _, s in pairs], wall)
        result[f"agreement_concurrency_{args.concurrency}"] = compare(local_answers, [a for a, _ in pairs])
    finally:
        if server is not None:
            server.stop()
    command = "OMP_NUM_THREADS=1 python bench/bench_serving.py " + " ".join(argv or sys.argv[1:])
    write_result(args.output, result, run=run_block(benchmark="serving_vllm", command=command.strip()))
    print(args.output)
    for key in ("in_process", "endpoint_concurrency_1", f"endpoint_concurrency_{args.concurrency}", "agreement"):
        print(key, result[key])
    return 0


if __name__ == "__main__":
    sys.exit(main())
