"""User-facing errors.

Anything raised as :class:`XtalAgentError` is a problem with the user's input or environment, and
the CLI prints it as one line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pydantic is imported by the callers; this module stays dependency-free
    from pydantic import ValidationError


class XtalAgentError(Exception):
    """An error the user can fix (bad input, missing file, impossible request)."""


class InputError(XtalAgentError, ValueError):
    """Malformed input: a formula, CIF, constraint or file the tool cannot read."""


def validation_message(exc: ValidationError) -> str:
    """One line from a pydantic ``ValidationError``: where, and what is wrong."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", exc)).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
