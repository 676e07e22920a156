"""Optional dependencies: import one, or stop with one line naming the extra that installs it.

The default install runs the main job (design, chat, screening, the embedded constraint model).
Fine-tuning (trl, accelerate, datasets) and an OpenAI-compatible endpoint (langchain-openai) are
extras in ``pyproject.toml``, so that a user who never trains or calls a server does not carry them,
and a user who does is told exactly what to install instead of reading a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from xtalagent.errors import XtalAgentError


class MissingExtra(XtalAgentError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """``module`` imported, or :class:`MissingExtra` saying ``pip install 'xtalagent[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"{purpose} needs the optional '{extra}' dependencies ({exc}): pip install 'xtalagent[{extra}]'"
        ) from None
