"""The one shape of the cryo-EM tools (issue 12): keyed journal, re-deciding without
re-measuring, overrides, the output-folder lock, retrying changed failed files, the optics
table, the worker watchdog and the option errors of the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from scopeline.cryoem import dose_analysis, maxshift_run
from scopeline.cryoem.cleaner import clean as clean_module
from scopeline.cryoem.cleaner.clean import CleanParams, run_clean
from scopeline.cryoem.dose import DoseParams
from scopeline.cryoem.dose_analysis import run_dose
from scopeline.cryoem.maxshift_run import run_maxshift
from scopeline.errors import ConfigError, WorkersLostError
from scopeline.stream import StreamOptions
from scopeline.tools import open_run
from tests.cryoem.test_cleaner_clean import obvious_micrograph, obvious_picks, write_mrc, write_star
from tests.cryoem.test_dose_run import PIXEL, make_session, write_movie
from tests.cryoem.test_maxshift import _stars

BOX = 64


def _forbid(monkeypatch, module, name):
    def fail(*args, **kwargs):
        raise AssertionError(f"{name} called: something was measured again")

    monkeypatch.setattr(module, name, fail)


# --------------------------------------------------------------------------- keyed journal


def test_dose_new_pixel_size_measures_again(tmp_path):
    """Fails on main: the dose journal ignored the measurement parameters."""
    make_session(tmp_path / "m", [1.0] * 4)
    first = run_dose([tmp_path / "m"], tmp_path / "out", DoseParams(samples=2), workers=0)
    assert first["reference_dose"] == pytest.approx(1.0, rel=0.05)
    again = run_dose([tmp_path / "m"], tmp_path / "out", DoseParams(samples=2, pixel_size=2 * PIXEL), workers=0)
    assert again["reference_dose"] == pytest.approx(0.25, rel=0.05)  # dose ~ 1 / pixel area
    table = pd.read_csv(tmp_path / "out" / "dose.csv")
    assert table["pixel_size"].eq(2 * PIXEL).all() and len(table) == 4


def test_dose_new_threshold_does_not_measure_again(tmp_path, monkeypatch):
    make_session(tmp_path / "m", [1.0, 1.0, 1.0, 1.08])
    run_dose([tmp_path / "m"], tmp_path / "out", DoseParams(samples=4, max_diff=10), workers=0)
    assert pd.read_csv(tmp_path / "out" / "dose.csv")["status"].tolist() == ["accepted"] * 4
    _forbid(monkeypatch, dose_analysis, "measure_item")
    run_dose([tmp_path / "m"], tmp_path / "out", DoseParams(samples=4, max_diff=5), workers=0)
    assert pd.read_csv(tmp_path / "out" / "dose.csv")["status"].tolist() == ["accepted"] * 3 + ["discarded"]


# --------------------------------------------------------------------------- the Run API


def test_finished_runs_redecide_without_measuring(tmp_path, monkeypatch):
    """A threshold change on a finished run re-decides every tool without re-measuring."""
    make_session(tmp_path / "m", [1.0, 1.0, 1.0, 1.08])
    run_dose([tmp_path / "m"], tmp_path / "dose", DoseParams(samples=4, max_diff=10), workers=0)
    _stars(tmp_path / "s", ["m1", "m2"])
    run_maxshift([str(tmp_path / "s" / "*.star")], tmp_path / "maxshift")
    (tmp_path / "c").mkdir()
    write_mrc(tmp_path / "c" / "mic01.mrc", obvious_micrograph())
    inside, outside = obvious_picks()
    write_star(tmp_path / "c" / "mic01_autopick.star", np.r_[inside, outside])
    run_clean([tmp_path / "c" / "mic01.mrc"], [tmp_path / "c" / "mic01_autopick.star"], tmp_path / "clean",
              CleanParams(box_size=BOX))

    _forbid(monkeypatch, dose_analysis, "measure_item")
    _forbid(monkeypatch, maxshift_run, "measure_item")
    _forbid(monkeypatch, maxshift_run, "load_trajectory")
    _forbid(monkeypatch, clean_module, "clean_one")
    _forbid(monkeypatch, clean_module, "read_micrograph")
    monkeypatch.setattr(clean_module, "BadRegionModel", None)

    dose = open_run(tmp_path / "dose")
    assert dose.tool == "dose" and len(dose.records()) == 4
    assert [r["status"] for r in dose.decide(max_diff=5)] == ["accepted"] * 3 + ["discarded"]
    assert pd.read_csv(tmp_path / "dose" / "dose.csv")["status"].eq("accepted").all()  # decide writes nothing
    summary = dose.redecide(max_diff=5)
    assert summary["n_discarded"] == 1
    assert pd.read_csv(tmp_path / "dose" / "dose.csv")["status"].tolist()[-1] == "discarded"

    shifts = open_run(tmp_path / "maxshift")
    assert shifts.redecide(max_movie_shift=1.5)["n_discarded"] == 2  # path 2 Å
    assert pd.read_csv(tmp_path / "maxshift" / "motion.csv")["status"].eq("discarded").all()

    clean = open_run(tmp_path / "clean")
    assert clean.redecide(threshold=-1)["n_kept"] == 20
    assert clean.redecide(threshold=0.99)["n_kept"] < 20
    with pytest.raises(ConfigError, match="box_size"):
        clean.redecide(box_size=10)  # needs measuring again: refused, nothing changed


def test_overrides_beat_the_rule_and_reach_the_outputs(tmp_path):
    _stars(tmp_path / "s", ["m1", "m2"])
    _stars(tmp_path / "s", ["m3"], step=30.0)
    run_maxshift([str(tmp_path / "s" / "*.star")], tmp_path / "out")
    run = open_run(tmp_path / "out")
    rows = {Path(r["movie"]).name: r for r in run.decide()}
    assert rows["m3"]["status"] == "discarded"
    run.set_override(rows["m3"]["key"], "accepted")
    run.set_override(rows["m1"]["key"], "discarded")
    summary = run.redecide()
    assert summary["n_accepted"] == 2 and summary["n_overridden"] == 2
    table = pd.read_csv(tmp_path / "out" / "motion.csv").set_index("movie")
    assert table.loc["m3", "status"] == "accepted" and table.loc["m1", "status"] == "discarded"
    run.set_override(rows["m3"]["key"], None)
    assert run.redecide()["n_accepted"] == 1
    with pytest.raises(ConfigError):
        run.set_override(rows["m1"]["key"], "maybe")


# --------------------------------------------------------------------------- defect 1: lock


def test_second_run_on_a_folder_in_use_stops_naming_the_other(tmp_path):
    make_session(tmp_path / "m", [1.0] * 2)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = tmp_path / "out" / ".scopeline" / "lock"
        lock.parent.mkdir(parents=True)
        lock.write_text(json.dumps({"pid": other.pid, "host": os.uname().nodename, "tool": "dose",
                                    "since": "now"}))
        with pytest.raises(ConfigError, match=f"pid {other.pid}"):
            run_dose([tmp_path / "m"], tmp_path / "out", DoseParams(samples=2), workers=0)
        assert not (tmp_path / "out" / "dose.csv").exists()
    finally:
        other.kill()
        other.wait()
    # the owner is dead now: a stale lock is taken over
    summary = run_dose([tmp_path / "m"], tmp_path / "out", DoseParams(samples=2), workers=0)
    assert summary["n_accepted"] == 2 and not lock.exists()


def test_two_concurrent_cli_runs_one_stops(tmp_path):
    make_session(tmp_path / "m", [1.0] * 8)
    env = {**os.environ, "SCOPELINE_NO_PROGRESS": "1"}
    args = [sys.executable, "-m", "scopeline.cli", "dose", str(tmp_path / "m"), "--out", str(tmp_path / "out"),
            "--workers", "0", "--samples", "2", "--watch", "--idle-timeout", "30", "--poll-interval", "0.1",
            "--stop-file", str(tmp_path / "STOP"), "--min-file-age", "0"]
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = tmp_path / "out" / ".scopeline" / "lock"
        deadline = time.time() + 60
        while not lock.exists() and time.time() < deadline:
            time.sleep(0.05)
        second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert len(second.stderr.strip().splitlines()) == 1 and f"pid {first.pid}" in second.stderr
    finally:
        (tmp_path / "STOP").touch()
        first.communicate(timeout=60)
    assert first.returncode == 0
    assert len(pd.read_csv(tmp_path / "out" / "dose.csv")) == 8


# --------------------------------------------------------------------------- defect 2: retry


def test_failed_movie_replaced_by_a_good_copy_is_measured_again(tmp_path):
    paths = make_session(tmp_path / "m", [1.0] * 3)
    good = paths[1].read_bytes()
    paths[1].write_bytes(good[: len(good) // 2])  # still being copied
    first = run_dose([tmp_path / "m"], tmp_path / "out", DoseParams(samples=2), workers=0)
    assert first["n_failed"] == 1
    again = run_dose([tmp_path / "m"], tmp_path / "out", DoseParams(samples=2), workers=0)
    assert again["n_failed"] == 1  # unchanged file: not retried, still failed
    paths[1].write_bytes(good)
    fixed = run_dose([tmp_path / "m"], tmp_path / "out", DoseParams(samples=2), workers=0)
    assert fixed["n_failed"] == 0 and fixed["n_accepted"] == 3
    table = pd.read_csv(tmp_path / "out" / "dose.csv")
    assert [Path(m).name for m in table.movie] == [p.name for p in paths]  # order kept, no duplicate


def test_failed_motion_file_and_micrograph_are_retried_when_fixed(tmp_path):
    (star,) = _stars(tmp_path / "s", ["m1"])
    good = star.read_text()
    star.write_text(good[: len(good) // 3])
    assert run_maxshift([str(star)], tmp_path / "ms")["n_failed"] == 1
    star.write_text(good)
    assert run_maxshift([str(star)], tmp_path / "ms")["n_accepted"] == 1

    (tmp_path / "c").mkdir()
    mic = tmp_path / "c" / "mic.mrc"
    mic.write_bytes(b"half a file")
    write_star(tmp_path / "c" / "mic_autopick.star", obvious_picks()[1])
    params = CleanParams(box_size=BOX)
    assert run_clean([mic], [tmp_path / "c"], tmp_path / "cl", params)["n_failed"] == 1
    write_mrc(mic, obvious_micrograph()[:512, :512])
    summary = run_clean([mic], [tmp_path / "c"], tmp_path / "cl", params)
    assert summary["n_failed"] == 0 and summary["n_micrographs"] == 1


# --------------------------------------------------------------------------- defect 5 / 6


def test_workers_lost_stops_with_one_line_after_a_bounded_wait():
    from distributed import Client, LocalCluster

    from scopeline.parallel import gather_with_watchdog

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        futures = client.map(time.sleep, [0.5, 0.5], pure=False)
        cluster.scale(0)  # every worker gone, the tasks still pending
        start = time.monotonic()
        with pytest.raises(WorkersLostError, match="every Dask worker") as info:
            gather_with_watchdog(client, futures, no_worker_timeout=1.0, poll_interval=0.1)
        assert time.monotonic() - start < 20
        assert "\n" not in str(info.value)


def test_batch_size_zero_and_negative_workers_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="--batch-size"):
        StreamOptions(batch_size=0)
    make_session(tmp_path / "m", [1.0])
    with pytest.raises(ConfigError, match="--workers"):
        run_dose([tmp_path / "m"], tmp_path / "out", workers=-1)
    with pytest.raises(ConfigError, match="--workers"):
        run_maxshift([str(tmp_path / "m")], tmp_path / "out2", workers=-1)


# --------------------------------------------------------------------------- defect 11: optics


def test_folder_of_movies_gives_sets_with_an_optics_table(tmp_path):
    """Fails on main: no data_optics when the input was a folder."""
    make_session(tmp_path / "m", [1.0] * 3)
    run_dose([tmp_path / "m"], tmp_path / "out", DoseParams(samples=2), workers=0)
    blocks = starfile.read(tmp_path / "out" / "movies_accepted.star", always_dict=True)
    optics, movies = blocks["optics"], blocks["movies"]
    assert optics["rlnMicrographOriginalPixelSize"].tolist() == [pytest.approx(PIXEL)]
    assert optics["rlnOpticsGroup"].tolist() == [1] and "rlnOpticsGroupName" in optics
    assert movies["rlnOpticsGroup"].tolist() == [1, 1, 1]


# --------------------------------------------------------------------------- clean: sets, guard


def test_clean_writes_micrograph_sets_and_warns_when_mostly_bad(tmp_path, monkeypatch):
    (tmp_path / "c").mkdir()
    for name in ("clean", "bad"):
        write_mrc(tmp_path / "c" / f"{name}.mrc", obvious_micrograph()[:512, :512])
        write_star(tmp_path / "c" / f"{name}_autopick.star", [[100.0, 100.0], [300.0, 300.0]])
    real = clean_module.bad_region_probability

    def fake(image, box, model, params):
        prob, small = real(image, box, model, params)
        if image.mean() < 0:  # the "bad" micrograph, marked below: 75 % flagged
            prob = np.zeros_like(prob)
            prob[:, : 3 * prob.shape[1] // 4] = 1.0
        return prob, small

    bad = tmp_path / "c" / "bad.mrc"
    write_mrc(bad, -obvious_micrograph()[:512, :512])
    monkeypatch.setattr(clean_module, "bad_region_probability", fake)
    warnings = []
    summary = run_clean([tmp_path / "c"], [tmp_path / "c"], tmp_path / "out", CleanParams(box_size=BOX),
                        warn=warnings.append)
    mics = pd.read_csv(tmp_path / "out" / "micrographs.csv").set_index("micrograph")
    assert mics.loc["bad.mrc", "flagged_fraction"] == pytest.approx(0.75, abs=0.02)
    assert "off its domain" in mics.loc["bad.mrc", "warning"]
    assert pd.isna(mics.loc["clean.mrc", "warning"]) and mics.loc["clean.mrc", "flagged_fraction"] < 0.5
    assert summary["n_flagged_mostly_bad"] == 1 and any("off its domain" in w for w in warnings)
    assert "off its domain" in (tmp_path / "out" / "report.html").read_text()
    # both picks of "bad" lie in the flagged part: none kept, the micrograph is discarded
    assert mics.loc["bad.mrc", "status"] == "discarded" and mics.loc["clean.mrc", "status"] == "accepted"
    accepted = starfile.read(tmp_path / "out" / "micrographs_accepted.star", always_dict=True)
    assert [Path(n).name for n in accepted["micrographs"]["rlnMicrographName"]] == ["clean.mrc"]
    assert accepted["optics"]["rlnMicrographPixelSize"].tolist() == [pytest.approx(1.5)]
    discarded = starfile.read(tmp_path / "out" / "micrographs_discarded.star", always_dict=True)
    assert [Path(n).name for n in discarded["micrographs"]["rlnMicrographName"]] == ["bad.mrc"]


# --------------------------------------------------------------------------- CLI option errors


def _cli(*args):
    from typer.testing import CliRunner

    from scopeline.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"SCOPELINE_NO_PROGRESS": "1"})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    write_movie(folder / "a.mrc", 1.0)
    _stars(folder / "s", ["m1"])
    return folder


OPTION_ERRORS = [
    (["dose", "{m}", "--pixel-size", "0"], "--pixel-size", "greater than 0"),
    (["dose", "{m}", "--batch-size", "0"], "--batch-size", ">= 1"),
    (["dose", "{m}", "--workers", "-1"], "--workers", "positive number"),
    (["dose", "{m}", "--samples", "0"], "--samples", "greater than or equal to 1"),
    (["dose", "{m}", "--max-faulty", "120"], "--max-faulty", "less than or equal to 100"),
    (["dose", "{m}", "--eer-fractions", "0"], "--eer-fractions", "greater than or equal to 1"),
    (["dose", "{m}", "--min-file-age", "-5"], "--min-file-age", ">= 0"),
    (["dose", "{m}", "--idle-timeout", "-1"], "--idle-timeout", ">= 0"),
    (["maxshift", "{s}", "--rejection", "xor"], "--rejection", "'or', 'and', 'frame' or 'movie'"),
    (["maxshift", "{s}", "--max-frame-shift", "-2"], "--max-frame-shift", "greater than 0"),
    (["maxshift", "{s}", "--workers", "-1"], "--workers", "positive number"),
    (["clean", "--micrographs", "{m}", "--coords", "{m}", "--box-size", "-3"], "--box-size", "greater than 0"),
    (["clean", "--micrographs", "{m}", "--coords", "{m}", "--box-size", "64", "--threshold", "2"],
     "--threshold", "less than or equal to 1"),
    (["clean", "--micrographs", "{m}", "--coords", "{m}", "--box-size", "64", "--device", "tpu"],
     "--device", "'auto', 'cpu', 'cuda' or 'torch-cpu'"),
    (["clean", "--micrographs", "{m}", "--coords", "{m}", "--box-size", "64", "--workers", "-1"],
     "--workers", "positive number"),
    (["clean", "--micrographs", "{m}", "--coords", "{m}", "--box-size", "64", "--batch-size", "0"],
     "--batch-size", "equal to 1"),
]


@pytest.mark.parametrize("args, option, allowed", OPTION_ERRORS, ids=[" ".join(a[0:1] + a[-2:]) for a, _, _ in OPTION_ERRORS])
def test_option_value_errors_are_one_line_exit_2(inputs, tmp_path, args, option, allowed):
    """Fails on main for --batch-size 0 (exit 0, nothing done) and --workers -1 (hangs)."""
    args = [a.format(m=inputs / "a.mrc", s=inputs / "s") for a in args]
    result = _cli(*args, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and allowed in lines[0], result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.csv"))


# --------------------------------------------------------------------------- public API


def test_public_api_one_keyword_convention():
    import inspect

    from scopeline import clean, dose, maxshift

    for module in (dose, maxshift, clean):
        parameters = inspect.signature(module.run).parameters
        for keyword in ("stream", "scheduler", "workers"):
            assert parameters[keyword].kind is inspect.Parameter.KEYWORD_ONLY, (module.__name__, keyword)
        assert module.open_run is open_run and module.run.__doc__ and "Parameters" in module.run.__doc__


def test_watch_retries_a_movie_seen_while_still_being_copied(tmp_path):
    """Fails on main: with --min-file-age 0 a movie caught mid-copy stayed failed for good."""
    import threading

    paths = make_session(tmp_path / "m", [1.0] * 3)
    good = paths[2].read_bytes()
    paths[2].write_bytes(good[: len(good) // 3])
    out, stop = tmp_path / "out", tmp_path / "STOP"

    def copy_finishes():
        deadline = time.time() + 60
        while time.time() < deadline:
            journals = list((out / ".scopeline").glob("dose_*.jsonl")) if (out / ".scopeline").exists() else []
            if journals and '"failed"' in journals[0].read_text():
                break
            time.sleep(0.05)
        paths[2].write_bytes(good)
        time.sleep(0.5)
        stop.touch()

    thread = threading.Thread(target=copy_finishes)
    thread.start()
    options = StreamOptions(watch=True, stop_file=stop, poll_interval=0.05, idle_timeout=60, min_file_age=0)
    summary = run_dose([tmp_path / "m"], out, DoseParams(samples=2), stream=options, workers=0)
    thread.join()
    assert summary["n_failed"] == 0 and summary["n_accepted"] == 3
