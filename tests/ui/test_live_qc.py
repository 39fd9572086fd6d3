"""Facility live QC (issue 13): which tools a session gets, the live page with real jobs,
item pages, export selection, and the refusals (paths outside, watch folders read only)."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from scopeline.cryoem.cleaner import clean as clean_module
from scopeline.cryoem.cleaner.clean import CleanParams, run_clean
from scopeline.cryoem.maxshift_run import run_maxshift
from scopeline.errors import ConfigError
from scopeline.tools import open_run
from scopeline.ui import ServeConfig, create_app
from scopeline.ui.config import LiveOptions
from scopeline.ui.live import plan_jobs, survey
from tests.cryoem.test_cleaner_clean import write_mrc, write_star
from tests.cryoem.test_dose_run import make_session, write_movie

from .conftest import LOCAL, client_for
from .test_other_tools import _left_half_bad

RELION = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "relion"
MOTION_STAR = RELION / "betagal_20170629_00021_frameImage_motion.star"


def _counts(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', html)}


def _plans(config: ServeConfig) -> dict[str, object]:
    return {p.tool: p for p in plan_jobs(config)}


# --------------------------------------------------------------------------- which tools apply


def test_movies_folder_gets_dose_only(tmp_path):
    make_session(tmp_path / "session", [1.0, 1.0])
    (tmp_path / "runs").mkdir()
    plans = _plans(ServeConfig(runs=tmp_path / "runs", watch=(tmp_path / "session",),
                               live=LiveOptions(poll_interval=0.5, min_file_age=0, workers=0)))
    dose = plans["dose"]
    assert dose.applies and dose.argv[:2] == ["dose", str((tmp_path / "session").resolve())]
    argv = " ".join(dose.argv)
    assert "--watch" in argv and "--poll-interval 0.5" in argv and "--min-file-age 0" in argv and "--workers 0" in argv
    assert dose.out_dir == (tmp_path / "runs" / "live" / "session" / "dose").resolve()
    assert dose.stop_file.parent == (tmp_path / "runs" / "live" / "logs").resolve()
    assert not plans["maxshift"].applies and "corrected_micrographs.star" in plans["maxshift"].reason
    assert not plans["clean"].applies and "micrographs" in plans["clean"].reason


def test_epu_tiffs_relion_motion_job_and_picked_micrographs(tmp_path):
    s = tmp_path / "session"
    (s / "Images-Disc1" / "GridSquare_1" / "Data").mkdir(parents=True)
    (s / "Images-Disc1" / "GridSquare_1" / "Data" / "FoilHole_1_fractions.tiff").write_bytes(b"II*\x00")
    job = s / "relion" / "MotionCorr" / "job002"
    (job / "Movies").mkdir(parents=True)
    shutil.copy(RELION / "betagal_corrected_micrographs.star", job / "corrected_micrographs.star")
    write_mrc(job / "Movies" / "mic01.mrc", np.zeros((64, 64)))  # a micrograph: one frame
    picks = s / "relion" / "AutoPick" / "job005" / "Movies"
    picks.mkdir(parents=True)
    write_star(picks / "mic01_autopick.star", [(10.0, 10.0)])
    runs = tmp_path / "runs"
    runs.mkdir()
    found = survey(s)
    assert found.movie_ext == {".tiff"} and found.micrograph_dirs == [job / "Movies"] and not found.mrc_movie_dirs
    plans = _plans(ServeConfig(runs=runs, watch=(s,)))
    assert plans["dose"].argv[1] == str(s.resolve() / "**" / "*.tiff")  # new grid squares are followed
    assert plans["maxshift"].argv[1] == str((job / "corrected_micrographs.star").resolve())
    assert plans["maxshift"].cwd == (s / "relion").resolve()  # the RELION project: its paths resolve
    assert not plans["clean"].applies and "--box-size" in plans["clean"].reason
    clean = _plans(ServeConfig(runs=runs, watch=(s,), live=LiveOptions(box_size=64)))["clean"]
    argv = clean.argv
    assert argv[argv.index("--micrographs") + 1] == str((job / "Movies").resolve())
    assert argv[argv.index("--coords") + 1] == str(picks.resolve() / "*_autopick.star")
    assert "--save-masks" in argv and argv[argv.index("--box-size") + 1] == "64"


def test_watched_star_files(tmp_path):
    table = tmp_path / "corrected_micrographs.star"
    shutil.copy(RELION / "T20S_corrected_micrographs.star", table)
    movies = tmp_path / "movies.star"
    movies.write_text("data_movies\nloop_\n_rlnMicrographMovieName #1\nMovies/a.tiff\n")
    (tmp_path / "runs").mkdir()
    plans = plan_jobs(ServeConfig(runs=tmp_path / "runs", watch=(table, movies)))
    by = {(p.session, p.tool): p for p in plans}
    assert by[("corrected_micrographs", "maxshift")].argv[1] == str(table.resolve())
    assert not by[("corrected_micrographs", "dose")].applies
    assert by[("movies", "dose")].argv[1] == str(movies.resolve())


def test_runs_inside_the_session_and_bad_watch_are_refused(tmp_path):
    (tmp_path / "s" / "runs").mkdir(parents=True)
    with pytest.raises(ConfigError, match="--runs"):
        ServeConfig(runs=tmp_path / "s" / "runs", watch=(tmp_path / "s",)).checked()
    with pytest.raises(ConfigError, match="--runs"):
        ServeConfig(runs=tmp_path / "s", watch=(tmp_path / "s",)).checked()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="--watch"):
        ServeConfig(runs=tmp_path / "s", watch=(tmp_path / "notes.txt",)).checked()


# --------------------------------------------------------------------------- the live page, real jobs


def _wait(condition, what, seconds=60.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_live_page_runs_dose_on_arriving_movies_and_stops_it(tmp_path):
    from fastapi.testclient import TestClient

    session, runs = tmp_path / "session", tmp_path / "runs"
    runs.mkdir()
    make_session(session, [1.0, 1.0])
    config = ServeConfig(runs=runs, watch=(session,), live=LiveOptions(poll_interval=0.2, min_file_age=0, workers=0))
    app = create_app(config, rescan_s=0.5)
    with TestClient(app, base_url=LOCAL) as client:
        live = app.state.live
        job = live.jobs.get("session-dose")
        assert job is not None and job.state == "running" and live.jobs.get("session-maxshift") is None
        page = client.get("/live").text
        assert 'data-tool="dose" data-state="running"' in page and "not started" in page
        assert "no corrected_micrographs.star" in page  # why maxshift does not run

        def total():
            html = client.get("/live/jobs").text
            m = re.search(r'data-tool="dose".*?data-count="total">(\d*)<', html, re.S)
            return int(m.group(1)) if m and m.group(1) else 0

        _wait(lambda: total() == 2, "the first 2 movies")
        make_session(session, [1.0, 1.0, 1.0, 1.0])  # 2 more arrive while watching
        _wait(lambda: total() == 4, "the movies that arrived")
        html = client.get("/live/jobs").text
        assert 'href="/run?path=live/session/dose"' in html
        run_page = client.get("/run?path=live/session/dose").text
        assert _counts(run_page)["total"] == 4 and "running (pid" in run_page
    # the server stopped: the job closed its input (stop file) and wrote its final outputs
    assert job.state == "cancelled" and job.returncode == 0
    assert json.loads((runs / "live" / "session" / "dose" / "summary.json").read_text())["closed"] is True
    assert (runs / "live" / "logs" / "session-dose.log").is_file()


def test_a_tool_that_applies_later_is_started_by_the_rescan(tmp_path):
    from fastapi.testclient import TestClient

    session, runs = tmp_path / "session", tmp_path / "runs"
    session.mkdir()
    runs.mkdir()
    config = ServeConfig(runs=runs, watch=(session,), live=LiveOptions(poll_interval=0.2, min_file_age=0, workers=0))
    app = create_app(config, rescan_s=0.2)
    with TestClient(app, base_url=LOCAL) as client:
        assert app.state.live.jobs.jobs() == []
        assert "no movies" in client.get("/live").text
        make_session(session, [1.0])
        _wait(lambda: app.state.live.jobs.get("session-dose") is not None, "the rescan to start dose")
    assert app.state.live.jobs.get("session-dose").state == "cancelled"


def test_live_page_without_watch_says_how(runs_root):
    client = client_for(ServeConfig(runs=runs_root))
    html = client.get("/live").text
    assert 'id="no-watch"' in html and "--watch SESSION_DIR" in html
    assert 'id="live-link"' not in client.get("/").text


# --------------------------------------------------------------------------- item pages


def test_dose_item_shows_the_sampled_frame_doses(runs_root):
    client = client_for(ServeConfig(runs=runs_root))
    rows = open_run(runs_root / "dose1").decide()
    last = rows[-1]
    page = client.get("/item", params={"path": "dose1", "key": last["key"]})
    assert page.status_code == 200 and "movie_0003.mrc" in page.text and "/static/item.js" in page.text
    data = client.get("/item/data", params={"path": "dose1", "key": last["key"]}).json()
    n = last["n_frames"]
    assert data["frames"] == [0, n // 2, n - 1] and data["note"] == ""
    assert np.mean(data["doses"]) == pytest.approx(last["mean_dose"])  # the mean is of those frames
    assert data["reference"] == pytest.approx(last["reference_dose"])
    assert data["band"] == pytest.approx([last["reference_dose"] * 0.9, last["reference_dose"] * 1.1])
    # the items table links each row to its page
    from urllib.parse import quote

    assert f'href="/item?path=dose1&key={quote(last["key"])}"' in client.get("/run/items?path=dose1").text


def test_dose_item_of_an_old_journal(runs_root):
    journal = next((runs_root / "dose1" / ".scopeline").glob("dose_*.jsonl"))
    lines = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    for rec in lines:  # as written before frame doses were kept
        rec.pop("frame_doses", None), rec.pop("sampled_frames", None)
    journal.write_text("".join(json.dumps(r) + "\n" for r in lines))
    rec = lines[0]
    data = client_for(ServeConfig(runs=runs_root)).get("/item/data", params={"path": "dose1", "key": rec["key"]}).json()
    assert data["frames"] == [0, rec["n_frames"] // 2, rec["n_frames"] - 1]
    assert data["doses"] == pytest.approx([rec["first_frame_dose"], rec["middle_frame_dose"], rec["last_frame_dose"]])
    assert "earlier version" in data["note"]


def test_maxshift_item_trajectory_matches_the_measurement(tmp_path):
    session, runs = tmp_path / "session", tmp_path / "runs"
    session.mkdir()
    star = session / MOTION_STAR.name
    shutil.copy(MOTION_STAR, star)
    run_maxshift([star], runs / "shift", workers=0)
    key = open_run(runs / "shift").records()[0]["key"]
    client = client_for(ServeConfig(runs=runs, watch=(session,)))
    assert client.get("/item", params={"path": "shift", "key": key}).status_code == 200
    data = client.get("/item/data", params={"path": "shift", "key": key}).json()
    row = open_run(runs / "shift").decide()[0]
    assert len(data["x"]) == row["n_frames"] == 24 and data["unit"] == "Å" and (data["x"][0], data["y"][0]) == (0, 0)
    assert sum(data["steps"]) == pytest.approx(row["total_path_A"], abs=0.01)  # RELION's file, re-measured
    assert max(data["steps"]) == pytest.approx(row["max_frame_shift_A"], abs=0.001)
    assert data["max_frame_shift"] == 10.0  # the threshold drawn
    # a journal without the shifts: read lazily from the motion STAR (inside the allowed folders)
    journal = next((runs / "shift" / ".scopeline").glob("maxshift_*.jsonl"))
    recs = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    [r.pop("shifts_px") for r in recs]
    journal.write_text("".join(json.dumps(r) + "\n" for r in recs))
    again = client.get("/item/data", params={"path": "shift", "key": key}).json()
    assert again["steps"] == pytest.approx(data["steps"], abs=0.002) and again["note"] == ""  # journal: 4 decimals
    # ... and not read when it lies outside them
    outside = client_for(ServeConfig(runs=runs)).get("/item/data", params={"path": "shift", "key": key}).json()
    assert outside["x"] == [] and "outside the folders" in outside["note"]


@pytest.fixture
def clean_session(tmp_path):
    session, runs = tmp_path / "session", tmp_path / "runs"
    session.mkdir()
    write_mrc(session / "mic01.mrc", np.random.default_rng(0).normal(100, 8, (256, 256)))
    ys = np.linspace(30, 226, 10)
    write_star(session / "mic01_autopick.star", np.r_[np.c_[np.full(10, 40.0), ys], np.c_[np.full(10, 200.0), ys]])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(clean_module, "_model", lambda *args: None)
        mp.setattr(clean_module, "bad_region_probability", _left_half_bad)
        for name, masks in (("masked", True), ("plain", False)):
            run_clean([session / "mic01.mrc"], [session / "mic01_autopick.star"], runs / name,
                      CleanParams(box_size=32, save_masks=masks, threshold=0.5))
    return session, runs


def test_clean_item_draws_kept_and_removed_picks_over_the_mask(clean_session):
    session, runs = clean_session
    client = client_for(ServeConfig(runs=runs, watch=(session,)))
    key = open_run(runs / "masked").records()[0]["key"]
    page = client.get("/item", params={"path": "masked", "key": key}).text
    assert 'id="micrograph"' in page and "masks/mic01.mrc" in page
    image = client.get("/item/image.png", params={"path": "masked", "key": key})
    assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.headers["x-picks-kept"] == "10" and image.headers["x-picks-removed"] == "10"  # the stand-in's halves
    assert image.headers["x-picks-mask"] == "True"
    import io

    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(image.content)).convert("RGB"), float)
    assert rgb.shape[:2] == (256, 256)
    left, right = rgb[:, :100], rgb[:, 156:]
    assert (left[..., 0] - left[..., 1]).mean() > 30 > abs((right[..., 0] - right[..., 1]).mean())  # red = bad half
    plain = client.get("/item", params={"path": "plain", "key": key}).text
    assert "did not save masks" in plain and "--save-masks" in plain
    assert client.get("/item/image.png", params={"path": "plain", "key": key}).headers["x-picks-mask"] == "False"


def test_item_refusals(clean_session, runs_root, tmp_path):
    session, runs = clean_session
    key = open_run(runs / "masked").records()[0]["key"]
    # the micrograph lies outside the folders given to the server: not read
    client = client_for(ServeConfig(runs=runs))
    assert client.get("/item/image.png", params={"path": "masked", "key": key}).status_code == 403
    client = client_for(ServeConfig(runs=runs, watch=(session,)))
    assert client.get("/item", params={"path": "masked", "key": "nope"}).status_code == 404
    assert client.get("/item/data", params={"path": "masked", "key": "nope"}).status_code == 404
    assert client.get("/item", params={"path": str(tmp_path), "key": key}).status_code in (403, 404)
    assert client.get("/item", params={"path": "/etc", "key": key}).status_code == 403
    assert client.get("/item", params={"path": "../..", "key": key}).status_code == 403
    dose = client_for(ServeConfig(runs=runs_root))
    dkey = open_run(runs_root / "dose1").records()[0]["key"]
    assert dose.get("/item/image.png", params={"path": "dose1", "key": dkey}).status_code == 404  # no image


# --------------------------------------------------------------------------- export, sliders, read-only watch


def test_export_selection_writes_the_sets_now(runs_root):
    client = client_for(ServeConfig(runs=runs_root))
    key = open_run(runs_root / "dose1").records()[-1]["key"]  # the 8 %-off movie, accepted in the 10 % band
    open_run(runs_root / "dose1").set_override(key, "discarded")  # decided elsewhere, outputs not yet rewritten
    before = (runs_root / "dose1" / "movies_discarded.star").read_text()
    assert "movie_0003" not in before
    response = client.post("/run/export", data={"path": "dose1"})
    assert response.status_code == 200 and response.headers["hx-trigger"] == "redecided"
    assert 'data-written="1"' in response.text and "/files/dose1/movies_discarded.star" in response.text
    assert "movie_0003" in (runs_root / "dose1" / "movies_discarded.star").read_text()
    assert "movie_0003" not in (runs_root / "dose1" / "movies_accepted.star").read_text()


def test_export_on_a_running_run_says_the_sets_follow(runs_root):
    lock = runs_root / "dose1" / ".scopeline" / "lock"
    import os
    import socket

    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "tool": "dose", "since": "now"}))
    response = client_for(ServeConfig(runs=runs_root)).post("/run/export", data={"path": "dose1"})
    assert response.status_code == 200 and 'data-written="0"' in response.text and "next update" in response.text


def test_run_page_has_sliders_bound_to_thresholds(runs_root):
    html = client_for(ServeConfig(runs=runs_root)).get("/run?path=dose1").text
    slider = re.search(r'<input type="range" class="slider" data-for="max_diff"[^>]*>', html).group(0)
    assert 'min="0.0"' in slider and 'max="50.0"' in slider and 'value="10.0"' in slider
    assert 'name="max_diff"' in html and 'id="export"' in html


def test_watch_folders_are_read_only(runs_root, dose_template, tmp_path):
    session = tmp_path / "session"
    shutil.copytree(dose_template, session / "dose_in_session")
    client = client_for(ServeConfig(runs=runs_root, watch=(session,)))
    path = str(session / "dose_in_session")
    assert client.get("/run", params={"path": path}).status_code == 200  # readable
    assert "which the UI only reads" in client.get("/run", params={"path": path}).text
    state = (session / "dose_in_session" / ".scopeline" / "run.json").read_text()
    key = open_run(session / "dose_in_session").records()[0]["key"]
    for url, data in [("/run/redecide", {"path": path, "max_diff": "1"}), ("/run/export", {"path": path}),
                      ("/run/override", {"path": path, "key": key, "decision": "discarded"})]:
        response = client.post(url, data=data)
        assert response.status_code == 403 and "only reads" in response.text, url
    assert (session / "dose_in_session" / ".scopeline" / "run.json").read_text() == state
    assert not (session / "dose_in_session" / ".scopeline" / "overrides.json").exists()


def test_redecide_on_a_running_run_applies_to_new_items(tmp_path):
    """A threshold saved while a run goes on decides the items measured afterwards too."""
    from scopeline.cryoem.dose import DoseParams
    from scopeline.cryoem.dose_analysis import run_dose
    from scopeline.stream import StreamOptions

    movies, out = tmp_path / "m", tmp_path / "runs" / "d"
    make_session(movies, [1.0, 1.0, 1.0])
    calls = []
    stop = tmp_path / "STOP"
    # the run measures 3 movies, then (from another "process") the threshold changes and a 4th arrives
    import threading

    def later():
        _wait(lambda: (out / ".scopeline" / "run.json").is_file() and len(open_run(out).records()) >= 3, "3 movies")
        client = client_for(ServeConfig(runs=tmp_path / "runs"))
        assert "next update" in client.post("/run/redecide", data={"path": "d", "max_diff": "5"}).text
        write_movie(movies / ".late.part", 1.08, seed=9).rename(movies / "movie_0009.mrc")
        _wait(lambda: len(open_run(out).records()) >= 4, "the 4th movie")
        calls.append(open_run(out).params.max_diff)
        stop.touch()

    thread = threading.Thread(target=later)
    thread.start()
    run_dose([movies], out, DoseParams(samples=3, max_diff=10), workers=0,
             stream=StreamOptions(watch=True, idle_timeout=60, poll_interval=0.1, stop_file=stop, min_file_age=0))
    thread.join()
    summary = json.loads((out / "summary.json").read_text())
    assert calls == [5.0] and summary["parameters"]["max_diff"] == 5.0
    assert summary["n_discarded"] == 1  # the 8 %-off newcomer, outside the 5 % band set while running
