"""Screening on a Ray cluster: chunks of candidates go to workers, rows come back as they finish.

Why Ray: relaxation is embarrassingly parallel, and a campaign of thousands of candidates
outgrows one machine. Ray is the field's common engine for this; it schedules tasks over the
cores of every machine that joined the cluster, retries tasks whose worker died, and needs no
shared file system. It is the optional extra ``ray`` (``pip install -e '.[ray]'``).

How a screening run uses it (:func:`screen_on_ray`, called by
:func:`xtalagent.tools.screen.screen` when given ``ray=``):

* The driver (the ``xtalagent`` process) reads the candidates and the per-structure cache as
  always; only unfinished structures are sent. It keeps one chunk in flight per worker and writes
  each returned row to the cache at once (``ray.wait``), so the cache stays the source of truth:
  a killed cluster job loses only the chunks that were running.
* One :class:`~xtalagent.tools.screen.StructureScreener` (settings, stability model, band-gap
  model, and the potential when the caller passed a loaded one) goes into Ray's object store
  once. Each worker process unpickles it on its first chunk and keeps it, so the potential is
  loaded once per worker, not per structure; a potential given by name is loaded by the worker.
  Each worker sets torch to its CPU share (``cpus_per_worker`` threads).
* A chunk whose worker dies (killed, out of memory, node lost) is retried once by Ray
  (``max_retries=1``). A chunk that fails twice is split into one task per structure, so the
  structures that were merely beside a bad one are screened again; a structure whose own task
  fails twice gets a failed row naming the error and is not tried again.
* An error the user can fix (:class:`~xtalagent.errors.XtalAgentError`, e.g. a potential that
  cannot be loaded on the workers) stops the run with its message instead of failing every row.

Rows are computed by the same code as a serial run, so they are the same up to float noise.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from xtalagent.errors import InputError, XtalAgentError

if TYPE_CHECKING:
    from xtalagent.tools.screen import StructureCandidate, StructureScreener

logger = logging.getLogger(__name__)

#: What to install when ``--ray`` is given without Ray (no square brackets: the CLI prints with rich markup).
INSTALL_HINT = "install the 'ray' extra of xtalagent (pip install ray)"
#: Ray retries a task whose worker died this many times before the driver splits or gives up.
MAX_RETRIES = 1
#: Chunks per worker the default chunk size aims at: small enough to balance uneven relaxations
#: and lose little on a kill, large enough to keep each worker's forward passes batched.
CHUNKS_PER_WORKER = 4


@dataclass(frozen=True)
class RayOptions:
    """Where and how to run on Ray.

    ``address``: ``"local"`` starts a private Ray instance on this machine (its cores;
    ``num_cpus`` caps them; workers at the driver's priority, not Ray's default nice 15) and shuts
    it down when the process exits; ``"auto"`` joins the cluster
    that ``ray start`` made on this machine; ``"HOST:6379"`` joins a cluster's head node;
    ``"ray://HOST:10001"`` connects as a Ray client. If this process is already connected to Ray
    (``ray.init`` was called), that connection is used.
    ``workers``: chunks run at once (default: the cluster's CPUs // ``cpus_per_worker``).
    ``chunk_size``: structures per task (default: :func:`default_chunk_size`).
    """

    address: str = "local"
    workers: int | None = None
    cpus_per_worker: int = 1
    chunk_size: int | None = None
    num_cpus: int | None = None

    @classmethod
    def of(cls, value: RayOptions | str | None) -> RayOptions:
        """Options from a :class:`RayOptions` or an address (None: a local instance)."""
        if isinstance(value, RayOptions):
            return value
        return cls(address=value or "local")


def require_ray() -> Any:
    """The ``ray`` module, or one clear line naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise InputError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(options: RayOptions) -> Any:
    """Connect this process to Ray as ``options`` say (kept for the rest of the process)."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    local = options.address == "local"
    if local:  # Ray starts workers at nice 15; a local run should compete for the CPU as a serial run does
        os.environ.setdefault("RAY_worker_niceness", "0")
    try:
        ray.init(
            address=options.address,
            num_cpus=options.num_cpus if local else None,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise InputError(f"cannot connect to the Ray cluster at {options.address!r}: {exc}") from None
    logger.info("connected to Ray (%s): %s", options.address, ray.cluster_resources())
    return ray


def default_chunk_size(n: int, workers: int, batch_size: int) -> int:
    """About :data:`CHUNKS_PER_WORKER` chunks per worker, at most one relaxation batch each."""
    return max(1, min(batch_size, math.ceil(n / (workers * CHUNKS_PER_WORKER))))


# --- the worker side -------------------------------------------------------------------------------
_held: dict[str, StructureScreener] = {}  # per worker process: the screener of the current run


@dataclass
class RayRun:
    """What a screening on Ray did: where, in how many chunks, and where the time went.

    ``seconds``: wall time of the whole run as the driver saw it. ``worker_seconds`` /
    ``worker_cpu_seconds``: wall and CPU time inside the tasks, summed over chunks, of which
    ``setup_seconds`` went to loading the screener (potential, models) on each worker. With one
    worker, ``seconds - worker_seconds`` is what Ray adds around the tasks (scheduling, transfer).
    """

    provenance: dict[str, Any] | None = None
    seconds: float = 0.0
    workers: int = 0
    chunk_size: int = 0
    chunks: int = 0
    chunks_failed: int = 0
    worker_processes: int = 0
    worker_seconds: float = 0.0
    worker_cpu_seconds: float = 0.0
    setup_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "provenance"}
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


def screen_chunk(
    holder: list[Any], cands: list[StructureCandidate], threads: int
) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any], dict[str, Any]]:
    """Ray task body: screen ``cands`` with the run's screener; returns ``(id, row)`` pairs, the
    potential's provenance and the task's timings.

    ``holder`` wraps the screener's object reference in a list so that Ray does not resolve it
    per call: the worker fetches and unpickles it once per run, loads the potential once, and
    keeps only the current run's screener.
    """
    import ray

    start, cpu_start = time.perf_counter(), time.process_time()
    ref = holder[0]
    key = ref.hex()
    screener = _held.get(key)
    if screener is None:
        from xtalagent.tools.potentials import limit_threads

        limit_threads(threads)  # the task's CPU share (Ray sets OMP_NUM_THREADS to it as well)
        _held.clear()
        screener = ray.get(ref)
        screener.loaded_potential()
        _held[key] = screener
    setup = time.perf_counter() - start
    rows: list[tuple[str, dict[str, Any]]] = []
    screener.run(cands, lambda cand, row: rows.append((cand.id, row)))
    timing = {
        "pid": os.getpid(),
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,
        "setup_seconds": setup,
    }
    return rows, screener.loaded_potential().provenance, timing


# --- the driver side -------------------------------------------------------------------------------
def screen_on_ray(
    screener: StructureScreener,
    cands: Sequence[StructureCandidate],
    *,
    on_row: Callable[[StructureCandidate, dict[str, Any]], None],
    options: RayOptions,
) -> RayRun:
    """Screen ``cands`` on Ray; ``on_row(cand, row)`` in this process as each row comes back.

    Returns what the run did, with the potential's provenance as a worker reported it (None if
    no chunk succeeded).
    """
    ray = connect(options)
    cpus = max(1, options.cpus_per_worker)
    workers = options.workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus)
    size = options.chunk_size or default_chunk_size(len(cands), workers, screener.batch_size)
    queue: deque[list[StructureCandidate]] = deque(list(cands[i : i + size]) for i in range(0, len(cands), size))
    by_id = {c.id: c for c in cands}
    task = ray.remote(screen_chunk).options(num_cpus=cpus, max_retries=MAX_RETRIES, retry_exceptions=False)
    holder = [ray.put(screener)]
    logger.info("screening %d structures on Ray: %d workers, chunks of %d", len(cands), workers, size)
    running: dict[Any, list[StructureCandidate]] = {}
    run = RayRun(workers=workers, chunk_size=size)
    start = time.perf_counter()
    pids: set[int] = set()
    try:
        while queue or running:
            while queue and len(running) < workers:
                chunk = queue.popleft()
                running[task.remote(holder, chunk, cpus)] = chunk
                run.chunks += 1
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                chunk = running.pop(ref)
                try:
                    pairs, run.provenance, timing = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, XtalAgentError):
                        raise cause from None
                    run.chunks_failed += 1
                    _chunk_failed(chunk, exc, queue, screener, on_row)
                    continue
                for cid, row in pairs:
                    on_row(by_id[cid], row)
                pids.add(timing["pid"])
                run.worker_seconds += timing["seconds"]
                run.worker_cpu_seconds += timing["cpu_seconds"]
                run.setup_seconds += timing["setup_seconds"]
    finally:
        for ref in running:  # interrupted: stop the chunks still running (their rows are lost, not wrong)
            ray.cancel(ref, force=True)
    run.worker_processes = len(pids)
    run.seconds = time.perf_counter() - start
    return run


def _chunk_failed(
    chunk: list[StructureCandidate],
    exc: Exception,
    queue: deque[list[StructureCandidate]],
    screener: StructureScreener,
    on_row: Callable[[StructureCandidate, dict[str, Any]], None],
) -> None:
    """A chunk failed after Ray's retries: split it, or give its one structure a failed row."""
    reason = _one_line(exc)
    if len(chunk) > 1:
        logger.warning("a chunk of %d structures failed twice (%s): retrying them one by one", len(chunk), reason)
        queue.extendleft([c] for c in reversed(chunk))
        return
    (cand,) = chunk
    logger.warning("%s failed twice on Ray workers (%s): reported as failed", cand.id, reason)
    on_row(cand, screener.row(cand, None, f"failed twice on Ray workers: {reason}"))


def _one_line(exc: Exception) -> str:
    cause = getattr(exc, "cause", None) or exc
    lines = [line for line in str(cause).splitlines() if line.strip()]
    return f"{type(cause).__name__}: {lines[0] if lines else ''}".strip()[:300]
