"""Miniscope without code in a real browser (issue 13): Debian's chromium driven by
playwright, headless, against ``scopeline serve`` on loopback.

A tiny simulated recording goes through the UI: its parameter file loaded in the form (one
step shown), a preview, a new run started as a job of the server and followed by
server-sent events to the end, a step's report, then the unit explorer: a unit rejected
with the keyboard, the re-export, and the unit gone from ``export/A.npy``. Skipped when
``/usr/bin/chromium`` or ``playwright`` is missing. With ``SCOPELINE_UI_SCREENSHOTS=docs/ui``
it saves the screenshots of docs/ui.md."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from scopeline.miniscope import MiniscopeParams, save_params
from scopeline.miniscope.simulate import SimulationParams, simulate_recording

from .test_browser import CHROMIUM, _free_port, _healthy, _new_page, _scopeline, _wait

SHOTS = os.environ.get("SCOPELINE_UI_SCREENSHOTS")
TIMEOUT_MS = 90_000

pytestmark = pytest.mark.skipif(not CHROMIUM.exists() or importlib.util.find_spec("playwright") is None,
                                reason="needs /usr/bin/chromium and the playwright package")


def tiny_params() -> MiniscopeParams:
    """Parameters for a 64 x 64 px, 200-frame recording (seconds per step)."""
    p = MiniscopeParams()
    p.config.fps = 10.0
    p.load.chunk_frames = 100
    p.crop.chunk_frames = 100
    p.init.n_components = 8
    p.init.chunk_frames = 100
    p.export.formats = ["zarr"]
    return p


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


def test_miniscope_run_and_explorer_in_chromium(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)  # the preview and the run take seconds on a loaded machine
    try:
        _run_through_the_ui(tmp_path, expect, sync_playwright)
    finally:
        expect.set_options(timeout=5_000)  # playwright's default, for the tests after this one


def _run_through_the_ui(tmp_path, expect, sync_playwright):
    runs = tmp_path / "runs"
    simulate_recording(runs / "videos", SimulationParams(height=64, width=64, n_frames=200, n_neurons=6, fps=10.0,
                                                         frames_per_file=100, seed=3, jump_times=()))
    save_params(tiny_params(), runs / "tiny.json")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _scopeline("serve", "--port", port, "--runs", runs)
    try:
        _wait(lambda: _healthy(f"{base}/healthz"), "the server")
        with sync_playwright() as p:
            errors = []
            browser, page = _new_page(p, errors, TIMEOUT_MS)

            # the parameter file, one step at a time, with the guide's explanations
            page.goto(f"{base}/miniscope/params?path=tiny.json")
            page.click("#step-nav a[data-show='preprocess']")
            expect(page.locator("details[data-step='preprocess']")).to_be_visible()
            expect(page.locator("details[data-step='detect']")).to_be_hidden()
            expect(page.locator("[data-guide='preprocess.denoise']")).to_contain_text("salt-and-pepper")
            _shot(page, "miniscope_step_form.png")

            # preview on the first frames
            page.fill("input[name=input_dir]", "videos")
            page.fill("input[name=preview_frames]", "100")
            page.click("button:has-text('preview')")
            expect(page.locator("#preview-result img")).to_have_count(4)
            _shot(page, "miniscope_preview.png")

            # a new run, as a job of the server, followed live
            page.fill("input[name=out]", "run1")
            page.fill("input[name=workers]", "0")
            page.click("button:has-text('start run')")
            page.wait_for_url(f"{base}/miniscope?path=run1")
            expect(page.locator("#job-state")).to_have_text("finished", timeout=TIMEOUT_MS)
            expect(page.locator("#steps [data-step='export']")).to_have_attribute("data-state", "done")
            expect(page.locator("#log-tail")).to_contain_text("step export: done")
            _shot(page, "miniscope_run.png")

            page.click("#steps [data-step='export'] a")
            expect(page.locator("#report-title")).to_contain_text("export")
            expect(page.locator("img.report-figure").first).to_be_visible()
            _shot(page, "miniscope_report.png")

            # the unit explorer: reject the first unit with the keyboard, re-export
            page.goto(f"{base}/miniscope?path=run1")
            page.click("#explorer-link")
            expect(page.locator("#explorer[data-ready]")).to_have_count(1)
            expect(page.locator("#explorer[data-trace-unit]")).to_have_count(1)  # the first unit's trace drawn
            expect(page.locator("#plot-c canvas")).to_be_visible()
            page.keyboard.press("ArrowRight")  # the next unit ...
            page.keyboard.press("ArrowLeft")  # ... and back
            unit = int(page.locator("#explorer").get_attribute("data-current"))
            page.keyboard.press("r")
            expect(page.locator("#explorer")).to_have_attribute("data-last-decision", f"{unit}:rejected")
            expect(page.locator("#ex-counts")).to_contain_text("1 rejected")
            _shot(page, "miniscope_explorer.png")
            page.click("#btn-export")
            expect(page.locator("#ex-msg")).to_contain_text("re-exported")
            assert not errors, errors
            browser.close()
        exported = json.loads((runs / "run1" / "export" / "units.json").read_text())
        assert unit not in exported["unit_ids"] and exported["curation"]["rejected"] == [unit]
        A = np.load(runs / "run1" / "export" / "A.npy")
        assert A.shape[0] == exported["curation"]["units_before"] - 1 == len(exported["unit_ids"])
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
