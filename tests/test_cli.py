import json

import pytest

from xtalagent.agent.cli import main


def test_help_lists_every_command_group(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for group in ("data", "constraints", "finetune", "structures", "screen", "design", "chat", "serve"):
        assert group in text


def test_data_build_and_info(tmp_path, fixtures, capsys):
    out = tmp_path / "d.parquet"
    assert main(["data", "build", str(fixtures / "cifs"), "-o", str(out), "--workers", "1"]) == 0
    assert "labelled 4/4" in capsys.readouterr().out
    assert main(["data", "info", str(out)]) == 0
    assert "225" in capsys.readouterr().out


@pytest.mark.parametrize(
    "name, message",
    [
        ("missing.csv", "no such file"),
        ("bad/partial_occupancy.cif", "partial occupancy"),
        ("bad/unknown_element.cif", "unknown element"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path, fixtures, capsys, name, message):
    code = main(["data", "build", str(fixtures / name), "-o", str(tmp_path / "o.parquet")])
    err = capsys.readouterr().err
    assert code == 1
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1


@pytest.mark.parametrize("option, value", [("--base-hidden", "100"), ("--base-hidden", "0"), ("--base-layers", "0")])
def test_finetune_refuses_an_impossible_base_size(tmp_path, fixtures, capsys, option, value):
    code = main(["finetune", str(fixtures / "crystals.csv"), "-o", str(tmp_path / "m"), option, value])
    err = capsys.readouterr().err
    assert code == 1 and "base" in err and value in err and "Traceback" not in err
    assert not (tmp_path / "m" / "base").exists()


def test_finetune_refuses_zero_prompts_per_crystal(tmp_path, fixtures, capsys):
    code = main(["finetune", str(fixtures / "crystals.csv"), "-o", str(tmp_path / "m"), "--variants-per-record", "0"])
    err = capsys.readouterr().err
    assert code == 1 and "variants per record must be at least 1" in err and "Traceback" not in err


@pytest.mark.slow
def test_finetune_base_size_reaches_the_saved_model(tmp_path, fixtures):
    out = tmp_path / "m"
    args = ["finetune", str(fixtures / "crystals.csv"), "-o", str(out), "--stages", "sg", "--epochs", "1"]
    args += ["--base-epochs", "1", "--limit", "8", "--batch-size", "8", "--base-hidden", "64", "--base-layers", "1"]
    assert main(args) == 0
    config = json.loads((out / "base" / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (64, 1, 1)
    assert (out / "sg" / "adapter_config.json").exists() and not (out / "wyckoff").exists()
    from xtalagent.finetune.voters import VoterWeights

    assert (out / "voters.json").exists() and VoterWeights.load(out) == VoterWeights.neutral()  # its own, untuned
