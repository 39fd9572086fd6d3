"""Every command answers --help; bad input is one line without a traceback."""

import subprocess
import sys

from typer.testing import CliRunner

from scopeline.cli import app

runner = CliRunner()


def _commands(group, prefix=()):
    import typer.main

    click_group = typer.main.get_command(group) if not hasattr(group, "commands") else group
    for name, cmd in click_group.commands.items():
        yield (*prefix, name)
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))


def test_every_command_has_help():
    names = list(_commands(app))
    assert {("dose",), ("maxshift",), ("demo",)} <= set(names)
    for name in names:
        result = runner.invoke(app, [*name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage" in result.output


def test_console_script_entry_point():
    r = subprocess.run([sys.executable, "-m", "scopeline.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "dose" in r.stdout
