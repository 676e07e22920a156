"""Constraint prediction through a real vLLM server against in process (issue #25).

Two disjoint sets of 20 requests (``--n``), a seeded mix of MP ``val`` crystals asked as formula,
composition and elements requests with a band-gap or formation-energy target (``request_for``, as
the constraint benchmarks ask them), are predicted (top 5, release variant, voters on) by

* ``in_process``: the embedded model in this process (one torch thread), each set one request
  after another;
* ``endpoint``: the same model served by ``xtalagent serve``'s vLLM (started here unless
  ``--endpoint`` is given; the default layout, one server per stage with its adapter merged in,
  or ``--layout lora``), once one request after another (concurrency 1) and once with 8 requests in
  flight, as ``constraints predict --endpoint --concurrency 8`` runs a request file (one predictor
  shared by 8 client threads), on the second set (vLLM's prefix cache would serve a repeat of the first);

and the answers are compared: same candidates in the same order, scores to their printed 4
decimals (float noise of a different summation order is reported as the largest difference).
Latency is per request (median, 90th percentile), throughput is requests per second of wall time.
The server's start-up time is reported apart. Quality bar: endpoint total time <= 3x in process.

Run: ``OMP_NUM_THREADS=1 xtalagent bench serving`` (or ``python bench/bench_serving.py``) ->
bench/results/serving_vllm.json (needs vLLM: ``bash install_vllm.sh``). The machine's 2 cores are
shared with other jobs (its load average is in the result); each vLLM worker binds one core and
leaves the other to the API servers and this client.
"""

from __future__ import annotations

import argparse
import os
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


def mixed_requests(n: int, seed: int = 0, dataset: Path | None = None) -> list[dict]:
    """``n`` requests cycling through pattern x property over a seeded sample of MP val (or of
    ``dataset``'s val rows)."""
    from xtalagent.data import load_records
    from xtalagent.eval.benchmarks.paths import dataset_file
    from xtalagent.eval.benchmarks.subsets import seeded_sample
    from xtalagent.eval.constraints import request_for

    records = seeded_sample(load_records(dataset_file(dataset), "val"), 5 * n, seed=seed)
    kinds = [(p, q) for p in PATTERNS for q in PROPERTIES]
    out: list[dict] = []
    for record in records:
        request = request_for(record, *kinds[len(out) % len(kinds)])
        if request is not None:
            out.append(request)
        if len(out) == n:
            break
    return out


def answer(predictor, request: dict):
    """The prediction for ``request``; a failed one (an unreachable server comes back as a
    prediction with an error, not an exception) stops the benchmark before it writes a result."""
    prediction = predictor.predict_request(_parsed(request), top_k=5)
    if prediction.error is not None:
        raise SystemExit(f"error: request {request.get('id', request)} failed: {prediction.error}")
    return prediction


def timed(predictor, requests: list[dict]) -> tuple[list, list[float]]:
    answers, seconds = [], []
    for request in requests:
        start = time.perf_counter()
        answers.append(answer(predictor, request))
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
    parser.add_argument("--layout", default="split", help="serve's layout: split (default) or lora")
    parser.add_argument("--dataset", type=Path, default=None, help="labelled Parquet (default: MP-20's)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "serving_vllm.json")
    args = parser.parse_args(argv)

    import torch

    from xtalagent import config
    from xtalagent.eval.benchmarks.results import run_block, write_result
    from xtalagent.finetune.predictor import load_predictor
    from xtalagent.finetune.serve import VLLMServer

    torch.set_num_threads(1)
    # two disjoint sets: vLLM's prefix cache (and the scorer's) would otherwise serve the second
    # run from the first; each is timed in process too
    both = mixed_requests(2 * args.n, dataset=args.dataset)
    sets = {"one_at_a_time": both[: args.n], "in_flight": both[args.n :]}
    result: dict[str, Any] = {
        "machine_note": "2 CPU cores shared with other jobs; each vLLM worker binds one core",
        "requests": sets,
        "top_k": 5,
        "variant": "release",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    local = load_predictor(variant="release")
    answer(local, both[0])  # warm-up (first-call allocations)
    local_answers = {}
    for name, requests in sets.items():
        start = time.perf_counter()
        local_answers[name], seconds = timed(local, requests)
        result[f"in_process_{name}"] = latency(seconds, time.perf_counter() - start)

    server = None
    url = args.endpoint
    if url is None:
        log = Path(tempfile.gettempdir()) / "serving_vllm.server.log"
        server = VLLMServer(
            config.CONSTRAINT_MODEL_DIR, port=args.port, python=args.vllm_python, log=log, layout=args.layout
        )
        url = server.start()
        result["server_startup_s"] = round(server.startup_seconds or 0.0, 1)
        result["server_layout"] = args.layout
        result["server_commands"] = [command[1:] for command in server.commands]
    try:
        warm = load_predictor(endpoint=url, variant="release")
        answer(warm, {"formula": "Na1Cl1", "band_gap": 5.0})  # first compile, LoRA load
        remote = load_predictor(endpoint=url, variant="release")
        start = time.perf_counter()
        remote_answers, remote_seconds = timed(remote, sets["one_at_a_time"])
        result["endpoint_concurrency_1"] = latency(remote_seconds, time.perf_counter() - start)
        result["endpoint_concurrency_1_vs_in_process"] = round(
            result["endpoint_concurrency_1"]["total_s"] / result["in_process_one_at_a_time"]["total_s"], 2
        )
        result["agreement_concurrency_1"] = compare(local_answers["one_at_a_time"], remote_answers)

        shared = load_predictor(endpoint=url, variant="release")  # as 'constraints predict' runs: one, shared
        flight = sets["in_flight"]

        def one(index: int):
            t0 = time.perf_counter()
            prediction = answer(shared, flight[index])
            return prediction, time.perf_counter() - t0

        start = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            pairs = list(pool.map(one, range(len(flight))))
        wall = time.perf_counter() - start
        key = f"endpoint_concurrency_{args.concurrency}"
        result[key] = latency([s for _, s in pairs], wall)
        result[f"{key}_vs_in_process"] = round(wall / result["in_process_in_flight"]["total_s"], 2)
        result[f"agreement_concurrency_{args.concurrency}"] = compare(local_answers["in_flight"], [a for a, _ in pairs])
    finally:
        if server is not None:
            server.stop()
    command = "OMP_NUM_THREADS=1 python bench/bench_serving.py " + " ".join(argv or sys.argv[1:])
    write_result(args.output, result, run=run_block(benchmark="serving_vllm", command=command.strip()))
    print(args.output)
    for key, value in result.items():
        if key.startswith(("in_process", "endpoint", "agreement")):
            print(key, value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
