"""Fixtures of the UI tests: one small finished dose run (4 movies, the last one 8 % over
the others), copied fresh for each test that changes it."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from scopeline.cryoem.dose import DoseParams
from scopeline.cryoem.dose_analysis import run_dose
from scopeline.ui import ServeConfig, create_app
from tests.cryoem.test_dose_run import make_session

if not all(importlib.util.find_spec(m) for m in ("fastapi", "jinja2", "uvicorn", "httpx")):
    collect_ignore_glob = ["test_*.py"]  # the [ui] extra is not installed: nothing to test

LOCAL = "http://127.0.0.1:8765"


@pytest.fixture(scope="session")
def dose_template(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("ui_dose")
    make_session(base / "movies", [1.0, 1.0, 1.0, 1.08])
    run_dose([base / "movies"], base / "run", DoseParams(samples=4, max_diff=10), workers=0)
    return base / "run"


@pytest.fixture
def runs_root(tmp_path, dose_template) -> Path:
    """``tmp/runs`` holding ``dose1`` (a copy of the finished dose run) and a miniscope run."""
    root = tmp_path / "runs"
    shutil.copytree(dose_template, root / "dose1")
    (root / "mini" / "steps").mkdir(parents=True)
    (root / "mini" / "params.json").write_text("{}")
    return root


def client_for(config: ServeConfig, base_url: str = LOCAL, **kw):
    from fastapi.testclient import TestClient

    return TestClient(create_app(config, **kw), base_url=base_url)


@pytest.fixture(autouse=True)
def _patient_browser_expectations():
    """Playwright's ``expect`` waits 5 s by default: too short for a live page on a loaded
    2-core machine (the live QC test failed once so). Every UI test waits up to 30 s."""
    if importlib.util.find_spec("playwright") is None:
        yield
        return
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)
    yield
    expect.set_options(timeout=5_000)  # playwright's default
