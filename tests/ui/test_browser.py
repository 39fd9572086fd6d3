"""The live QC page in a real browser (issue 13): Debian's chromium driven by playwright.

Starts ``scopeline serve`` on loopback and ``scopeline dose --watch`` on a folder where
movies arrive while the page is open; asserts on what the page shows: the counts growing
live, the plot, a threshold change re-deciding an item, a manual accept. Skipped when
``/usr/bin/chromium`` or the ``playwright`` package is missing (Playwright's own browser
download is not used). With ``SCOPELINE_UI_SCREENSHOTS=docs/ui`` it also saves the
screenshots of docs/ui.md."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.cryoem.test_dose_run import make_session

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SRC = Path(__file__).resolve().parents[2] / "src"
TIMEOUT_MS = 60_000
SHOTS = os.environ.get("SCOPELINE_UI_SCREENSHOTS")  # a folder: save the pages for docs/ui.md

pytestmark = pytest.mark.skipif(not CHROMIUM.exists() or importlib.util.find_spec("playwright") is None,
                                reason="needs /usr/bin/chromium and the playwright package")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scopeline(*args) -> subprocess.Popen:
    env = {**os.environ, "SCOPELINE_NO_PROGRESS": "1",
           "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("SCOPELINE_TOKEN", None)
    return subprocess.Popen([sys.executable, "-m", "scopeline.cli", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).text == "ok"
    except httpx.TransportError:
        return False


def test_live_dose_qc_page_in_chromium(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    runs, movies, stop = tmp_path / "runs", tmp_path / "incoming", tmp_path / "STOP"
    runs.mkdir()
    out = runs / "dose_session"
    doses = [1.0, 1.0, 1.0, 1.0, 1.0, 1.08]  # the last one 8 % over: in a 10 % band, out of a 5 % one
    make_session(movies, doses[:3])
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    procs = [_scopeline("serve", "--port", port, "--runs", runs),
             _scopeline("dose", movies, "--out", out, "--watch", "--idle-timeout", "600", "--poll-interval", "0.2",
                        "--batch-size", "1", "--workers", "0", "--samples", "3", "--max-diff", "10",
                        "--stop-file", stop, "--min-file-age", "0")]
    try:
        _wait(lambda: _healthy(f"{base}/healthz"), "the server")
        _wait(lambda: (out / ".scopeline" / "run.json").exists(), "the dose run to start")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{base}/")
            if SHOTS:
                page.screenshot(path=str(Path(SHOTS) / "start.png"))
            page.click("a:has-text('dose_session')")
            expect(page.locator("h1")).to_contain_text("dose run")

            make_session(movies, doses)  # three more movies arrive while the page is open
            expect(page.locator('[data-count="total"]')).to_have_text("6", timeout=TIMEOUT_MS)  # live, by SSE
            expect(page.locator('[data-count="accepted"]')).to_have_text("6", timeout=TIMEOUT_MS)
            expect(page.locator("#plot-dose_vs_time .main-svg").first).to_be_visible()
            stop.touch()
            assert procs[1].wait(timeout=60) == 0, procs[1].stderr.read().decode()
            expect(page.locator("#live")).to_have_text("finished", timeout=TIMEOUT_MS)

            page.fill("input[name=max_diff]", "5")  # a threshold change re-decides, nothing measured
            page.click("button:has-text('re-decide')")
            expect(page.locator("#redecide-msg")).to_contain_text("re-decided")
            expect(page.locator('[data-count="discarded"]')).to_have_text("1")
            last = page.locator('tr[data-key$="movie_0005.mrc"]')
            expect(last.locator("td.status")).to_have_text(re.compile(r"^discarded"))

            last.locator("button:has-text('accept')").click()  # manual decision beats the rule
            expect(page.locator('[data-count="discarded"]')).to_have_text("0")
            expect(page.locator('[data-count="overridden"]')).to_have_text("1")
            expect(last.locator("td.status")).to_contain_text("(manual; rule: discarded)")
            if SHOTS:
                page.wait_for_timeout(500)  # the plot redraw after the override
                page.screenshot(path=str(Path(SHOTS) / "run_dose.png"), full_page=True)
            errors = []
            page.on("pageerror", lambda exc: errors.append(exc))
            page.reload()
            expect(page.locator("#plots[data-ready]")).to_have_count(1)
            assert not errors
            browser.close()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=10)


def test_miniscope_parameter_form_in_chromium(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from scopeline.miniscope import load_params

    (tmp_path / "mini" / "steps").mkdir(parents=True)
    (tmp_path / "mini" / "params.json").write_text("{}")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _scopeline("serve", "--port", port, "--runs", tmp_path)
    try:
        _wait(lambda: _healthy(f"{base}/healthz"), "the server")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{base}/")
            page.click("a:has-text('mini')")
            page.click("summary:has-text('detect')")
            page.fill("input[name='detect.min_pnr']", "-1")
            page.locator("input[name='detect.min_pnr']").dispatch_event("change")
            expect(page.locator("#param-errors")).to_contain_text("detect.min_pnr")  # checked as typed
            page.fill("input[name='detect.min_pnr']", "7.5")
            page.locator("input[name='detect.min_pnr']").dispatch_event("change")
            expect(page.locator("#param-errors")).to_contain_text("every parameter is valid")
            page.click("button:has-text('save')")
            expect(page.locator("#param-errors")).to_contain_text("saved mini_params.json")
            if SHOTS:
                page.screenshot(path=str(Path(SHOTS) / "miniscope_params.png"))
            browser.close()
        assert load_params(tmp_path / "mini_params.json").detect.min_pnr == 7.5
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


def test_token_link_in_chromium(tmp_path):
    """The printed ``?token=`` link works once; the token then leaves the address bar and
    a browser without the cookie is refused."""
    from playwright.sync_api import expect, sync_playwright

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _scopeline("serve", "--port", port, "--runs", tmp_path, "--token", "browser-test-token")
    try:
        _wait(lambda: httpx.get(f"{base}/healthz", headers={"Authorization": "Bearer browser-test-token"},
                                timeout=2).status_code == 200 if _up(base) else False, "the server")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            page = browser.new_page()
            page.goto(f"{base}/?token=browser-test-token")
            assert page.url == f"{base}/"
            expect(page.locator("h1")).to_have_text("Runs")
            assert page.goto(f"{base}/healthz").status == 200  # the cookie carries the token
            stranger = browser.new_context().new_page()
            assert stranger.goto(f"{base}/").status == 401
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


def _up(base: str) -> bool:
    try:
        httpx.get(f"{base}/healthz", timeout=2)
        return True
    except httpx.TransportError:
        return False
