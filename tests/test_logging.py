"""The CLI shows the library's log records on stderr; --quiet keeps only warnings, -v adds debug."""

import logging

import pytest

from xtalagent.agent.cli import main


@pytest.mark.parametrize(
    "flags, shown, hidden",
    [([], ["INFO", "WARNING"], ["DEBUG"]), (["--quiet"], ["WARNING"], ["INFO", "DEBUG"]), (["-v"], ["DEBUG"], [])],
)
def test_cli_log_level_follows_the_flags(tmp_path, capsys, flags, shown, hidden):
    main([*flags, "data", "info", str(tmp_path / "missing.parquet")])  # any command runs the root options
    capsys.readouterr()
    log = logging.getLogger("xtalagent.tools.example")  # a library module's logger
    for level in ("DEBUG", "INFO", "WARNING"):
        log.log(getattr(logging, level), "record at %s", level)
    err = capsys.readouterr().err
    for level in shown:
        assert f"record at {level}" in err
    for level in hidden:
        assert f"record at {level}" not in err


def test_one_handler_however_often_the_cli_runs(tmp_path, capsys):
    for _ in range(3):
        main(["data", "info", str(tmp_path / "missing.parquet")])
    capsys.readouterr()
    logging.getLogger("xtalagent.tools.example").warning("once")
    assert capsys.readouterr().err.count("once") == 1
