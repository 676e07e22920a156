"""Fuzz every kind of user input: no traceback, ever — either a clear error or a valid answer (issue 21).

Four input kinds, each through the function the CLI uses to read it:

* ``request_line`` — a line of a ``constraints predict`` request file, through
  :func:`~xtalagent.finetune.predictor.read_request_lines`; a valid request must also give its
  decoding context and feasible space groups (the model itself is not run);
* ``constraint_line`` — a line of a ``structures sample`` constraint file, through
  :func:`~xtalagent.structure_gen.io.read_constraint_lines`;
* ``cif_text`` — a CIF as ``data build`` labels it, through :func:`~xtalagent.data.build.label_raw`;
* ``prompt`` — a design request in words, through :func:`~xtalagent.agent.parser.parse_request`.

Cases are valid inputs (fixtures, the parser's wording suite) mutated at random: edge-case numbers
(NaN, Infinity, 1e308, huge integers), wrong types, unknown keys and symbols, and text damage
(truncation, flipped, inserted and deleted characters, duplicated or dropped lines).

Each case ends as ``answer``, ``error`` (a one-line message the user can act on), or a failure:
``traceback`` (an exception other than XtalAgentError / pydantic ValidationError escaped),
``caught`` (a catch-all turned an unexpected exception into a generic message: a hidden bug),
``multiline`` (an error message of several lines) or ``timeout``.

Run:  xtalagent bench fuzz [--cases 10000] [--seed 0]     # -> bench/results/fuzz.json
tests/test_fuzz.py runs the same generators with a small budget. The valid inputs that get mutated
are the repository's fixtures (tests/fixtures) and phrasing suites (bench/), so it runs from a checkout.
"""

from __future__ import annotations

import json
import math
import random
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from xtalagent.errors import XtalAgentError
from xtalagent.eval.benchmarks.paths import CHECKOUT, checkout_path, results_dir
from xtalagent.eval.benchmarks.results import DEFAULT_VARIANT, result_name, write_result

ROOT = CHECKOUT
FIXTURES = ROOT / "tests" / "fixtures"
KINDS = ("request_line", "constraint_line", "cif_text", "prompt")
#: Share of the cases per kind (CIFs are labelled with pyxtal, so they are the slow ones).
SHARES = {"request_line": 0.3, "constraint_line": 0.3, "cif_text": 0.15, "prompt": 0.25}
#: Seconds one case may take before it counts as a ``timeout``.
CASE_TIMEOUT = 30

ELEMENTS = ["H", "Li", "O", "Na", "Cl", "Ti", "Fe", "Ba", "Ru", "Zn", "Sc", "Ni", "Nd", "Co", "Cs", "U", "Og"]
BAD_SYMBOLS = ["Xx", "", "o", "OO", "Na1", "1", "Ü", "D", "Q", " ", "Ti\n", "null"]
NUMBERS: list[Any] = [
    0, -0.0, 1, 2, 3.2, -2, -1, 20, 20.0001, 5.2, -10, -10.5, 1e-320, 1e308, -1e308, 10**400, -(10**30),
    float("nan"), float("inf"), float("-inf"), 0.5, 230, 231, 500, 501, 2**63, "3", "NaN", True, None, [], {},
]  # fmt: skip
WYCKOFF = ["4a", "a", "4b", "2c", "6h", "1a", "99z", "", "4", "A", "0a", "48n", 5, None, ["4a"]]
JUNK = ["\x00", "\ufeff", "é", "𝔸", "\\", '"', "{", "}", "[", "]", ",", ":", "\n", "\t", "1e999", "-", "NaN"]
WORDS = [
    "band gap", "eV", "meV", "space group", "atoms", "cubic", "hexagonal", "no more than", "at least", "between",
    "and", "or", "not", "without", "-", "~", "±", "near", "stable", "formation energy", "eV/atom", "candidates",
    "structures", "Fe2O3", "TiO2", "Ba", "Ru", "oxide", "ternary", "999", "0", "-2", "1e400", "NaN", "Infinity",
    "P6_3/mmc", "Fm-3m", "225", "only", "instead", "more", "%", "(", ")", "Ti100O200", "x", "per atom",
]  # fmt: skip


# --- generators -----------------------------------------------------------------------------------
def _number(rng: random.Random) -> Any:
    if rng.random() < 0.7:
        return rng.choice(NUMBERS)
    return rng.choice([rng.uniform(-50, 50), rng.randint(-(10**6), 10**6), rng.expovariate(0.1)])


#: Plausible values of request fields (most cases should get past validation and exercise the rest).
PLAUSIBLE: dict[str, Callable[[random.Random], Any]] = {
    "band_gap": lambda rng: round(rng.uniform(0, 8), 2),
    "formation_energy": lambda rng: round(rng.uniform(-4, 1), 2),
    "spacegroup": lambda rng: rng.randint(1, 230),
    "max_atoms": lambda rng: rng.randint(4, 60),
}


def _field(rng: random.Random, key: str) -> Any:
    return PLAUSIBLE[key](rng) if rng.random() < 0.6 else _number(rng)


def _formula(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.03:
        return _number(rng)
    if roll < 0.08:
        return "".join(rng.choice(JUNK + BAD_SYMBOLS + ELEMENTS) for _ in range(rng.randint(0, 6)))
    parts = []
    for symbol in rng.sample(ELEMENTS[:-1], rng.randint(1, 4)):
        if rng.random() < 0.05:
            symbol = rng.choice(BAD_SYMBOLS + ["Og"])
        count = rng.choice(["", "1", "2", "3", "4", "6", "2", "1", "3"])
        if rng.random() < 0.1:
            count = rng.choice(["0", "1.5", "100", "200", "9" * rng.randint(1, 400), ".", "-1", "e5", "1.0"])
        parts.append(symbol + count)
    return "".join(parts)


def _damage(rng: random.Random, text: str) -> str:
    """Text-level damage: truncation, flips, insertions, deletions, duplication."""
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        at = rng.randint(0, len(chars)) if chars else 0
        if roll < 0.25 and chars:
            del chars[at : at + rng.randint(1, 8)]
        elif roll < 0.5:
            chars[at:at] = list(rng.choice(JUNK + WORDS))
        elif roll < 0.7 and chars:
            chars = chars[: rng.randint(0, len(chars))]
        elif roll < 0.85 and chars:
            i = min(at, len(chars) - 1)
            chars[i] = chr(rng.randint(0, 0x2FF))
        else:
            chars = chars + chars[rng.randint(0, len(chars)) :] if chars else chars
    return "".join(chars)


def _dumps(rng: random.Random, data: Any) -> str:
    """JSON text of ``data`` (NaN and Infinity spelled as Python's json writes them), sometimes damaged."""
    try:
        text = json.dumps(data)
    except (ValueError, TypeError):
        text = repr(data)
    return _damage(rng, text) if rng.random() < 0.15 else text


def gen_request_line(rng: random.Random) -> str:
    """A line of a request file: mostly JSON objects with mutated fields, sometimes anything else."""
    roll = rng.random()
    if roll < 0.05:
        return rng.choice(["", "  ", "[]", "null", "3", '"TiO2"', "[" * 2000 + "]" * 2000, "{" * 50, "\x00\x01"])
    data: dict[str, Any] = {}
    form = rng.choice(["formula", "elements", "composition"])
    if form == "elements":
        data["elements"] = rng.sample(ELEMENTS[:-1], rng.randint(1, 4))
        if rng.random() < 0.2:
            data["elements"] = rng.choice([[], [rng.choice(BAD_SYMBOLS)], ["O", "O"], "TiO", [1, 2], None])
    else:
        data[form] = _formula(rng)
    if rng.random() < 0.05:  # a second composition form
        data[rng.choice(["formula", "elements", "composition"])] = _formula(rng)
    for key, chance in (("band_gap", 0.4), ("formation_energy", 0.4), ("spacegroup", 0.15), ("max_atoms", 0.2)):
        if rng.random() < chance:
            data[key] = _field(rng, key)
    if rng.random() < 0.5:
        data["id"] = rng.choice([1, 7, "a", None, [1], {"x": 1}, 1e308, "ü"])
    if rng.random() < 0.05:
        data[rng.choice(["colour", "", "Formula", "band gap"])] = _number(rng)
    return _dumps(rng, data)


def _constraint(rng: random.Random) -> dict[str, Any]:
    base = rng.choice(
        [
            {"spacegroup": 225, "sites": [{"element": "Na", "wyckoff": "4a"}, {"element": "Cl", "wyckoff": "4b"}]},
            {"spacegroup": 194, "sites": [{"element": "Sc", "wyckoff": "2c"}, {"element": "Ni", "wyckoff": "6h"}]},
            {"spacegroup": 136, "sites": [{"element": "Ti", "wyckoff": "2a"}, {"element": "O", "wyckoff": "4f"}]},
            {"spacegroup": 1, "sites": [{"element": "Fe", "wyckoff": "1a"}]},
        ]
    )
    data: dict[str, Any] = json.loads(json.dumps(base))
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        roll = rng.random()
        given = data.get("sites")
        sites = [s for s in given if isinstance(s, dict)] if isinstance(given, list) else []
        if roll < 0.2:
            data["spacegroup"] = _number(rng)
        elif roll < 0.4 and sites:
            rng.choice(sites)["wyckoff"] = rng.choice(WYCKOFF)
        elif roll < 0.55 and sites:
            rng.choice(sites)["element"] = rng.choice(ELEMENTS + BAD_SYMBOLS + [None, 3])
        elif roll < 0.65:
            data["sites"] = rng.choice([[], None, "4a", [None], [{}], sites * rng.randint(2, 40)])
        elif roll < 0.8:
            key = rng.choice(["band_gap", "formation_energy"])
            data[key] = _field(rng, key)
        elif roll < 0.9:
            data["formula"] = _formula(rng)
        elif data:
            data.pop(rng.choice(list(data)), None)
    return data


def gen_constraint_line(rng: random.Random) -> str:
    """A line of a constraint file: a constraint, a prediction with candidates, or predict's error line."""
    roll = rng.random()
    if roll < 0.05:
        return rng.choice(["", "[]", "null", "7", '"x"', "[" * 2000 + "]" * 2000, "{"])
    if roll < 0.45:
        data: Any = _constraint(rng)
    elif roll < 0.85:
        candidates: Any = [dict(_constraint(rng), score=_number(rng)) for _ in range(rng.randint(0, 3))]
        if rng.random() < 0.1:
            candidates = rng.choice([None, {}, "x", 3, [1, "a"]])
        data = {"id": rng.choice([1, "a", None, [2]]), "candidates": candidates}
        if rng.random() < 0.2:
            data["error"] = rng.choice(["no space group can host Xx", "", None, 3])
    else:
        data = {"id": rng.choice([1, "a", None]), "error": rng.choice(["formula too large", "", None, 3, ["x"]])}
    return _dumps(rng, data)


_CIFS: list[str] = []


def _cif_bases() -> list[str]:
    if not _CIFS:
        checkout_path("tests/fixtures")  # a clear error outside a checkout
        for folder in ("cifs", "bad", "bad_input"):
            _CIFS.extend(p.read_text() for p in sorted((FIXTURES / folder).glob("*.cif")))
    return _CIFS


def gen_cif_text(rng: random.Random) -> str:
    """A fixture CIF with lines dropped, duplicated, shuffled or with numbers and symbols replaced."""
    lines = rng.choice(_cif_bases()).splitlines()
    for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
        roll = rng.random()
        i = rng.randrange(len(lines)) if lines else 0
        if not lines:
            break
        if roll < 0.15:
            del lines[i]
        elif roll < 0.3:
            lines.insert(i, lines[i])  # e.g. two atoms on one site
        elif roll < 0.55:
            words = lines[i].split()
            numeric = [k for k, w in enumerate(words) if w.replace(".", "", 1).lstrip("-").isdigit()]
            if numeric:
                words[rng.choice(numeric)] = str(
                    rng.choice(["0", "-1", "1e9", "1e-9", "nan", "inf", "2", "0.0001", "180", "-0.5", "1e400"])
                )
                lines[i] = "  ".join(words)
        elif roll < 0.7:
            words = lines[i].split()
            if words:
                words[0] = rng.choice(ELEMENTS + BAD_SYMBOLS)
                lines[i] = "  ".join(words)
        elif roll < 0.73:
            rng.shuffle(lines)
        elif roll < 0.8:
            lines.insert(i, rng.choice(lines))
        elif roll < 0.9:
            lines = lines[: rng.randint(0, len(lines))]
        else:
            lines[i] = _damage(rng, lines[i])
    text = "\n".join(lines) + "\n"
    return _damage(rng, text) if rng.random() < 0.05 else text


_PROMPTS: list[str] = []


def _prompt_bases() -> list[str]:
    if not _PROMPTS:
        for name in ("request_suite.jsonl", "request_suite_heldout.jsonl"):
            path = ROOT / "bench" / name
            if path.exists():
                _PROMPTS.extend(json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip())
        _PROMPTS.extend(
            [
                "space group 999",
                "Fe2O3 with a band gap of -2 eV",
                "ternary oxide of Ba, Ru and O, stable, 10 candidates, no more than 20 atoms",
                "a stable Ti-O compound with a band gap near 3 eV",
            ]
        )
    return _PROMPTS


def gen_prompt(rng: random.Random) -> str:
    """A wording of the request suite with words inserted, replaced, dropped, or damaged text."""
    roll = rng.random()
    if roll < 0.03:
        return rng.choice(["", " ", "\n", "\x00", "?" * 10, " ".join(rng.choice(WORDS) for _ in range(2000))])
    words = rng.choice(_prompt_bases()).split()
    for _ in range(rng.randint(1, 5)):
        roll = rng.random()
        i = rng.randint(0, len(words))
        if roll < 0.4:
            words.insert(i, rng.choice(WORDS) if rng.random() < 0.8 else str(_number(rng)))
        elif roll < 0.6 and words:
            words[min(i, len(words) - 1)] = rng.choice(WORDS + ELEMENTS + BAD_SYMBOLS)
        elif roll < 0.75 and words:
            del words[min(i, len(words) - 1)]
        else:
            formula = _formula(rng)
            words.insert(i, formula if isinstance(formula, str) else "Ti2O3")
    text = " ".join(str(w) for w in words)
    return _damage(rng, text) if rng.random() < 0.2 else text


# --- properties -------------------------------------------------------------------------------------
def check_request_line(text: str) -> tuple[str, str | None]:
    """``answer`` or ``error``; a valid request must give its context and feasible groups."""
    from xtalagent.finetune.predictor import ConstraintPredictor, read_request_lines
    from xtalagent.finetune.requests import ConstraintRequest, Prediction
    from xtalagent.finetune.wyckoff_solver import feasible_groups

    items = list(read_request_lines([text]))
    if not items:
        assert not text.strip(), "a non-blank line gave no record"
        return "answer", None
    (item,) = items
    if isinstance(item, Prediction):
        assert item.error, "an error record without a message"
        return _error(item.error)
    assert isinstance(item, ConstraintRequest)
    for value in (item.band_gap, item.formation_energy):
        assert value is None or math.isfinite(value), "a non-finite target was accepted"
    ConstraintPredictor.context(item)
    feasible_groups(item.target())
    return "answer", None


def check_constraint_line(text: str) -> tuple[str, str | None]:
    """``answer`` or ``error``; every constraint read is valid and has positive counts."""
    from xtalagent.records import SymmetryConstraint
    from xtalagent.structure_gen.io import read_constraint_lines

    entries, skipped = read_constraint_lines([text])
    if skipped:
        assert not entries, "one line both read and skipped"
        return _error(skipped[0].reason)
    for entry in entries:
        assert isinstance(entry.constraint, SymmetryConstraint)
        assert all(n > 0 for n in entry.constraint.counts.values())
    return "answer", None


def check_cif_text(text: str) -> tuple[str, str | None]:
    """``answer``, ``error`` or ``caught`` (label_raw's catch-all hid an unexpected exception)."""
    from xtalagent.data.build import label_raw
    from xtalagent.data.readers import RawCrystal

    row, reason = label_raw(RawCrystal(id="fuzz", source="fuzz", cif=text), 0.1)
    if row is None:
        assert reason, "a skipped crystal without a reason"
        return ("caught", reason) if reason.startswith("labelling failed:") else _error(reason)
    assert 1 <= row["spacegroup"] <= 230 and row["natoms"] >= 1 and row["sites"]
    return "answer", None


def check_prompt(text: str) -> tuple[str, str | None]:
    """``answer``, ``error`` or ``caught`` (parse_request's catch-all hid an unexpected exception)."""
    from xtalagent.agent.parser import parse_request

    result = parse_request(text)
    if result.error:
        if result.error.startswith("Could not read the request ("):
            return "caught", result.error
        return _error(result.error)
    if result.request is not None:
        type(result.request).model_validate(result.request.model_dump())  # the answer is a valid request
    return "answer", None


def _error(message: str) -> tuple[str, str]:
    return ("multiline" if "\n" in message.strip() else "error"), message


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "request_line": gen_request_line,
    "constraint_line": gen_constraint_line,
    "cif_text": gen_cif_text,
    "prompt": gen_prompt,
}
CHECKS: dict[str, Callable[[str], tuple[str, str | None]]] = {
    "request_line": check_request_line,
    "constraint_line": check_constraint_line,
    "cif_text": check_cif_text,
    "prompt": check_prompt,
}


class _Timeout(Exception):
    pass


def _alarm(signum, frame) -> None:
    raise _Timeout


def run_case(kind: str, text: str) -> tuple[str, str | None]:
    """(outcome, detail): a clear XtalAgentError / ValidationError is an ``error``; any other
    exception is a ``traceback`` with its formatted text as detail."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_TIMEOUT)
    try:
        return CHECKS[kind](text)
    except (XtalAgentError, ValidationError) as exc:
        return _error(str(exc) if isinstance(exc, XtalAgentError) else exc.errors()[0]["msg"])
    except _Timeout:
        return "timeout", None
    except Exception:  # the failure this bench looks for
        return "traceback", traceback.format_exc()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def fuzz(counts: dict[str, int], seed: int = 0) -> dict[str, Any]:
    """Run ``counts[kind]`` cases of each kind; outcomes per kind and the first failures with inputs."""
    report: dict[str, Any] = {"seed": seed, "kinds": {}, "failures": []}
    for kind, n in counts.items():
        rng = random.Random(f"{seed}:{kind}")
        outcomes: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        slowest = 0.0
        start = time.perf_counter()
        for _ in range(n):
            text = GENERATORS[kind](rng)
            began = time.perf_counter()
            outcome, detail = run_case(kind, text)
            slowest = max(slowest, time.perf_counter() - began)
            outcomes[outcome] += 1
            if kind == "cif_text" and outcome == "error":
                reasons[(detail or "").split(":", 1)[0]] += 1
            if outcome not in ("answer", "error") and len(report["failures"]) < 20:
                report["failures"].append({"kind": kind, "outcome": outcome, "input": text[:2000], "detail": detail})
        report["kinds"][kind] = {
            "cases": n,
            **{k: outcomes.get(k, 0) for k in ("answer", "error", "traceback", "caught", "multiline", "timeout")},
            "seconds": round(time.perf_counter() - start, 1),
            "slowest_case_seconds": round(slowest, 2),
        }
        if reasons:
            report["kinds"][kind]["error_reasons"] = dict(reasons.most_common())
    report["cases"] = sum(counts.values())
    report["tracebacks"] = sum(k["traceback"] for k in report["kinds"].values())
    report["hidden_exceptions"] = sum(k["caught"] for k in report["kinds"].values())
    report["multiline_errors"] = sum(k["multiline"] for k in report["kinds"].values())
    report["timeouts"] = sum(k["timeout"] for k in report["kinds"].values())
    return report


def split_cases(total: int) -> dict[str, int]:
    """``total`` cases shared out by :data:`SHARES` (the remainder goes to request lines)."""
    counts = {kind: int(total * SHARES[kind]) for kind in KINDS}
    counts["request_line"] += total - sum(counts.values())
    return counts


def run_fuzz(
    *,
    cases: int = 10_000,
    seed: int = 0,
    output: Path | None = None,
    results: Path | None = None,
    variant: str = DEFAULT_VARIANT,
    run: dict[str, Any],
) -> tuple[dict[str, Any], Path]:
    """Fuzz ``cases`` inputs shared out by kind; return the report and the JSON path."""
    start = time.perf_counter()
    report = fuzz(split_cases(cases), seed)
    report["seconds"] = round(time.perf_counter() - start, 1)
    path = output or results_dir(results) / f"{result_name('fuzz', variant)}.json"
    return report, write_result(path, report, run=run)
