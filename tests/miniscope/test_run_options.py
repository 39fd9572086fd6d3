"""Issue 12: every bad option value of `scopeline miniscope run` ends in one line naming
the option and the allowed values, exit code 2, before any work; the public API."""

import pytest
from typer.testing import CliRunner

from scopeline.cli import app

runner = CliRunner()


@pytest.mark.parametrize("option, value, allowed", [
    ("--workers", "-1", "0 = in-process"),
    ("--fps", "0", "frame rate > 0"),
    ("--fps", "nan", "frame rate > 0"),
    ("--fraction", "2", "(0, 1]"),
    ("--fraction", "0", "(0, 1]"),
    ("--scheduler", "xor", "threads, synchronous, processes"),
    ("--on-bad-video", "ignore", "stop, skip"),
    ("--memory-limit", "lots", "4GB"),
    ("--from", "nosuch", "config, load"),
    ("--to", "nosuch", "config, load"),
])
def test_bad_option_value_is_one_line_exit_2(tmp_path, option, value, allowed):
    (tmp_path / "in").mkdir()
    result = runner.invoke(app, ["miniscope", "run", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                                 option, value])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert f"{option} {value}" in lines[0] and allowed in lines[0]
    assert not (tmp_path / "out").exists()  # nothing done


def test_public_api_entry_points():
    import inspect

    from scopeline import miniscope

    for name in ("run", "run_from", "write_default_params", "simulate", "MiniscopeParams", "load_params"):
        assert hasattr(miniscope, name), name
    for func in (miniscope.run, miniscope.run_from):
        signature = inspect.signature(func)
        assert {"scheduler", "workers"} <= set(signature.parameters)
        assert "Parameters\n    ----------" in func.__doc__
