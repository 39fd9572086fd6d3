"""The run page of maxshift and clean runs: the same page, the tool's columns and plots."""

from __future__ import annotations

import re

import numpy as np
import pytest

from scopeline.cryoem.cleaner import clean as clean_module
from scopeline.cryoem.cleaner.clean import CleanParams, run_clean
from scopeline.cryoem.maxshift_run import run_maxshift
from scopeline.tools import open_run
from scopeline.ui import ServeConfig
from tests.cryoem.test_cleaner_clean import write_mrc, write_star
from tests.cryoem.test_maxshift import _stars

from .conftest import client_for


def _counts(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', html)}


@pytest.fixture(scope="module")
def maxshift_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui_maxshift")
    _stars(root / "s", ["m1", "m2"])               # 4 steps of 0.5 Å: path 2 Å
    _stars(root / "s", ["m3"], step=30.0)          # 4 steps of 30 Å
    run_maxshift([str(root / "s" / "*.star")], root / "runs" / "shifts")
    return root / "runs"


def test_maxshift_page_counts_columns_plots_and_redecide(maxshift_root):
    client = client_for(ServeConfig(runs=maxshift_root))
    assert '<tr data-kind="maxshift">' in client.get("/").text
    html = client.get("/run?path=shifts").text
    assert _counts(html)["accepted"] == 2 and _counts(html)["discarded"] == 1
    assert 'name="max_movie_shift"' in html and 'name="pixel_size"' not in html
    items = client.get("/run/items?path=shifts").text
    assert "<th>max_frame_shift_A</th>" in items and "<th>total_path_A</th>" in items
    plots = {p["id"]: p for p in client.get("/run/data?path=shifts").json()["plots"]}
    assert set(plots) == {"accept_rate", "frame_shift", "total_path", "path_vs_time"}
    assert plots["frame_shift"]["series"]["discarded"]["y"] == [pytest.approx(30.0)]
    assert sorted(plots["total_path"]["series"]["accepted"]["y"]) == [pytest.approx(2.0)] * 2
    assert '<select name="rejection">' in html and 'name="max_early_shift" value=""' in html
    assert client.post("/run/redecide", data={"path": "shifts", "max_movie_shift": "1.5"}).status_code == 200
    assert _counts(client.get("/run/counts?path=shifts").text)["discarded"] == 3
    # an optional threshold typed, then emptied: back to none (not "unchanged")
    client.post("/run/redecide", data={"path": "shifts", "max_early_shift": "0.1"})
    assert open_run(maxshift_root / "shifts").params.max_early_shift == 0.1
    client.post("/run/redecide", data={"path": "shifts", "max_early_shift": ""})
    assert open_run(maxshift_root / "shifts").params.max_early_shift is None
    bad = client.post("/run/redecide", data={"path": "shifts", "rejection": "sometimes"})
    assert bad.status_code == 400 and "rejection" in bad.text


def _left_half_bad(image, box, model, params):
    """Stand-in for the U-Net (the UI is what is tested here): the left half is bad."""
    prob = np.zeros((image.shape[0] // 8, image.shape[1] // 8), np.float32)
    prob[:, : prob.shape[1] // 2] = 1.0
    return prob, prob


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui_clean")
    (root / "c").mkdir()
    write_mrc(root / "c" / "mic01.mrc", np.random.default_rng(0).normal(100, 8, (256, 256)))
    ys = np.linspace(30, 226, 10)
    write_star(root / "c" / "mic01_autopick.star", np.r_[np.c_[np.full(10, 40.0), ys], np.c_[np.full(10, 200.0), ys]])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(clean_module, "_model", lambda *args: None)
        mp.setattr(clean_module, "bad_region_probability", _left_half_bad)
        run_clean([root / "c" / "mic01.mrc"], [root / "c" / "mic01_autopick.star"], root / "runs" / "cleaned",
                  CleanParams(box_size=32))
    return root / "runs"


def test_clean_page_scores_histogram_and_threshold(clean_root):
    client = client_for(ServeConfig(runs=clean_root))
    html = client.get("/run?path=cleaned").text
    assert _counts(html)["total"] == 1 and 'name="threshold"' in html and 'name="min_kept"' in html
    assert 'name="box_size"' not in html and 'name="device"' not in html  # not a threshold
    _rate, plot = client.get("/run/data?path=cleaned").json()["plots"]
    scores = [s for series in plot["series"].values() for s in series["y"]]
    assert plot["id"] == "scores" and len(scores) == 20
    assert "<th>n_picks</th>" in client.get("/run/items?path=cleaned").text
    assert sorted(np.round(scores, 6)) == [0.0] * 10 + [1.0] * 10  # the stand-in's two halves
    n_good = 10
    response = client.post("/run/redecide", data={"path": "cleaned", "threshold": "0.5"})
    assert response.status_code == 200
    assert client.get("/run/data?path=cleaned").json()["plots"][1]["threshold"] == 0.5
    row = re.search(r'<td class="num">(\d+)</td><td class="num">(\d+)</td>', client.get("/run/items?path=cleaned").text)
    assert row.groups() == ("20", str(n_good))  # n_picks, n_kept: the picks on the good half
    client.post("/run/redecide", data={"path": "cleaned", "threshold": "-1"})
    row = re.search(r'<td class="num">(\d+)</td><td class="num">(\d+)</td>', client.get("/run/items?path=cleaned").text)
    assert row.groups() == ("20", "20")  # every pick kept
