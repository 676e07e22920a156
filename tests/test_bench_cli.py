"""``xtalagent bench``: the rerunnable benchmarks, one command each, through the CLI itself.

Only the cheap ones run here, on the shipped fixtures with a tiny size; every result must say which
benchmark, variant and machine produced it.
"""

import gzip
import json

import pytest
from typer.testing import CliRunner

from xtalagent.agent.cli import app, main

BENCHMARKS = ("constraints", "band-gap", "screen", "design-timing", "design-e2e", "csp", "sampling-speed",
              "serving", "ray", "request-parser", "fuzz", "data-build", "web")  # fmt: skip


@pytest.fixture
def shared(tmp_path, fixtures):
    """A stand-in for ../shared/data holding only the fixture crystals as mp/structures.csv.gz."""
    folder = tmp_path / "shared"
    (folder / "mp").mkdir(parents=True)
    (folder / "mp" / "structures.csv.gz").write_bytes(gzip.compress((fixtures / "crystals.csv").read_bytes()))
    return folder


def test_bench_help_lists_every_benchmark():
    result = CliRunner().invoke(app, ["bench", "--help"])
    assert result.exit_code == 0
    for name in BENCHMARKS:
        assert name in result.output


@pytest.mark.parametrize("name", ["serving", "ray"])
def test_script_benchmarks_run_their_script_through_the_cli(name):
    result = CliRunner().invoke(app, ["bench", name, "--help"])  # the script's own options
    assert result.exit_code == 0 and f"bench_{name}.py" in result.output


def test_serving_benchmark_stops_on_a_failed_request_and_writes_nothing(tmp_path, fixture_dataset):
    """An unreachable server answers every request with an error: one line, exit 1, no result file
    (it used to be timed as an answer and written over the measured result)."""
    out = tmp_path / "serving.json"
    args = ["bench", "serving", "--dataset", str(fixture_dataset), "--n", "1", "--endpoint", "http://127.0.0.1:9",
            "--output", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "not reachable" in str(result.exception or result.output)
    assert not out.exists()


def test_data_build_writes_a_result_naming_variant_and_machine(tmp_path, shared):
    results = tmp_path / "results"
    args = ["bench", "data-build", "--dataset", "mp", "--limit", "4", "--workers", "1", "--shared-data", str(shared),
            "--out-dir", str(tmp_path / "datasets"), "--results", str(results), "--variant", "tiny",
            "--note", "4 fixture crystals"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    written = json.loads((results / "data_build_tiny.json").read_text())
    assert written["run"]["benchmark"] == "data-build"
    assert written["run"]["variant"] == "tiny" and written["run"]["variant_note"] == "4 fixture crystals"
    assert written["run"]["machine"]["cpus"] >= 1 and "load_average" in written["run"]["machine"]
    assert written["run"]["options"]["limit"] == 4
    row = written["datasets"]["mp/structures.csv.gz"]
    assert row["n_read"] == 4 and row["n_labelled"] == 4
    assert (tmp_path / "datasets" / "mp_structures.parquet").is_file()


def test_missing_shared_data_is_one_line(tmp_path, capsys):
    code = main(["bench", "band-gap", "--shared-data", str(tmp_path / "nowhere"), "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "shared data not found" in err and "--shared-data" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_missing_dataset_says_how_to_build_it(tmp_path, capsys):
    code = main(["bench", "constraints", "latency", "--dataset", str(tmp_path / "none.parquet")])
    err = capsys.readouterr().err
    assert code == 1 and "xtalagent bench data-build" in err


def test_bad_part_is_refused(capsys):
    assert main(["bench", "constraints", "everything"]) == 1
    assert "latency" in capsys.readouterr().err


def test_row_cache_gives_back_what_the_experiments_store(tmp_path):
    """The tuning experiments' cached rows (numpy arrays, tuples as keys, sets, Counters) survive the JSON cache."""
    from collections import Counter

    import numpy as np

    from xtalagent.eval.benchmarks.row_cache import cached_rows

    rows = [{"half": "A", "truth": Counter({("Na", "4a"): 1, ("Cl", "4b"): 1}), "groups": np.array([225, 221]),
             "scores": np.array([-0.5, float("-inf")]), "beam": {(("Cl", "4b"), ("Na", "4a"))},
             "sites_of": {3: (("Na", "4a"),)}, "pool": (np.array([3, 7]), np.array([0.1, 0.2], dtype=np.float32)),
             "properties": (None, -1.5), "ratio_rank": np.int64(2), "hosted": [0, 1]}]  # fmt: skip
    path = tmp_path / "rows.json.gz"
    assert cached_rows(path, lambda: rows) is rows
    back = cached_rows(path, lambda: pytest.fail("the cache was not read"))
    row, original = back[0], rows[0]
    assert row["truth"] == original["truth"] and isinstance(row["truth"], Counter)
    assert row["groups"].dtype == original["groups"].dtype and row["groups"].tolist() == [225, 221]
    assert row["scores"][1] == float("-inf")
    assert row["beam"] == original["beam"] and row["sites_of"] == original["sites_of"]
    assert row["pool"][1].dtype == np.float32 and row["properties"] == (None, -1.5)
    assert row["ratio_rank"] == 2 and row["hosted"] == [0, 1]


def test_request_parser_and_fuzz_on_tiny_inputs(tmp_path):
    """The two cheapest benchmarks through the CLI: a two-case suite, and 20 fuzzed inputs."""
    suite = tmp_path / "request_suite_tiny.jsonl"
    cases = [{"text": "Design a crystal with composition Li2MnO3", "expected": {"composition": "Li2MnO3"}},
             {"text": "something shiny", "expected_questions": True}]  # fmt: skip
    suite.write_text("".join(json.dumps(case) + "\n" for case in cases))
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "request-parser", "--suite", str(suite), "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "request_parser_tiny.json").read_text())
    assert written["n"] == 2 and written["correct"] == 2 and written["suite"] == suite.name
    assert written["run"]["benchmark"] == "request-parser" and written["run"]["variant"] == "default"
    assert written["run"]["machine"]["cpus"] >= 1

    result = runner.invoke(app, ["bench", "fuzz", "--cases", "20", "--seed", "3", "--results", str(tmp_path),
                                 "--variant", "tiny"])  # fmt: skip
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "fuzz_tiny.json").read_text())
    assert written["cases"] == 20 and written["tracebacks"] == 0
    assert written["run"]["variant"] == "tiny" and written["run"]["options"]["cases"] == 20
