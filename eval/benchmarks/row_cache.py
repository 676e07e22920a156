"""A cache of computed rows as gzipped JSON: re-tuning reads it instead of re-running the model.

The tuning experiments (``bench/experiments/``) score every val crystal with the language model
once (minutes to hours) and then try thousands of settings on the stored scores. Those rows hold
numpy arrays, tuples, sets, Counters and dicts with integer or tuple keys, which plain JSON loses;
they used to be pickled, which runs code on load and ties the file to the classes of the moment.
Here every such value is written with a small type tag and read back as the same type.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from xtalagent.io import atomic_path

T = TypeVar("T")
TAG = "__type__"


def encode(value: Any) -> Any:
    """``value`` as plain JSON data, with a type tag wherever JSON would lose the type."""
    if isinstance(value, np.ndarray):
        return {TAG: "ndarray", "dtype": str(value.dtype), "shape": list(value.shape),
                "data": [encode(x) for x in value.ravel().tolist()]}  # fmt: skip
    if isinstance(value, np.generic):
        return encode(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return {TAG: "float", "repr": repr(value)}
    if isinstance(value, Counter):
        return {TAG: "counter", "items": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, dict):
        if all(isinstance(k, str) and k != TAG for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {TAG: "dict", "items": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {TAG: "tuple", "items": [encode(x) for x in value]}
    if isinstance(value, set | frozenset):
        return {TAG: "frozenset" if isinstance(value, frozenset) else "set", "items": [encode(x) for x in value]}
    if isinstance(value, list):
        return [encode(x) for x in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot cache a {type(value).__name__}")


def decode(value: Any) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(value, list):
        return [decode(x) for x in value]
    if not isinstance(value, dict):
        return value
    kind = value.get(TAG)
    if kind is None:
        return {k: decode(v) for k, v in value.items()}
    if kind == "ndarray":
        return np.array([decode(x) for x in value["data"]], dtype=value["dtype"]).reshape(value["shape"])
    if kind == "float":
        return float(value["repr"])
    if kind == "counter":
        return Counter({decode(k): decode(v) for k, v in value["items"]})
    if kind == "dict":
        return {decode(k): decode(v) for k, v in value["items"]}
    if kind == "tuple":
        return tuple(decode(x) for x in value["items"])
    if kind in ("set", "frozenset"):
        items = (decode(x) for x in value["items"])
        return frozenset(items) if kind == "frozenset" else set(items)
    raise ValueError(f"unknown cached type {kind!r}")


def cached_rows(path: Path | None, build: Callable[[], T]) -> T:
    """``build()``, kept in ``path`` (``.json.gz``) so that the next run reads it instead; no cache if None."""
    if path is not None and Path(path).exists():
        with gzip.open(path, "rt") as handle:
            return decode(json.load(handle))
    rows = build()
    if path is not None:
        with atomic_path(Path(path)) as tmp, gzip.open(tmp, "wt") as handle:
            json.dump(encode(rows), handle)
    return rows
