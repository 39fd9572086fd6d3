"""The UI in a real browser (issue 13): Debian's chromium driven by playwright.

Starts ``scopeline serve --watch SESSION`` on loopback (the server starts ``scopeline dose
--watch`` as its job) with movies arriving while the pages are open; asserts on what the
pages show: the counts growing live, the plots, typed and slid thresholds re-deciding a
running run, a manual accept, export, the item pages (dose, maxshift, clean). Skipped when
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


def _new_page(playwright, errors: list | None = None, timeout_ms: int = TIMEOUT_MS):
    """Debian's chromium, headless, and a page of the screenshots' size that waits up to
    ``timeout_ms`` (a loaded machine); the page's script errors go to ``errors``."""
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(timeout_ms)
    if errors is not None:
        page.on("pageerror", lambda exc: errors.append(exc))
    return browser, page


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


def _finished_runs(session: Path, runs: Path) -> None:
    """A maxshift run on a real RELION motion STAR and a clean run (stand-in model, masks
    saved) whose inputs lie in the watched session: their item pages."""
    import shutil

    import numpy as np

    from scopeline.cryoem.cleaner import clean as clean_module
    from scopeline.cryoem.cleaner.clean import CleanParams, run_clean
    from scopeline.cryoem.maxshift_run import run_maxshift
    from tests.cryoem.test_cleaner_clean import write_mrc, write_star
    from tests.ui.test_other_tools import _left_half_bad

    (session / "motion").mkdir(parents=True)
    star = session / "motion" / "betagal_20170629_00021_frameImage_motion.star"
    shutil.copy(Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "relion" / star.name, star)
    run_maxshift([star], runs / "shifts", workers=0)
    (session / "mics").mkdir()
    rng = np.random.default_rng(0)
    write_mrc(session / "mics" / "mic01.mrc", rng.normal(100, 8, (512, 512)))
    write_star(session / "mics" / "mic01_autopick.star", rng.uniform(30, 480, (40, 2)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(clean_module, "_model", lambda *args: None)
        mp.setattr(clean_module, "bad_region_probability", _left_half_bad)
        run_clean([session / "mics" / "mic01.mrc"], [session / "mics" / "mic01_autopick.star"], runs / "cleaned",
                  CleanParams(box_size=48, save_masks=True, threshold=0.5))


def _shot(page, name: str, full_page: bool = True) -> None:
    if SHOTS:
        page.wait_for_timeout(400)  # plots drawn
        page.screenshot(path=str(Path(SHOTS) / name), full_page=full_page)


def test_live_qc_with_serve_watch_in_chromium(tmp_path):
    """``scopeline serve --watch SESSION`` starts dose itself; movies arrive while the pages
    are open; thresholds typed and slid re-decide a running run; a manual accept; item pages."""
    from playwright.sync_api import expect, sync_playwright

    from scopeline.tools import open_run

    runs, session = tmp_path / "runs", tmp_path / "session"
    runs.mkdir()
    movies = session / "movies"
    doses = [1.0, 1.0, 1.0, 1.0, 1.0, 1.08]  # the last one 8 % over: out of the 5 % band, in a 10 % one
    make_session(movies, doses[:3])
    _finished_runs(session, runs)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _scopeline("serve", "--port", port, "--runs", runs, "--watch", session, "--poll-interval", "0.2",
                        "--min-file-age", "0", "--workers", "0")
    out = runs / "live" / "session" / "dose"
    try:
        _wait(lambda: _healthy(f"{base}/healthz"), "the server")
        with sync_playwright() as p:
            errors = []
            browser, page = _new_page(p, errors)
            page.goto(f"{base}/")
            _shot(page, "start.png", full_page=False)
            page.click("#live-link a")  # the live QC page: the server started dose on the movies
            dose = page.locator('tr[data-tool="dose"]')
            expect(dose).to_have_attribute("data-state", "running")
            expect(dose.locator('[data-count="total"]')).to_have_text("3", timeout=TIMEOUT_MS)
            expect(page.locator('tr[data-tool="clean"]')).to_contain_text("--box-size")  # why clean does not run

            dose.locator("a.run-link").click()
            expect(page.locator("h1")).to_contain_text("dose run")
            expect(page.locator('[data-count="accepted"]')).to_have_text("3")

            make_session(movies, doses)  # three more movies arrive while the page is open
            expect(page.locator('[data-count="total"]')).to_have_text("6", timeout=TIMEOUT_MS)  # live, by SSE
            expect(page.locator('[data-count="discarded"]')).to_have_text("1")  # 8 % off, band ±5 %
            expect(page.locator("#plot-dose_vs_time .main-svg").first).to_be_visible()
            page.fill("input[name=max_diff]", "10")  # typed: re-decides (debounced), no button
            expect(page.locator('[data-count="discarded"]')).to_have_text("0")
            expect(page.locator("#redecide-msg")).to_contain_text("next update")  # running: the job applies it too
            slider = page.locator('input.slider[data-for="max_diff"]')
            expect(slider).to_have_value("10")  # the slider follows the typed value
            slider.evaluate("(el) => { el.value = 5; el.dispatchEvent(new Event('input', {bubbles: true})); }")
            expect(page.locator("input[name=max_diff]")).to_have_value("5")
            expect(page.locator('[data-count="discarded"]')).to_have_text("1")
            last = page.locator('tr[data-key$="movie_0005.mrc"]')
            expect(last.locator("td.status")).to_have_text(re.compile(r"^discarded"))
            last.locator("button:has-text('accept')").click()  # manual decision beats the rule
            expect(page.locator('[data-count="discarded"]')).to_have_text("0")
            expect(page.locator('[data-count="overridden"]')).to_have_text("1")
            expect(last.locator("td.status")).to_contain_text("(manual; rule: discarded)")
            page.click("#export button")
            expect(page.locator("#export-msg")).to_contain_text("next update")
            _shot(page, "run_dose.png")

            last.locator("a.item-link").click()  # the item page: its sampled frame doses
            expect(page.locator("h1")).to_contain_text("movie_0005.mrc")
            expect(page.locator("#plot-frame_doses .main-svg").first).to_be_visible()
            _shot(page, "item_dose.png")
            page.goto(f"{base}/live")
            expect(page.locator('tr[data-tool="dose"] [data-count="total"]')).to_have_text("6")
            _shot(page, "live_qc.png")

            page.goto(f"{base}/run?path=shifts")
            page.locator("a.item-link").first.click()
            expect(page.locator("#plot-trajectory .main-svg").first).to_be_visible()
            expect(page.locator("#plot-steps .main-svg").first).to_be_visible()
            _shot(page, "item_maxshift.png")
            page.goto(f"{base}/run?path=cleaned")
            page.locator("a.item-link").first.click()
            expect(page.locator("#micrograph")).to_be_visible()
            page.wait_for_function("() => { const i = document.getElementById('micrograph'); "
                                   "return i.complete && i.naturalWidth > 0; }")
            assert page.locator("#micrograph").evaluate("(img) => img.naturalWidth") == 512  # drawn server-side
            _shot(page, "item_clean.png")
            assert not errors, errors
            page.goto(f"{base}/run?path=live/session/dose")  # its live feed open while the server stops
            expect(page.locator("#live")).to_contain_text("running")
            server.send_signal(signal.SIGTERM)  # the server stops its jobs
            assert server.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once shut down
            browser.close()
        assert open_run(out).running is None  # the dose job is gone, its run closed cleanly
        assert (out / "summary.json").read_text().count('"closed": true') == 1
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


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
            browser, page = _new_page(p)
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
