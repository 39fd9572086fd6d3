"""Miniscope parameters without code (issue 13, first part): a form generated from
``MiniscopeParams`` with each field's description, validation, load and save."""

from __future__ import annotations

import re

import pytest

from scopeline.miniscope import MiniscopeParams, load_params
from scopeline.ui import ServeConfig
from scopeline.ui.forms import form_fields, parse_form

from .conftest import client_for


def _as_form(params: MiniscopeParams) -> dict[str, str]:
    """What a browser submits for the form of ``params`` (checkboxes only when ticked)."""
    form = {}
    for section in form_fields(MiniscopeParams, params):
        for f in section["fields"]:
            if f["kind"] == "checkbox":
                if f["value"]:
                    form[f["name"]] = "on"
            else:
                form[f["name"]] = str(f["value"])
    return form


def test_form_round_trips_every_parameter():
    changed = MiniscopeParams()
    changed.detect.min_pnr = 8.5
    changed.config.animal_id = "mouse 7"
    changed.load.downsample_method = "mean"
    changed.config.compress_store = False
    params, errors = parse_form(MiniscopeParams, _as_form(changed))
    assert errors == {} and params == changed
    assert parse_form(MiniscopeParams, _as_form(MiniscopeParams()))[0] == MiniscopeParams()


def test_form_reports_each_bad_field_by_name():
    form = _as_form(MiniscopeParams())
    form.update({"detect.min_pnr": "-3", "config.fps": "fast", "config.animal_id": ""})
    json_field = next(f["name"] for s in form_fields(MiniscopeParams) for f in s["fields"] if f["kind"] == "json")
    form[json_field] = "[1,"
    params, errors = parse_form(MiniscopeParams, form)
    assert params is None
    assert set(errors) == {"detect.min_pnr", "config.fps", "config.animal_id", json_field}
    assert "greater than or equal to 0" in errors["detect.min_pnr"]


@pytest.fixture
def client(runs_root):
    (runs_root / "mini" / "params.json").write_text('{"detect": {"min_pnr": 9.0}}')
    (runs_root / "mini" / "steps" / "load").mkdir()
    (runs_root / "mini" / "steps" / "load" / "complete.json").write_text("{}")
    return client_for(ServeConfig(runs=runs_root))


def test_run_page_shows_its_parameters_steps_and_descriptions(client):
    assert '<a href="/miniscope?path=mini">mini</a>' in client.get("/").text
    html = client.get("/miniscope?path=mini").text
    assert re.search(r'name="detect.min_pnr" value="9.0"', html)
    assert re.search(r'name="config.fps" value="30.0" min="0"', html)
    assert "frame rate of the recording (frames/s)" in html  # the field's description
    assert 'data-step="load"><a href="/miniscope/report?path=mini&amp;step=load">load ✓</a>' in html  # its report
    assert 'class="step todo" data-step="detect"' in html
    assert 'name="save_to" value="mini_params.json"' in html
    assert client.get("/miniscope?path=dose1").status_code == 404


def test_check_and_save_a_parameter_file(client, runs_root):
    form = _as_form(load_params(runs_root / "mini" / "params.json"))
    assert client.post("/miniscope/params/check", data=form).text.count('data-errors="0"') == 1
    bad = client.post("/miniscope/params/check", data={**form, "detect.min_pnr": "-1"})
    assert bad.status_code == 400 and "detect.min_pnr" in bad.text and 'data-errors="1"' in bad.text

    form["detect.min_pnr"] = "7.5"
    saved = client.post("/miniscope/params/save", data={**form, "save_to": "mini_params.json"})
    assert saved.status_code == 200 and "saved mini_params.json" in saved.text
    assert load_params(runs_root / "mini_params.json").detect.min_pnr == 7.5
    assert 'name="detect.min_pnr" value="7.5"' in client.get("/miniscope/params?path=mini_params.json").text

    again = client.post("/miniscope/params/save", data={**form, "save_to": "mini_params.json"})
    assert again.status_code == 409  # no silent overwrite
    assert client.post("/miniscope/params/save",
                       data={**form, "save_to": "mini_params.json", "overwrite": "on"}).status_code == 200
    for target, code in [("mini/params.json", 400), ("notes.txt", 400), ("nowhere/p.json", 400)]:
        assert client.post("/miniscope/params/save", data={**form, "save_to": target}).status_code == code, target
    assert load_params(runs_root / "mini" / "params.json").detect.min_pnr == 9.0  # the run's own file untouched
    assert not client.post("/miniscope/params/save", data={**form, "detect.min_pnr": "-1",
                                                          "save_to": "x.json"}).is_success
    assert not (runs_root / "x.json").exists()


def test_new_parameter_file_starts_from_the_defaults(client):
    html = client.get("/miniscope/params").text
    assert f'name="detect.min_pnr" value="{MiniscopeParams().detect.min_pnr}"' in html
