"""Miniscope without code (issue 13): per-step parameter forms with the guide's
explanations, preview, runs as server jobs (start, progress, cancel, refusals), reports."""

from __future__ import annotations

import json
import re
import time

import pytest

from scopeline.miniscope import MiniscopeParams, step_names
from scopeline.miniscope.guide import FIELDS, STEPS
from scopeline.miniscope.simulate import SimulationParams, simulate_recording
from scopeline.ui import ServeConfig
from scopeline.ui.forms import form_fields
from scopeline.ui.miniscope_pages import step_progress

from .conftest import client_for
from .test_miniscope_params import _as_form


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mini_videos")
    simulate_recording(folder, SimulationParams(height=48, width=48, n_frames=80, n_neurons=4, frames_per_file=40,
                                                fps=10.0, seed=1, jump_times=(), radius_range=(3.0, 4.0),
                                                min_separation=8.0))
    return folder


@pytest.fixture
def root(tmp_path, videos):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(videos, runs / "videos")
    (tmp_path / "elsewhere").mkdir()
    return runs


def _wait_job(client, path, seconds=90):
    deadline = time.monotonic() + seconds
    while True:
        state = client.get(f"/miniscope/run/status?path={path}").json()
        if state["state"] != "running":
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.3)


def test_every_parameter_is_explained():
    """Each field shows its model description or the guide's advice (most both)."""
    for section in form_fields(MiniscopeParams):
        assert STEPS.get(section["label"]), section["label"]
        for f in section["fields"]:
            assert f["help"] or FIELDS.get(f["name"]), f["name"]
    assert all(k.split(".")[0] in step_names() for k in FIELDS)


def test_per_step_form_shows_one_step_and_keeps_the_others(root):
    client = client_for(ServeConfig(runs=root))
    html = client.get("/miniscope/params?step=preprocess").text
    shown = re.findall(r'<details data-step="(\w+)" (open)? ?(hidden)?', html)
    assert [s for s, o, h in shown if not h] == ["preprocess"] and len(shown) == len(step_names())
    assert 'name="detect.min_pnr"' in html  # hidden steps stay in the form: check/save/run send the whole set
    assert "Median is the general-purpose default" in html  # the guide's text for the step ...
    assert 'data-guide="preprocess.denoise"' in html  # ... and for a parameter the model leaves undescribed
    assert client.get("/miniscope/params?step=nope").status_code == 404


def test_preview_shows_images(root):
    client = client_for(ServeConfig(runs=root))
    form = {**_as_form(MiniscopeParams()), "input_dir": "videos", "preview_frames": "40"}
    response = client.post("/miniscope/preview", data=form)
    assert response.status_code == 200, response.text
    assert len(re.findall(r'src="data:image/png;base64,iVBOR', response.text)) == 4  # PNGs made on the server
    assert re.search(r"<th>frames</th><td>40</td>", response.text)
    bad = [({"input_dir": "../elsewhere"}, 403), ({"input_dir": "nowhere"}, 400), ({"preview_frames": "5"}, 400),
           ({"preview_frames": "many"}, 400), ({"input_dir": ""}, 400), ({"detect.min_pnr": "-1"}, 400)]
    for change, code in bad:
        answer = client.post("/miniscope/preview", data={**form, **change})
        assert answer.status_code == code, (change, answer.text)
        assert answer.text.count("\n") <= 1 or "<li>" in answer.text  # one message


def test_cli_preview_and_ui_preview_agree(root, tmp_path):
    """One preview behind both: `scopeline miniscope preview --out` and the UI's table
    give the same crop and seeds on the same input and parameters."""
    from typer.testing import CliRunner

    from scopeline.cli import app
    from scopeline.miniscope.preview_steps import preview_steps

    params = MiniscopeParams()
    params.crop.radius_factor = 0.8  # not the defaults: both read the same parameters (file / form)
    (tmp_path / "params.json").write_text(params.model_dump_json())
    cli = CliRunner().invoke(app, ["miniscope", "preview", str(root / "videos"), "--frames", "60",
                                   "--params", str(tmp_path / "params.json"), "--out", str(tmp_path / "out")])
    assert cli.exit_code == 0, cli.output
    saved = json.loads((tmp_path / "out" / "preview" / "preview.json").read_text())

    client = client_for(ServeConfig(runs=root))
    html = client.post("/miniscope/preview", data={**_as_form(params), "input_dir": "videos",
                                                   "preview_frames": "60"}).text
    table = dict(re.findall(r"<th>(\w+)</th><td>([^<]*)</td>", html))
    assert saved["frames"] == 60 and table["frames"] == "60"
    assert table["crop_box"] == str(saved["crop_box"]) and table["seeds"] == str(saved["seeds"])
    assert saved["seeds"] >= 1, saved  # the comparison is about seeds, so there must be some
    direct = preview_steps(root / "videos", params, 60)  # what the UI route draws
    assert direct.seeds.tolist() == saved["seed_positions"] and list(direct.crop_box) == saved["crop_box"]
    bad = CliRunner().invoke(app, ["miniscope", "preview", str(root / "videos"), "--frames", "5"])
    assert bad.exit_code == 2 and "10 to 2000" in bad.output


def test_run_job_progress_report_and_refusals(root):
    client = client_for(ServeConfig(runs=root))
    form = {**_as_form(MiniscopeParams()), "input_dir": "videos", "out": "run1", "to_step": "load",
            "workers": "0", "load.chunk_frames": "40"}
    for change, code in [({"out": ""}, 400), ({"workers": "-1"}, 400), ({"fraction": "2"}, 400),
                         ({"to_step": "nope"}, 400), ({"input_dir": "/"}, 403), ({"out": "../x"}, 403),
                         ({"action": "rm"}, 400), ({"config.fps": "0"}, 400), ({"out": "videos"}, 400)]:
        answer = client.post("/miniscope/run/start", data={"action": "new", **form, **change})
        assert answer.status_code == code, (change, answer.text)
    assert not (root / "run1").exists()

    started = client.post("/miniscope/run/start", data={"action": "new", **form})
    assert started.status_code == 200, started.text
    assert started.headers["HX-Redirect"] == "/miniscope?path=run1"
    assert "miniscope run" in started.text and "--to load" in started.text and "--workers 0" in started.text
    again = client.post("/miniscope/run/start", data={"action": "run", "path": "run1", **form})
    assert again.status_code in (200, 409)  # refused while the first job runs (409), or it already ended
    state = _wait_job(client, "run1")
    assert state["state"] == "finished", state
    steps = {s["name"]: s["state"] for s in state["steps"]}
    assert steps["config"] in ("done", "reused") and steps["load"] in ("done", "reused") and steps["crop"] == "not run"
    assert any("step load" in line for line in state["log"])
    events = client.get("/miniscope/run/events?path=run1&once=1").text
    assert events.startswith("event: progress\ndata: {") and events.rstrip().endswith("event: done\ndata: {}")

    report = client.get("/miniscope/report?path=run1&step=load")
    assert report.status_code == 200 and "Step <code>load</code>" in report.text
    assert client.get("/miniscope/report?path=run1&step=crop").status_code == 404  # not run
    assert client.get("/miniscope/report?path=run1&step=nope").status_code == 404
    page = client.get("/miniscope?path=run1&step=load").text
    assert 'href="/miniscope/report?path=run1&amp;step=load"' in page

    # run from a step, with a changed parameter; then resume with the run's own params.json
    started = client.post("/miniscope/run/start", data={"action": "from", "path": "run1", **form,
                                                         "from_step": "load", "load.line_split_width": "12"})
    assert started.status_code == 200 and "--from load" in started.text
    assert _wait_job(client, "run1")["state"] == "finished"
    assert json.loads((root / "run1" / "params.json").read_text())["load"]["line_split_width"] == 12
    started = client.post("/miniscope/run/start", data={"action": "resume", "path": "run1", "to_step": "load",
                                                         "workers": "0"})
    assert started.status_code == 200 and "run1/params.json" in started.text
    state = _wait_job(client, "run1")
    assert state["state"] == "finished" and {s["state"] for s in state["steps"][:2]} == {"reused"}
    assert client.post("/miniscope/run/start", data={"action": "from", "path": "run1"}).status_code == 400
    assert client.post("/miniscope/run/cancel", data={"path": "run1"}).status_code == 409  # nothing running


def test_cancel_a_running_job(root):
    client = client_for(ServeConfig(runs=root))
    form = {**_as_form(MiniscopeParams()), "input_dir": "videos", "out": "run2", "workers": "0"}
    assert client.post("/miniscope/run/start", data={"action": "new", **form}).status_code == 200
    cancelled = client.post("/miniscope/run/cancel", data={"path": "run2"})
    assert cancelled.status_code == 200 and "cancelled" in cancelled.text
    state = client.get("/miniscope/run/status?path=run2").json()
    assert state["state"] == "cancelled" and state["returncode"] != 0
    assert not (root / "run2" / "steps" / "export" / "complete.json").exists()


def test_step_progress_from_the_log(tmp_path):
    (tmp_path / "steps" / "config").mkdir(parents=True)
    (tmp_path / "steps" / "config" / "complete.json").write_text("{}")
    lines = ["x INFO step config: reusing stored result", "x INFO step load: running"]
    states = {s["name"]: s["state"] for s in step_progress(tmp_path, lines, running=True)}
    assert states["config"] == "reused" and states["load"] == "running" and states["motion"] == "pending"
    states = {s["name"]: s["state"] for s in step_progress(tmp_path, lines, running=False)}
    assert states["load"] == "stopped" and states["motion"] == "not run"
