"""What every command module of the CLI shares: the consoles, the design defaults, small readers."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from xtalagent.agent.design_records import DesignSettings
from xtalagent.errors import InputError

#: The design run's defaults, shown as the defaults of design, chat and web.
DESIGN = {name: field.default for name, field in DesignSettings.model_fields.items()}

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def read_text_input(path: Path, what: str) -> list[str]:
    """Lines of a text input file; a folder, binary or unreadable file is one :class:`InputError` line."""
    if not path.exists():
        raise InputError(f"{what} {path}: no such file")
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder; give a file")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{what} {path} is not UTF-8 text (a binary file?)") from None
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read ({exc.strerror or type(exc).__name__})") from None
