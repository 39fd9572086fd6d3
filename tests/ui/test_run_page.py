"""The cryo-EM run page of ``scopeline serve`` (issue 13): counts, the paginated items
table, re-deciding with new thresholds (nothing measured again), manual overrides, the
plot data and the live counts feed."""

from __future__ import annotations

import json
import os
import re
import socket

import pandas as pd
import pytest

from scopeline.cryoem import dose_analysis
from scopeline.tools import open_run
from scopeline.ui import ServeConfig

from .conftest import client_for


def _counts(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', html)}


@pytest.fixture
def client(runs_root, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the UI measured a movie again")

    monkeypatch.setattr(dose_analysis, "measure_item", fail)
    return client_for(ServeConfig(runs=runs_root), live_interval_s=0.02)


def test_start_page_lists_cryoem_and_miniscope_runs(client):
    html = client.get("/").text
    assert re.search(r'<tr data-kind="dose">\s*<td><a href="/run\?path=dose1">dose1</a>', html)
    assert '<tr data-kind="miniscope">' in html and "mini" in html


def test_run_page_shows_counts_form_and_vendored_scripts(client):
    html = client.get("/run?path=dose1").text
    assert _counts(html) == {"accepted": 4, "discarded": 0, "failed": 0, "overridden": 0, "total": 4}
    assert 'name="max_diff" value="10.0"' in html
    assert 'name="pixel_size"' not in html  # a measurement parameter is not offered
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts and all(s.startswith("/static/vendor/") or s == "/static/app.js" for s in scripts)
    for src in scripts:
        assert client.get(src).status_code == 200


def test_items_table_is_paginated_server_side(client):
    first = client.get("/run/items?path=dose1&per_page=3&page=1").text
    second = client.get("/run/items?path=dose1&per_page=3&page=2").text
    assert first.count("<tr class=") == 3 and second.count("<tr class=") == 1
    assert "movie_0000.mrc" in first and "movie_0003.mrc" in second and "page 2 of 2" in second
    assert client.get("/run/items?path=dose1&per_page=100000").status_code == 422  # bounded


def test_threshold_change_redecides_without_measuring(client, runs_root):
    response = client.post("/run/redecide", data={"path": "dose1", "max_diff": "5"})
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "redecided"
    assert "outputs rewritten" in response.text
    assert _counts(client.get("/run/counts?path=dose1").text)["discarded"] == 1
    table = pd.read_csv(runs_root / "dose1" / "dose.csv")
    assert table["status"].tolist() == ["accepted"] * 3 + ["discarded"]
    discarded = client.get("/run/items?path=dose1&status=discarded").text
    assert discarded.count("<tr class=") == 1 and "movie_0003.mrc" in discarded
    assert open_run(runs_root / "dose1").params.max_diff == 5  # saved with the run


def test_bad_threshold_is_one_line_400_and_changes_nothing(client, runs_root):
    before = (runs_root / "dose1" / ".scopeline" / "run.json").read_text()
    response = client.post("/run/redecide", data={"path": "dose1", "max_diff": "lots"})
    assert response.status_code == 400 and "max_diff" in response.text
    assert (runs_root / "dose1" / ".scopeline" / "run.json").read_text() == before


def test_manual_override_beats_the_rule(client, runs_root):
    client.post("/run/redecide", data={"path": "dose1", "max_diff": "5"})
    key = open_run(runs_root / "dose1").records()[3]["key"]
    response = client.post("/run/override", data={"path": "dose1", "key": key, "decision": "accepted"})
    assert response.status_code == 204 and response.headers["HX-Trigger"] == "redecided"
    counts = _counts(client.get("/run/counts?path=dose1").text)
    assert counts["discarded"] == 0 and counts["accepted"] == 4 and counts["overridden"] == 1
    assert pd.read_csv(runs_root / "dose1" / "dose.csv")["status"].tolist()[-1] == "accepted"
    assert "(manual; rule: discarded)" in client.get("/run/items?path=dose1").text
    client.post("/run/override", data={"path": "dose1", "key": key, "decision": "rule"})
    assert _counts(client.get("/run/counts?path=dose1").text)["discarded"] == 1
    assert client.post("/run/override", data={"path": "dose1", "key": "nope", "decision": "accepted"}).status_code == 404
    assert client.post("/run/override", data={"path": "dose1", "key": key, "decision": "maybe"}).status_code == 400


def test_plot_data_follows_the_decision(client):
    client.post("/run/redecide", data={"path": "dose1", "max_diff": "5"})
    plots = {p["id"]: p for p in client.get("/run/data?path=dose1").json()["plots"]}
    assert plots["accept_rate"]["series"]["accepted"]["y"] == [100.0, 100.0, 100.0, 75.0]
    plot = plots["dose_vs_time"]
    assert plot["id"] == "dose_vs_time" and plot["series"]["discarded"]["x"] == [3]
    assert plot["series"]["accepted"]["x"] == [0, 1, 2]
    low, high = plot["band"]
    assert low == pytest.approx(plot["reference"] * 0.95) and high == pytest.approx(plot["reference"] * 1.05)
    assert low < 1.0 < high < plot["series"]["discarded"]["y"][0]


def _events(lines) -> list[tuple[str, dict]]:
    out, event = [], None
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            out.append((event, json.loads(line[6:])))
            if event == "done":
                break
    return out


def test_live_feed_of_a_finished_run_sends_counts_then_done(client):
    with client.stream("GET", "/run/events?path=dose1") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response.iter_lines())
    assert [e for e, _ in events] == ["counts", "done"]
    assert events[0][1]["accepted"] == 4 and events[0][1]["running"] is False


def test_live_feed_streams_changes_while_the_run_goes_on(client, runs_root):
    """A running run (its lock held by a live process): each change of its state is sent;
    the feed ends when the run ends."""
    state = runs_root / "dose1" / ".scopeline"
    (state / "lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                            "tool": "dose", "since": "now"}))
    run = open_run(runs_root / "dose1")
    key = run.records()[0]["key"]
    seen = []
    with client.stream("GET", "/run/events?path=dose1") as response:
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            data = json.loads(line[6:])
            seen.append(data)
            if len(seen) == 1:
                assert data["running"] and data["discarded"] == 0
                run.set_override(key, "discarded")  # what a user does while movies arrive
            elif len(seen) == 2:
                assert data["discarded"] == 1 and data["overridden"] == 1
                assert open_run(runs_root / "dose1").redecide(max_diff=5) is None  # saved, applied live
            elif len(seen) == 3:
                assert data["discarded"] == 2  # the new threshold reaches the feed
                (state / "lock").unlink()
            elif len(seen) == 4:
                assert data["running"] is False and data["discarded"] == 2  # the run's end is sent
            elif data == {}:
                break
    assert len(seen) == 5  # counts, after the override, after the new threshold, at the end, done


def test_outputs_are_served_sandboxed_and_hidden_state_is_not(client, runs_root):
    html = client.get("/run?path=dose1").text
    assert '<a href="/files/dose1/dose.csv"' in html and "run.json" not in html
    response = client.get("/files/dose1/dose.csv")
    assert response.status_code == 200 and response.text == (runs_root / "dose1" / "dose.csv").read_text()
    assert response.headers["content-security-policy"] == "sandbox"
    assert client.get("/files/dose1/.scopeline/run.json").status_code == 404
    assert client.get("/files/dose1").status_code == 404  # no folder listings
    client.post("/run/redecide", data={"path": "dose1", "max_diff": "5"})
    assert "discarded" in client.get("/files/dose1/dose.csv").text  # the re-decided table


def test_accept_rate_over_time():
    from scopeline.ui.runs import accept_rate

    rows = [{"status": s} for s in ["accepted", "failed", "discarded", "accepted", "pending", "accepted"]]
    assert accept_rate(rows, 2) == {"x": [0, 2, 3, 5], "y": [100.0, 50.0, 50.0, 100.0]}
    assert accept_rate(rows, 20)["y"][-1] == pytest.approx(75.0)


def test_warnings_shown_newest_first_and_escaped(client, runs_root):
    assert 'data-total="0"' in client.get("/run/warnings?path=dose1").text
    lines = [f"window {i}: 40 % of movies outside the band" for i in range(60)] + ["<b>odd</b> name"]
    (runs_root / "dose1" / "warnings.txt").write_text("\n".join(lines) + "\n")
    html = client.get("/run/warnings?path=dose1").text
    assert 'data-total="61"' in html and "Warnings (61, the latest 50)" in html
    assert html.index("&lt;b&gt;odd&lt;/b&gt; name") < html.index("window 59:")  # newest first
    assert "window 10:" not in html and "<b>odd</b>" not in html
