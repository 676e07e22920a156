"""Output files: checked before the work, written atomically, and locked against a second writer.

A crash or Ctrl-C never leaves a half-written result behind (:func:`atomic_path`); a wrong ``-o`` is
refused before any heavy work starts (:func:`check_output_dir`, :func:`check_output_file`); two
processes writing the same file do not silently lose one result (:func:`exclusive_output`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xtalagent.errors import InputError


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def check_output_dir(path: Path, what: str = "output folder") -> Path:
    """Create ``path`` (a folder) if needed and prove it writable; raise :class:`InputError` otherwise.

    Called before any heavy work, so ``-o existing_file``, ``-o file/sub`` or a read-only folder cost
    one line instead of a traceback after minutes of work.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} exists and is not a folder")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise InputError(f"{what} {path}: {blocker} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise InputError(f"cannot write to {what} {path}: {_reason(exc)}") from None
    return path


def check_output_file(path: Path, what: str = "output file") -> Path:
    """Refuse an output file that is a folder or whose folder cannot be written, before the work."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder; give a file name")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise InputError(f"{what} {path}: {blocker} is a file, not a folder")
    check_output_dir(path.parent, f"folder of {what} {path}")
    return path


@contextmanager
def exclusive_output(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on writing ``target`` (a ``.NAME.lock`` file beside it) while the body runs.

    A second process that wants to write the same file is refused at once with one line, instead
    of both reporting success while the later rename silently drops the other's result.
    """
    target = Path(target)
    lock = target.with_name(f".{target.name}.lock")
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise InputError(f"cannot create lock file {lock}: {_reason(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise InputError(
                    f"another process is writing {target} (lock {lock}); wait for it or choose another -o"
                ) from None
            raise
        try:  # the previous holder may have removed the lock file between our open and flock: retry
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(lock)
        finally:
            os.close(fd)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # mkstemp creates 0600; results should be readable like any other file
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` all at once (see :func:`atomic_path`)."""
    with atomic_path(Path(target)) as tmp:
        tmp.write_text(text)


def write_json_atomic(target: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``target`` all at once."""
    write_text_atomic(Path(target), json.dumps(data, indent=2, default=str) + "\n")


def json_lines(lines: Iterable[str]) -> Iterator[tuple[int, Any, str | None]]:
    """Each non-blank line of a JSONL text as ``(line number, value, None)``, or ``(line number,
    None, reason)`` when it is not JSON (never raises: one bad line must not cost the others)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line), None
        except (json.JSONDecodeError, RecursionError) as exc:
            yield number, None, exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
