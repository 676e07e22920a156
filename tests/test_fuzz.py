"""Fuzzing with a small budget: no input of any kind may cost a traceback (issue 21).

The seeded generators and properties are those of ``bench/bench_fuzz.py`` (run there with 10,000+
cases); hypothesis adds structured request and constraint objects and shrinks any failure.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_SPEC = importlib.util.spec_from_file_location("bench_fuzz", Path(__file__).parent.parent / "bench" / "bench_fuzz.py")
bench_fuzz = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench_fuzz)

#: Cases per kind in CI: a few seconds in all (CIFs are labelled with pyxtal, so fewer of them).
BUDGET = {"request_line": 120, "constraint_line": 120, "cif_text": 40, "prompt": 120}


@pytest.mark.slow
@pytest.mark.parametrize("kind", bench_fuzz.KINDS)
def test_seeded_fuzz_gives_answers_or_clear_errors(kind):
    report = bench_fuzz.fuzz({kind: BUDGET[kind]}, seed=21)
    row = report["kinds"][kind]
    assert row["cases"] == BUDGET[kind]
    assert report["failures"] == [], json.dumps(report["failures"][:3], indent=2)[:3000]
    assert row["answer"] + row["error"] == row["cases"]
    assert row["answer"] > 0 and row["error"] > 0  # the generator reaches both outcomes


def test_the_properties_catch_a_traceback():
    """The harness itself: an exception other than a clear error counts as a traceback."""
    outcome, detail = bench_fuzz.run_case("request_line", "{}")
    assert outcome == "error"
    original = bench_fuzz.CHECKS["prompt"]
    bench_fuzz.CHECKS["prompt"] = lambda text: 1 / 0
    try:
        outcome, detail = bench_fuzz.run_case("prompt", "TiO2")
    finally:
        bench_fuzz.CHECKS["prompt"] = original
    assert outcome == "traceback" and "ZeroDivisionError" in detail


_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from(["3", None, True, [], {}]),
)
_symbols = st.one_of(st.sampled_from(["Ti", "O", "Na", "Cl", "Fe", "Og", "Xx", "", "o"]), st.text(max_size=3))
_formulas = st.one_of(
    st.lists(st.tuples(_symbols, st.one_of(st.just(""), st.integers(0, 10**30).map(str))), max_size=5).map(
        lambda parts: "".join(a + b for a, b in parts)
    ),
    st.text(max_size=20),
    _numbers,
)
_requests = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.integers(), st.text(max_size=5), st.none()),
        "formula": _formulas,
        "composition": _formulas,
        "elements": st.one_of(st.lists(_symbols, max_size=5), _numbers),
        "band_gap": _numbers,
        "formation_energy": _numbers,
        "spacegroup": _numbers,
        "max_atoms": _numbers,
        "colour": st.text(max_size=3),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests)
def test_request_objects_are_answered_or_refused_with_a_clear_error(data):
    outcome, message = bench_fuzz.run_case("request_line", json.dumps(data))
    assert outcome in ("answer", "error"), message
    if outcome == "answer":
        for key in ("band_gap", "formation_energy"):
            value = data.get(key)
            assert value is None or (isinstance(value, int | float) and math.isfinite(value))


_sites = st.lists(
    st.fixed_dictionaries(
        {"element": _symbols, "wyckoff": st.one_of(st.sampled_from(["4a", "a", "4b", "2c", "1a", "z"]), _numbers)}
    ),
    max_size=4,
)
_constraints = st.fixed_dictionaries(
    {},
    optional={"spacegroup": _numbers, "sites": st.one_of(_sites, _numbers), "formula": _formulas, "band_gap": _numbers},
)
_lines = st.one_of(
    _constraints,
    st.fixed_dictionaries(
        {"candidates": st.one_of(st.lists(_constraints, max_size=3), _numbers)},
        optional={"id": st.integers(), "error": st.one_of(st.text(max_size=10), _numbers)},
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_lines)
def test_constraint_lines_are_read_or_skipped_with_a_clear_error(data):
    outcome, message = bench_fuzz.run_case("constraint_line", json.dumps(data))
    assert outcome in ("answer", "error"), message


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_any_prompt_text_is_understood_or_refused(text):
    outcome, message = bench_fuzz.run_case("prompt", text)
    assert outcome in ("answer", "error"), message
