"""Seeded samples of test (or val) crystals, the same for every benchmark that asks for them.

A benchmark figure is only comparable with another if both scored the same crystals; these helpers
are the one place where "a seeded N of MP test" is drawn, so a re-run with the same ``n`` and
``seed`` scores exactly the crystals of the published result.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import pandas as pd

T = TypeVar("T")


def seeded_sample(items: Sequence[T], n: int | None, seed: int = 0) -> list[T]:
    """``n`` items drawn with ``random.Random(seed)`` (all of them, in order, when ``n`` is None or too big).

    The constraint benchmarks' sample (``xtalagent.eval.constraints.sample_records`` draws the same).
    """
    if n is None or n >= len(items):
        return list(items)
    return random.Random(seed).sample(list(items), n)


def seeded_rows(frame: pd.DataFrame, n: int | None, seed: int = 0) -> pd.DataFrame:
    """``n`` rows drawn with pandas' ``sample(random_state=seed)`` (the band-gap and screening benchmarks)."""
    if n is None:
        return frame
    return frame.sample(n=min(n, len(frame)), random_state=seed)


def read_mp_table(path: Path, splits: set[str] | None = None) -> pd.DataFrame:
    """The raw MP table (``mp/structures.csv.gz`` of the shared data), optionally only some splits."""
    frame = pd.read_csv(path)
    return frame if splits is None else frame[frame["split"].isin(splits)]


def half(record_id: str) -> str:
    """ "A" or "B" from a hash of the id: tuning reads half A of ``val``, the clean figure half B."""
    return "A" if zlib.crc32(str(record_id).encode()) % 2 == 0 else "B"
