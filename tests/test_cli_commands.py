"""Every command and subcommand, driven through the CLI (``xtalagent.agent.cli.main``) on fixtures.

Each command runs at least once on the happy path and once on bad input. Bad input must give one
``error:`` line and exit code 1, never a traceback; batch commands skip bad items, name them and go
on; a wrong ``-o`` is refused before the heavy work starts (issue 21).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from xtalagent.agent.cli import main

NACL = {"spacegroup": 225, "sites": [{"element": "Na", "wyckoff": "4a"}, {"element": "Cl", "wyckoff": "4b"}]}


def run(capsys, *args: str | Path) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one CLI call."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error(code: int, err: str, *fragments: str) -> None:
    """Exit code 1, exactly one ``error:`` line holding every fragment, and no traceback."""
    assert code == 1, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# --- usage errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, fragment",
    [
        (["nosuch"], "No such command"),
        (["data", "build"], "Missing argument"),
        (["serve", "--dry-run", "--port", "abc"], "--port"),
    ],
)
def test_usage_errors_are_one_line(capsys, args, fragment):
    code, _, err = run(capsys, *args)
    assert_one_error(code, err, fragment)


# --- data build / data info -----------------------------------------------------------------------
def test_data_build_recurses_and_skips_bad_files_with_reasons(tmp_path, fixtures, capsys):
    src = tmp_path / "crystals"
    (src / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(fixtures / "cifs" / "NaCl.cif", src / "NaCl.cif")
    shutil.copy(fixtures / "cifs" / "rutile_TiO2.cif", src / "sub" / "rutile_TiO2.cif")
    shutil.copy(fixtures / "cifs" / "wurtzite_ZnO.cif", src / "sub" / "deeper" / "ZnO.CIF")
    shutil.copy(fixtures / "bad_input" / "atoms_too_close.cif", src / "sub" / "close.cif")
    shutil.copy(fixtures / "bad_input" / "two_atoms_one_site.cif", src / "double.cif")
    (src / "notes.txt").write_text("not a crystal\n")
    (src / "gone.cif").symlink_to(tmp_path / "nowhere.cif")
    out = tmp_path / "d.parquet"
    code, text, err = run(capsys, "data", "build", src, "-o", out, "--workers", "1")
    assert code == 0, err
    assert "labelled 3/7" in text
    report = json.loads((tmp_path / "d.report.json").read_text())
    reasons = {s["id"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"notes.txt", "gone", "sub/close", "double"}
    assert reasons["notes.txt"].startswith("not a CIF file")
    assert reasons["gone"].startswith("unreadable file") and "dangling symlink" in reasons["gone"]
    assert reasons["sub/close"].startswith("atoms too close") and "0.06 Å" in reasons["sub/close"]
    assert reasons["double"].startswith("site occupancy over 1") and "2.0" in reasons["double"]
    for name in ("notes.txt", "gone", "sub/close", "double"):
        assert name in text  # the report names each skipped item
    code, text, err = run(capsys, "data", "info", out)
    assert code == 0 and "3 crystals" in text


@pytest.mark.parametrize(
    "source, message",
    [
        ("bad_input/atoms_too_close.cif", "atoms too close"),
        ("bad_input/two_atoms_one_site.cif", "site occupancy over 1"),
    ],
)
def test_data_build_names_the_real_cause(tmp_path, fixtures, capsys, source, message):
    code, _, err = run(capsys, "data", "build", fixtures / source, "-o", tmp_path / "o.parquet")
    assert_one_error(code, err, message)


def test_data_build_refuses_a_folder_without_cifs_and_a_bad_output(tmp_path, fixtures, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    code, _, err = run(capsys, "data", "build", tmp_path / "empty", "-o", tmp_path / "o.parquet")
    assert_one_error(code, err, "no .cif files")
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "data", "build", fixtures / "cifs", "-o", tmp_path / "file" / "o.parquet")
    assert_one_error(code, err, "is a file, not a folder")


def test_data_info_refuses_a_missing_dataset(tmp_path, capsys):
    code, _, err = run(capsys, "data", "info", tmp_path / "missing.parquet")
    assert_one_error(code, err)


# --- constraints predict / eval -------------------------------------------------------------------
def test_constraints_predict_answers_and_reports_bad_lines(tmp_path, tiny_model, capsys):
    requests = write_jsonl(
        tmp_path / "r.jsonl",
        [
            {"id": 1, "formula": "Na4Cl4"},
            {"id": 2, "formula": "Ti100O200"},
            '{"id": 3, "formula": "TiO2", "formation_energy": NaN}',
            '{"id": 4, "formula": "TiO2", "formation_energy": Infinity}',
            {"id": 5, "formula": "TiO2", "band_gap": 1e308},
            {"id": 1, "composition": "NaCl"},
            "not json",
        ],
    )
    out = tmp_path / "c.jsonl"
    code, text, err = run(capsys, "constraints", "predict", requests, "-o", out, "--model", tiny_model, "--top-k", "1")
    assert code == 0, err
    assert "2 answered, 5 with errors" in text
    assert "request id 1 is given more than once" in err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r.get("id") for r in rows] == [1, 2, 3, 4, 5, 1, None]
    assert rows[0]["candidates"] and rows[5]["candidates"]
    assert "300 atoms" in rows[1]["error"]
    assert "finite" in rows[2]["error"] and "finite" in rows[3]["error"]
    assert "less than or equal to 20" in rows[4]["error"]
    assert "not valid JSON" in rows[6]["error"]
    assert not list(tmp_path.glob(".c.jsonl.*"))  # no temporary or lock file left behind
    code, text, _ = run(capsys, "constraints", "predict", requests, "-o", out, "--model", tiny_model, "--top-k", "1")
    assert code == 0 and "replaced the previous file" in text


def test_constraints_predict_refuses_bad_files_before_loading_the_model(tmp_path, capsys, monkeypatch):
    import xtalagent.finetune.predictor as predictor_module

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not load for a bad input")

    monkeypatch.setattr(predictor_module, "load_predictor", no_model)
    good = write_jsonl(tmp_path / "good.jsonl", [{"formula": "NaCl"}])
    (tmp_path / "empty.jsonl").write_text("\n  \n")
    (tmp_path / "binary.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    (tmp_path / "existing_dir").mkdir()
    cases = [
        ([tmp_path / "empty.jsonl"], "holds no requests"),
        ([tmp_path], "is a folder"),
        ([tmp_path / "binary.jsonl"], "not UTF-8 text"),
        ([tmp_path / "missing.jsonl"], "no such file"),
        ([good, "-o", tmp_path / "existing_dir"], "is a folder"),
        ([good, "-o", good / "sub.jsonl"], "is a file, not a folder"),
    ]
    for args, message in cases:
        code, _, err = run(capsys, "constraints", "predict", *args)
        assert_one_error(code, err, message)


def test_constraints_predict_refuses_a_second_writer_of_the_same_output(tmp_path, capsys, monkeypatch):
    """While one process writes ``-o``, a second one is refused at once instead of silently losing a result."""
    import xtalagent.finetune.predictor as predictor_module
    from xtalagent.io import exclusive_output

    monkeypatch.setattr(predictor_module, "load_predictor", lambda *a, **k: pytest.fail("model loaded"))
    good = write_jsonl(tmp_path / "good.jsonl", [{"formula": "NaCl"}])
    out = tmp_path / "c.jsonl"
    with exclusive_output(out):
        code, _, err = run(capsys, "constraints", "predict", good, "-o", out)
    assert_one_error(code, err, "another process is writing")
    assert not out.exists()


def test_constraints_eval_through_the_cli(tmp_path, fixture_dataset, tiny_model, capsys):
    out = tmp_path / "eval"
    args = ["constraints", "eval", fixture_dataset, "-o", out, "--model", tiny_model, "--limit", "2"]
    args += ["--patterns", "formula", "--properties", "none", "--top-k", "1"]
    code, text, err = run(capsys, *args)
    assert code == 0, err
    summary = json.loads((out / "constraints_eval.json").read_text())
    assert summary["results"] and "constraints_eval.json" in text
    code, _, err = run(capsys, "constraints", "eval", fixture_dataset, "--split", "train", "-o", out)
    assert_one_error(code, err, "training split")


# --- finetune (happy path: tests/test_cli.py::test_finetune_base_size_reaches_the_saved_model) ------
def test_finetune_refuses_an_unknown_stage(tmp_path, fixtures, capsys):
    code, _, err = run(capsys, "finetune", fixtures / "crystals.csv", "-o", tmp_path / "m", "--stages", "sg,nope")
    assert_one_error(code, err, "unknown stage", "nope")


# --- structures sample / train / eval-csp ---------------------------------------------------------
def test_structures_sample_skips_failed_requests_and_names_them(tmp_path, capsys):
    src = write_jsonl(
        tmp_path / "predicted.jsonl",
        [
            {"id": "a", "candidates": [dict(NACL, formula="NaCl", score=-1.0)]},
            {"id": "b", "candidates": [], "error": "no space group can host Xx"},
            {"id": "c", "error": "formula Ti100O200 names 300 atoms in the cell"},
            "{broken",
        ],
    )
    out = tmp_path / "s"
    code, text, err = run(
        capsys, "structures", "sample", src, "-n", "1", "--sampler", "pyxtal", "--seed", "1", "-o", out
    )
    assert code == 0, err
    assert "skipped 3 line(s)" in text and "request b failed" in text and "request c failed" in text
    assert "line 4" in text
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [s["line"] for s in skipped] == [2, 3, 4] and [s["id"] for s in skipped] == ["b", "c", None]
    rows = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["ok"] and (out / rows[0]["cif"]).is_file()


def test_structures_sample_refuses_a_file_without_usable_lines_and_a_bad_output(tmp_path, capsys):
    src = write_jsonl(tmp_path / "bad.jsonl", [{"id": "b", "candidates": [], "error": "no space group"}])
    code, _, err = run(capsys, "structures", "sample", src, "--sampler", "pyxtal", "-o", tmp_path / "s")
    assert_one_error(code, err, "no usable constraints", "request b failed")
    good = write_jsonl(tmp_path / "good.jsonl", [NACL])
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "structures", "sample", good, "--sampler", "pyxtal", "-o", tmp_path / "file")
    assert_one_error(code, err, "not a folder")


@pytest.mark.slow
def test_structures_train_through_the_cli(tmp_path, fixture_dataset, capsys):
    out = tmp_path / "run"
    args = ["structures", "train", fixture_dataset, "-o", out, "--hidden", "16", "--layers", "1", "--max-steps", "2"]
    args += ["--eval-every", "2", "--eval-samples", "1", "--batch-size", "4"]
    code, text, err = run(capsys, *args)
    assert code == 0, err
    assert "best checkpoint" in text and (out / "best.pt").is_file()
    code, _, err = run(capsys, "structures", "train", tmp_path / "missing.parquet", "-o", out)
    assert_one_error(code, err)


def test_structures_train_saves_the_moving_average_of_the_weights(tmp_path, fixture_dataset, capsys):
    """--ema-decay: the slim checkpoints hold the averaged weights, the full one both, for resume."""
    import torch

    out = tmp_path / "run"
    args = ["structures", "train", fixture_dataset, "-o", out, "--hidden", "16", "--layers", "1", "--max-steps", "3"]
    code, _, err = run(capsys, *args, "--eval-every", "0", "--batch-size", "4", "--ema-decay", "0.5")
    assert code == 0, err
    full = torch.load(out / "ckpt.pt", weights_only=False)
    slim = torch.load(out / "last.pt", weights_only=False)["state_dict"]
    averaged = {k.removeprefix("module."): v for k, v in full["ema"].items() if k.startswith("module.")}
    assert slim and all(torch.equal(v, averaged[k]) for k, v in slim.items())
    assert any(not torch.equal(v, full["model"][k]) for k, v in slim.items())  # not the raw weights
    code, _, err = run(capsys, *args, "--ema-decay", "1.5")
    assert_one_error(code, err, "--ema-decay")


@pytest.mark.slow
def test_structures_eval_csp_through_the_cli(tmp_path, fixture_dataset, capsys):
    out = tmp_path / "csp.json"
    args = ["structures", "eval-csp", fixture_dataset, "--split", "val", "--sampler", "pyxtal", "-n", "2", "-k", "1"]
    code, text, err = run(capsys, *args, "-o", out)
    assert code == 0, err
    assert "pyxtal" in json.loads(out.read_text())["results"]
    code, _, err = run(capsys, "structures", "eval-csp", fixture_dataset, "--sampler", "nope", "-o", out)
    assert_one_error(code, err, "unknown sampler")


# --- screen ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_screen_through_the_cli_writes_summary_csv(tmp_path, fixtures, capsys):
    out = tmp_path / "screened"
    args = ["screen", fixtures / "cifs", "-o", out, "--limit", "2", "--max-steps", "3", "--potential", "chgnet"]
    code, _, err = run(capsys, *args, "--threads", "1")
    assert code == 0, err
    lines = (out / "summary.csv").read_text().splitlines()
    assert len(lines) == 3  # header + 2 candidates


def test_screen_refuses_a_missing_source(tmp_path, capsys):
    code, _, err = run(capsys, "screen", tmp_path / "missing", "-o", tmp_path / "out")
    assert_one_error(code, err)


# --- design / chat --------------------------------------------------------------------------------
@pytest.mark.slow
def test_design_through_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["design", "TiO2 with a band gap near 3 eV", "-n", "2", "--top-k", "2", "--sampler", "pyxtal"]
    args += ["--prerelax", "off", "--potential", "chgnet", "--relax-steps", "3", "--threads", "1", "-o", out]
    code, _, err = run(capsys, *args)
    assert code == 0, err
    assert (out / "summary.csv").is_file() and (out / "report.md").is_file()


@pytest.mark.slow
def test_design_through_the_cli_names_the_prototype_its_first_structure_took(tmp_path, capsys):
    """The default sampler: the best constraint's first structure is a known prototype (named in the
    report), the second comes from the diffusion model; --prototypes 0 leaves both to the model."""
    args = ["design", "TiO2 with a band gap near 3 eV", "-n", "2", "--top-k", "1", "--oversample", "1"]
    args += ["--prerelax", "off", "--potential", "chgnet", "--relax-steps", "2", "--threads", "1"]
    args += ["--known-phases", "0", "--no-band-gap"]
    code, _, err = run(capsys, *args, "-o", tmp_path / "a")
    assert code == 0, err
    report = (tmp_path / "a" / "report.md").read_text()
    assert "1 took the geometry of a known prototype" in report and "S001 from mp-" in report
    code, _, err = run(capsys, *args, "--prototypes", "0", "-o", tmp_path / "b")
    assert code == 0, err
    assert "known prototype" not in (tmp_path / "b" / "report.md").read_text()


def test_design_refuses_a_bad_output_before_any_work(tmp_path, capsys, monkeypatch):
    import xtalagent.agent.commands as commands

    monkeypatch.setattr(commands, "run_design", lambda *a, **k: pytest.fail("the pipeline must not start"))
    existing = tmp_path / "existing_file"
    existing.write_text("x")
    for output, message in [(existing, "not a folder"), (existing / "sub", "is a file, not a folder")]:
        code, _, err = run(capsys, "design", "TiO2 with a band gap near 3 eV", "-o", output)
        assert_one_error(code, err, message)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_design_refuses_a_read_only_output(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = run(capsys, "design", "TiO2 with a band gap near 3 eV", "-o", locked / "run")
    finally:
        locked.chmod(0o700)
    assert_one_error(code, err, "cannot write")


def test_chat_with_a_script_saves_the_transcript(tmp_path, capsys):
    script = tmp_path / "turns.txt"
    script.write_text("a material with a band gap of 2 eV\nexit\n")
    code, _, err = run(capsys, "chat", "--script", script, "-o", tmp_path / "chat")
    assert code == 0, err
    saved = json.loads((tmp_path / "chat" / "transcript.json").read_text())["messages"]
    assert sum(m["type"] == "human" for m in saved) == 1


def test_chat_refuses_bad_scripts_and_outputs(tmp_path, capsys):
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00\x89")
    (tmp_path / "file").write_text("x")
    script = tmp_path / "turns.txt"
    script.write_text("hello\n")
    cases = [
        (["--script", tmp_path / "missing.txt"], "no such file"),
        (["--script", tmp_path / "binary.txt"], "not UTF-8 text"),
        (["--script", tmp_path], "is a folder"),
        (["--script", script, "-o", tmp_path / "file"], "not a folder"),
    ]
    for args, message in cases:
        code, _, err = run(capsys, "chat", *args)
        assert_one_error(code, err, message)


# --- serve ----------------------------------------------------------------------------------------
def test_serve_dry_run_prints_the_vllm_command(capsys):
    code, text, err = run(capsys, "serve", "--dry-run", "--port", "8123")
    assert code == 0, err
    assert "vllm.entrypoints.openai.api_server" in text and "--port 8123" in text and "127.0.0.1" in text


@pytest.mark.parametrize("port", ["99999", "-5", "0"])
def test_serve_refuses_a_port_out_of_range(capsys, port):
    code, _, err = run(capsys, "serve", "--dry-run", f"--port={port}")
    assert_one_error(code, err, "--port")


def test_serve_refuses_a_model_folder_without_adapters(tmp_path, capsys):
    code, _, err = run(capsys, "serve", "--dry-run", "--model", tmp_path)
    assert_one_error(code, err, "no base model")
