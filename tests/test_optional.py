"""Optional extras: without one, its command stops with one line that names the extra to install."""

import sys

import pytest

from xtalagent.agent.cli import main


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("module", ["trl", "datasets"])
def test_finetune_without_the_finetune_extra_names_it(tmp_path, fixtures, capsys, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    code = main(["finetune", str(fixtures / "crystals.csv"), "-o", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    (line,) = _error_lines(err)
    assert "fine-tuning" in line and "pip install 'xtalagent[finetune]'" in line
    assert not (tmp_path / "m" / "base").exists()


def test_endpoint_without_the_endpoint_extra_names_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "langchain_openai", None)
    code = main(
        ["design", "TiO2 with a band gap near 3 eV", "-o", str(tmp_path / "d"), "--endpoint", "http://127.0.0.1:9"]
    )
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    (line,) = _error_lines(err)
    assert "--endpoint" in line and "pip install 'xtalagent[endpoint]'" in line
