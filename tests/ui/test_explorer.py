"""The unit explorer's routes (issue 13): footprints PNG, label image, decimated traces read
lazily, curation (decide, merge) saved beside the run and applied by a re-export."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import zarr

from scopeline.miniscope.simulate_result import write_synthetic_result
from scopeline.ui import ServeConfig
from scopeline.ui.explorer import label_blocks, minmax_columns

from .conftest import client_for

N_UNITS, N_FRAMES, SHAPE = 9, 3000, (48, 40)


@pytest.fixture
def explorer(tmp_path):
    runs = tmp_path / "runs"
    write_synthetic_result(runs / "res", n_units=N_UNITS, n_frames=N_FRAMES, shape=SHAPE, seed=2)
    (tmp_path / "outside").mkdir()
    return client_for(ServeConfig(runs=runs)), runs / "res"


def test_minmax_columns_hand_worked():
    starts, mins, maxs = minmax_columns(np.array([1, 5, 2, 8, 3, 0]), 3)
    assert starts.tolist() == [0, 2, 4] and mins.tolist() == [1, 2, 0] and maxs.tolist() == [5, 8, 3]
    starts, mins, maxs = minmax_columns(np.arange(4.0), 10)  # fewer samples than columns: each sample
    assert starts.tolist() == [0, 1, 2, 3] and mins.tolist() == maxs.tolist() == [0, 1, 2, 3]
    assert len(minmax_columns(np.zeros(0), 5)[0]) == 0


def test_label_image_gives_each_pixel_its_brightest_unit():
    a = np.zeros((2, 1, 5), np.float32)
    a[0, 0] = [1.0, 0.8, 0.4, 0.0, 0.0]    # unit row 0
    a[1, 0] = [0.0, 0.0, 2.0, 4.0, 1.0]    # row 1 (max 4): relative 0.5 at pixel 2, 0.25 at 4
    labels, outline, geometry = label_blocks([(0, a)], (1, 5))
    # pixel 2: row 0 relative 0.4, row 1 relative 0.5 -> row 1; pixel 4: 0.25 < 0.3 -> none
    assert labels.tolist() == [[1, 1, 2, 2, 0]]
    assert geometry[0]["box"] == [0, 1, 0, 3] and geometry[1]["size"] == 2


def test_page_image_labels_and_units(explorer):
    client, run = explorer
    page = client.get("/miniscope/explorer?path=res")
    assert page.status_code == 200 and f'data-units="{N_UNITS}"' in page.text and "uPlot.iife.min.js" in page.text
    png = client.get("/miniscope/explorer/image?path=res")
    assert png.headers["content-type"] == "image/png"
    from PIL import Image

    assert Image.open(io.BytesIO(png.content)).size == (SHAPE[1], SHAPE[0])
    labels = client.get("/miniscope/explorer/labels?path=res")
    h, w = int(labels.headers["X-Height"]), int(labels.headers["X-Width"])
    image = np.frombuffer(labels.content, "<u2").reshape(h, w)
    assert (h, w) == SHAPE
    units = client.get("/miniscope/explorer/units?path=res").json()
    assert [u["id"] for u in units["units"]] == list(range(10, 10 + N_UNITS))
    assert units["curation"]["rejected"] == [] and units["n_frames"] == N_FRAMES
    A = zarr.open_group(str(run / "store.zarr"), mode="r")["export/A"][...]
    for u in units["units"]:  # a click on a unit's peak pixel finds that unit
        y, x = np.unravel_index(np.argmax(A[u["row"]]), SHAPE)
        assert image[y, x] == u["row"] + 1
        assert u["box"][0] <= y < u["box"][1] and u["box"][2] <= x < u["box"][3]


def test_trace_is_decimated_from_the_store(explorer):
    client, run = explorer
    C = zarr.open_group(str(run / "store.zarr"), mode="r")["export/C"][...]
    d = client.get("/miniscope/explorer/trace?path=res&unit=12&width=100").json()
    assert d["columns"] == 100 and d["decimated"] and len(d["x"]) == len(d["c"]) == len(d["s"]) == 200
    _, mins, maxs = minmax_columns(C[2], 100)
    np.testing.assert_allclose(d["c"][0::2], mins, atol=1e-4)
    np.testing.assert_allclose(d["c"][1::2], maxs, atol=1e-4)
    assert max(d["c"]) == pytest.approx(C[2].max(), abs=1e-4)  # no peak lost
    assert d["x"][0] == 0.0 and np.all(np.diff(d["x"]) >= 0)
    part = client.get("/miniscope/explorer/trace?path=res&unit=12&width=4000&t0=10&t1=20").json()
    assert part["frames"] == [300, 601] and not part["decimated"]  # 30 frames/s
    np.testing.assert_allclose(part["c"][0::2], C[2, 300:601], atol=1e-4)


def test_refusals(explorer):
    client, run = explorer
    assert client.get("/miniscope/explorer?path=../outside").status_code == 403
    assert client.get("/miniscope/explorer/trace?path=/etc&unit=10").status_code == 403
    assert client.get("/miniscope/explorer?path=.").status_code == 404
    for url in ["/miniscope/explorer/trace?path=res&unit=999", "/miniscope/explorer/trace?path=res&unit=10&width=0",
                "/miniscope/explorer/trace?path=res&unit=10&width=99999", "/miniscope/explorer/trace?path=res&unit=x"]:
        response = client.get(url)
        assert response.status_code in (400, 404, 422) and response.status_code != 500, url
    assert client.get("/miniscope/explorer/trace?path=res&unit=999").text == "not found: no unit 999 in this run"
    bad = client.post("/miniscope/explorer/decide", data={"path": "res", "unit": "10", "decision": "maybe"})
    assert bad.status_code == 400 and bad.text == "decision must be accepted, rejected or undecided"
    assert client.post("/miniscope/explorer/decide", data={"path": "res", "unit": "999",
                                                           "decision": "rejected"}).status_code == 404
    assert client.post("/miniscope/explorer/merge", data={"path": "res", "units": "10"}).status_code == 400
    assert client.post("/miniscope/explorer/merge", data={"path": "res", "units": "10,x"}).status_code == 400
    assert client.post("/miniscope/explorer/export", data={"path": "../outside"}).status_code == 403
    assert not (run / "curation.json").exists()


def test_curation_saved_and_applied_by_the_reexport(explorer):
    client, run = explorer
    r = client.post("/miniscope/explorer/decide", data={"path": "res", "unit": "11", "decision": "rejected"})
    assert r.status_code == 200 and r.json()["rejected"] == [11]
    client.post("/miniscope/explorer/decide", data={"path": "res", "unit": "10", "decision": "accepted"})
    merged = client.post("/miniscope/explorer/merge", data={"path": "res", "units": "13, 14"}).json()
    assert merged["merges"] == [[13, 14]]
    saved = json.loads((run / "curation.json").read_text())
    assert saved["rejected"] == [11] and saved["accepted"] == [10] and saved["merges"] == [[13, 14]]
    assert client.get("/miniscope/explorer/units?path=res").json()["curation"]["rejected"] == [11]

    summary = client.post("/miniscope/explorer/export", data={"path": "res"}).json()
    assert summary == {"units_before": 9, "units_exported": 7, "rejected": [11], "merged": [[13, 14]],
                       "export_dir": "res/export"}
    assert np.load(run / "export" / "A.npy").shape[0] == 7
    assert 11 not in json.loads((run / "export" / "units.json").read_text())["unit_ids"]
    # the explorer still shows every unit (it reads the store, not the curated files)
    assert len(client.get("/miniscope/explorer/units?path=res").json()["units"]) == N_UNITS
    assert client.post("/miniscope/explorer/unmerge", data={"path": "res", "unit": "14"}).json()["merges"] == []


def test_a_watch_folder_is_only_read(tmp_path):
    runs, session = tmp_path / "runs", tmp_path / "session"
    runs.mkdir()
    write_synthetic_result(session / "res", n_units=3, n_frames=100, shape=(24, 24))
    client = client_for(ServeConfig(runs=runs, watch=(session,)))
    path = str(session / "res")
    assert client.get("/miniscope/explorer/units", params={"path": path}).status_code == 200
    assert not (session / "res" / ".scopeline-explorer.npz").exists()  # no cache written there
    for url, data in [("/miniscope/explorer/decide", {"unit": "10", "decision": "rejected"}),
                      ("/miniscope/explorer/merge", {"units": "10,11"}), ("/miniscope/explorer/export", {})]:
        assert client.post(url, data={"path": path, **data}).status_code == 403, url
    assert not (session / "res" / "curation.json").exists()


def test_the_run_page_prepares_the_overview_and_a_fresh_server_uses_it(explorer, tmp_path):
    import time

    client, run = explorer
    assert client.get("/miniscope?path=res").status_code == 200
    deadline = time.monotonic() + 30
    while not (run / ".scopeline-explorer.npz").exists():
        assert time.monotonic() < deadline, "the overview was not cached"
        time.sleep(0.1)
    fresh = client_for(ServeConfig(runs=run.parent))
    from scopeline.ui import explorer as module

    calls = []
    original = module.label_blocks
    module.label_blocks = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        assert fresh.get("/miniscope/explorer/units?path=res").json()["units"][0]["id"] == 10
    finally:
        module.label_blocks = original
    assert not calls  # read from the cache, not computed again
