"""``scopeline serve`` on the command line: options, the generated token, one-line errors,
and a real server answering on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from scopeline import cli
from scopeline.ui import server

SRC = Path(__file__).resolve().parents[2] / "src"


def test_serve_beyond_loopback_prints_a_generated_token(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(server, "serve", lambda config, announce=print: started.append(config))
    result = CliRunner().invoke(cli.app, ["serve", "--host", "0.0.0.0", "--runs", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (config,) = started
    assert config.host == "0.0.0.0" and config.port == 8765 and len(config.token) >= 32
    assert f"token (give it once; the browser keeps it in a cookie): {config.token}" in result.output


def test_serve_defaults_to_loopback_without_token(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(server, "serve", lambda config, announce=print: started.append(config))
    monkeypatch.delenv("SCOPELINE_TOKEN", raising=False)
    (tmp_path / "session").mkdir()
    (tmp_path / "runs").mkdir()
    result = CliRunner().invoke(cli.app, ["serve", "--runs", str(tmp_path / "runs"), "--watch", str(tmp_path / "session")])
    assert result.exit_code == 0 and started[0].host == "127.0.0.1" and started[0].token is None
    assert "token" not in result.output


def test_missing_folder_is_one_line_exit_2(tmp_path):
    result = CliRunner().invoke(cli.app, ["serve", "--runs", str(tmp_path), "--watch", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "--watch" in result.output and "nope" in result.output
    result = CliRunner().invoke(cli.app, ["serve", "--runs", str(tmp_path), "--token", " "])
    assert result.exit_code == 2 and "--token" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_server_answers_healthz_on_loopback(tmp_path):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("SCOPELINE_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "scopeline.cli", "serve", "--port", str(port),
                             "--runs", str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "server did not start in 30 s"
                time.sleep(0.2)
        assert response.status_code == 200 and response.text == "ok"
        assert "server" not in response.headers  # no server banner
    finally:
        proc.terminate()
        proc.wait(timeout=10)
