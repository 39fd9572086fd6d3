"""Security of ``scopeline serve`` (issue 13): the token beyond loopback, the folders the UI
may touch, Host/Origin checks, and no endpoint that runs a command."""

from __future__ import annotations

import os
import shutil
import subprocess
from urllib.parse import unquote

import pytest

from scopeline.tools import open_run
from scopeline.ui import ServeConfig
from scopeline.ui.config import is_loopback
from scopeline.ui.runs import find_runs
from scopeline.ui.security import cookie_name

from .conftest import client_for

TOKEN = "s3cret-token-for-tests"


def test_loopback_needs_no_token_and_healthz_answers_ok(runs_root):
    config, generated = ServeConfig(runs=runs_root).checked()
    assert config.host == "127.0.0.1" and config.token is None and not generated
    response = client_for(config).get("/healthz")
    assert response.status_code == 200 and response.text == "ok"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "scope-pc.example.org"])
def test_beyond_loopback_a_token_is_generated(runs_root, host):
    config, generated = ServeConfig(host=host, runs=runs_root).checked()
    assert generated and len(config.token) >= 32 and config.needs_token
    assert f"token={config.token}" in config.url()
    other, _ = ServeConfig(host=host, runs=runs_root).checked()
    assert other.token != config.token  # random, not derived from anything


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ["127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost"])
    assert not any(is_loopback(h) for h in ["0.0.0.0", "::", "10.0.0.1", "example.org"])


def test_without_the_token_every_request_is_401(runs_root):
    config = ServeConfig(host="0.0.0.0", token=TOKEN, runs=runs_root)
    client = client_for(config, base_url="http://10.1.2.3:8765")
    for url in ["/healthz", "/", "/run?path=dose1", "/run/data?path=dose1", "/static/vendor/htmx.min.js"]:
        assert client.get(url).status_code == 401, url
        assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401, url
        assert client.get(url + ("&" if "?" in url else "?") + "token=wrong").status_code == 401, url
    assert client.post("/run/override", data={"path": "dose1", "key": "k", "decision": "accepted"}).status_code == 401


def test_token_as_bearer_or_query_then_cookie(runs_root):
    config = ServeConfig(host="0.0.0.0", token=TOKEN, runs=runs_root)
    client = client_for(config, base_url="http://10.1.2.3:8765")
    assert client.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert cookie_name(config) not in client.cookies  # a header is not turned into a cookie
    response = client.get(f"/run?path=dose1&token={TOKEN}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/run?path=dose1"  # token gone
    set_cookie = response.headers["set-cookie"].lower()
    assert set_cookie.startswith("scopeline_token_8765=")
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    assert client.get("/run?path=dose1").status_code == 200  # the cookie carries it now
    client.cookies.clear()
    assert client.get("/run?path=dose1").status_code == 401


def test_loopback_server_refuses_other_host_names_and_cross_site_posts(runs_root):
    client = client_for(ServeConfig(runs=runs_root))
    assert client.get("/healthz", headers={"Host": "evil.example:8765"}).status_code == 403  # DNS rebinding
    assert client.get("/healthz", headers={"Host": "localhost:8765"}).status_code == 200
    post = {"path": "dose1", "max_diff": "1"}
    assert client.post("/run/redecide", data=post, headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.post("/run/redecide", data=post, headers={"Origin": "null"}).status_code == 403
    assert client.post("/run/redecide", data=post, headers={"Origin": "http://127.0.0.1:9999"}).status_code == 403
    assert client.post("/run/redecide", data=post, headers={"Origin": "http://127.0.0.1:8765"}).status_code == 200


@pytest.fixture
def outside_run(tmp_path, dose_template):
    """A real dose run outside the allowed folder, and a symlink to it from inside."""
    outside = tmp_path / "outside"
    shutil.copytree(dose_template, outside)
    return outside


def _probe_urls(path: str):
    return [f"/run?path={path}", f"/run/items?path={path}", f"/run/counts?path={path}",
            f"/run/data?path={path}", f"/run/events?path={path}", f"/run/warnings?path={path}"]


def test_paths_outside_the_given_folders_are_403(runs_root, outside_run):
    (runs_root / "link").symlink_to(outside_run, target_is_directory=True)
    (runs_root / "dose1" / "escape").symlink_to(outside_run, target_is_directory=True)
    client = client_for(ServeConfig(runs=runs_root))
    state_before = (outside_run / ".scopeline" / "run.json").read_text()
    for path in ["../outside", str(outside_run), "link", "dose1/escape", "dose1/../../outside",
                 "%2e%2e/outside", "/etc", "..", "dose1%00"]:
        for url in _probe_urls(path):
            assert client.get(url).status_code == 403, url
        body = unquote(path)  # a form field is not URL-decoded again: give it the decoded name
        assert client.post("/run/redecide", data={"path": body, "max_diff": "1"}).status_code == 403, path
        assert client.post("/run/override", data={"path": body, "key": "k", "decision": "discarded"}).status_code == 403
    for path in ["../outside/p.json", str(outside_run / "p.json"), "link/p.json", "dose1/escape/p.json"]:
        assert client.post("/miniscope/params/save", data={"save_to": path}).status_code == 403, path
        assert client.get("/miniscope/params", params={"path": path}).status_code == 403, path
    assert client.get("/miniscope", params={"path": "../outside"}).status_code == 403
    assert not (outside_run / "p.json").exists()
    for url in ["/files/link/dose.csv", "/files/dose1/escape/dose.csv", "/files/%2e%2e/outside/dose.csv",
                f"/files/{outside_run}/dose.csv", "/files/dose1/../../outside/dose.csv"]:
        assert client.get(url).status_code in (403, 404), url  # 404: the client normalised the ..
        assert "reference_dose" not in client.get(url).text
    assert client.get("/files/link/dose.csv").status_code == 403
    assert (outside_run / ".scopeline" / "run.json").read_text() == state_before
    assert not (outside_run / ".scopeline" / "overrides.json").exists()
    # inside, but no run there: 404, not 403
    assert client.get("/run?path=mini").status_code == 404
    assert client.get("/run?path=dose1").status_code == 200
    # the start page does not follow the symlinks out either
    assert outside_run not in [r.path for r in find_runs(ServeConfig(runs=runs_root).roots)]


def test_watch_folders_are_allowed_too(runs_root, outside_run):
    client = client_for(ServeConfig(runs=runs_root, watch=(outside_run,)))
    assert client.get(f"/run?path={outside_run}").status_code == 200
    assert client.get(f"/run?path={outside_run.parent}").status_code == 403


def test_no_endpoint_runs_a_command(runs_root, monkeypatch):
    """Every route, exercised, with process creation forbidden; and the route list is fixed
    (a new route must be added here, deliberately)."""
    def forbidden(*args, **kwargs):
        raise AssertionError("an endpoint started a process")

    for name in ("Popen", "run", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, forbidden)
    for name in ("system", "popen", "execv", "execvp", "spawnv", "fork"):
        monkeypatch.setattr(os, name, forbidden, raising=False)
    client = client_for(ServeConfig(runs=runs_root))
    paths = sorted(r.path for r in client.app.routes)
    assert paths == ["/", "/files/{path:path}", "/healthz", "/item", "/item/data", "/item/image.png", "/live",
                     "/live/jobs", "/miniscope", "/miniscope/explorer",
                     "/miniscope/explorer/decide", "/miniscope/explorer/export", "/miniscope/explorer/image",
                     "/miniscope/explorer/labels", "/miniscope/explorer/merge", "/miniscope/explorer/trace",
                     "/miniscope/explorer/units", "/miniscope/explorer/unmerge", "/miniscope/params",
                     "/miniscope/params/check", "/miniscope/params/save", "/miniscope/preview", "/miniscope/report",
                     "/miniscope/run/cancel", "/miniscope/run/events", "/miniscope/run/start", "/miniscope/run/status",
                     "/run", "/run/counts", "/run/data", "/run/events", "/run/export", "/run/items", "/run/override",
                     "/run/redecide", "/run/warnings", "/static"]
    # /miniscope/run/start is the one route here that starts a process: `python -m scopeline.cli miniscope run`
    # through the JobManager, with arguments built from validated values (tests/ui/test_miniscope_pages.py)
    for url in ["/", "/healthz", *_probe_urls("dose1"), "/files/dose1/dose.csv", "/miniscope?path=mini", "/miniscope/params",
                "/miniscope/params?path=mini/params.json", "/miniscope?path=mini&step=detect",
                "/miniscope/run/status?path=mini", "/miniscope/run/events?path=mini"]:
        assert client.get(url).status_code == 200, url
    assert client.post("/miniscope/params/check", data={}).status_code == 200
    assert client.post("/miniscope/params/save", data={"save_to": "p.json"}).status_code == 200
    assert client.post("/run/redecide", data={"path": "dose1", "max_diff": "5"}).status_code == 200
    key = open_run(runs_root / "dose1").records()[0]["key"]
    assert client.post("/run/override", data={"path": "dose1", "key": key, "decision": "discarded"}).status_code == 204
    for url in ["/live", "/live/jobs", "/item", "/item/data"]:
        assert client.get(url, params={"path": "dose1", "key": key}).status_code == 200, url
    assert client.post("/run/export", data={"path": "dose1"}).status_code == 200


def test_file_names_are_escaped_in_pages(runs_root, dose_template):
    shutil.copytree(dose_template, runs_root / "<img src=x onerror=alert(1)>")
    client = client_for(ServeConfig(runs=runs_root))
    html = client.get("/").text
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    page = client.get("/run", params={"path": "<img src=x onerror=alert(1)>"})
    assert page.status_code == 200 and "<img src=x" not in page.text
