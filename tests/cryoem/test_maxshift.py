"""``scopeline maxshift``: the worked cases of the original protocol's tests, RELION's own
accumulated motion on real files, malformed inputs, micrograph propagation and resuming."""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scopeline.cryoem.maxshift import (
    MaxShiftParams,
    early_late_motion,
    frame_steps,
    link_micrographs,
    max_frame_shift,
    measure_trajectory,
    normalized_name,
    reject,
    run_maxshift,
    total_path,
)
from scopeline.io.motion import Trajectory, format_relion_motion_star, read_relion_motion_star
from scopeline.io.star import read_star
from scopeline.stream import StreamOptions
from tests.shared_data import RELION

needs_relion = pytest.mark.skipif(not RELION.is_dir(), reason="shared RELION files not present")
PIXEL = 1.14  # Å/px of the original test movies


def trajectory_with_steps(steps_A: list[float], pixel_size: float = PIXEL, movie: str = "m.tif",
                          dose: float | None = None) -> Trajectory:
    """A trajectory whose consecutive steps have exactly these lengths (Å), turning as it goes."""
    angles = 0.7 * np.arange(len(steps_A))
    steps_px = np.asarray(steps_A)[:, None] / pixel_size * np.column_stack([np.cos(angles), np.sin(angles)])
    shifts = np.vstack([[0.0, 0.0], np.cumsum(steps_px, axis=0)])
    return Trajectory(movie=movie, shifts_px=shifts, pixel_size=pixel_size, dose_per_frame=dose)


def worked_movies() -> list[Trajectory]:
    """(total path, largest step) = (1.0017 Å, 0.124 Å) and (1.026 Å, 0.112 Å)."""
    return [trajectory_with_steps([0.124] + [(1.0017 - 0.124) / 9] * 9, movie="movie1.mrc"),
            trajectory_with_steps([0.112] + [(1.026 - 0.112) / 9] * 9, movie="movie2.mrc")]


def write_motion_star(path: Path, traj: Trajectory) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_relion_motion_star(traj))
    return path


def read_csv(out: Path) -> pd.DataFrame:
    df = pd.read_csv(out / "motion.csv")
    for column in ("error", "micrograph", "rejected_by"):
        df[column] = df[column].fillna("").astype(str)
    return df


# --------------------------------------------------------------------------- pure functions


def test_steps_path_and_largest_step_hand_worked():
    shifts = np.array([[0, 0], [3, 4], [3, 4], [3, 5]])
    steps = frame_steps(shifts)
    np.testing.assert_allclose(steps, [5, 0, 1])
    assert max_frame_shift(steps) == 5 and total_path(steps) == 6


def test_worked_movies_measure_as_specified():
    measured = [measure_trajectory(t) for t in worked_movies()]
    assert [m["total_path_A"] for m in measured] == pytest.approx([1.0017, 1.026], abs=1e-12)
    assert [m["max_frame_shift_A"] for m in measured] == pytest.approx([0.124, 0.112], abs=1e-12)


@pytest.mark.parametrize("rule, frame, movie, expected", [
    ("frame", 0.12, 45, [True, False]),
    ("movie", 0.13, 1.01, [False, True]),
    ("and", 0.11, 1.01, [False, True]),
    ("or", 0.12, 1.03, [True, False]),
    ("or", 0.13, 1.01, [False, True]),
    ("or", 0.12, 1.0, [True, True]),
    ("and", 0.12, 5, [False, False]),
])
def test_worked_cases_of_the_original_protocol(rule, frame, movie, expected):
    measured = [measure_trajectory(t) for t in worked_movies()]
    got = [reject(m["max_frame_shift_A"], m["total_path_A"], rule, frame, movie) for m in measured]
    assert got == expected


def test_comparisons_are_strict():
    assert reject(10.0, 45.0, "or", 10.0, 45.0) is False
    assert reject(10.0 + 1e-9, 1.0, "frame", 10.0, 45.0) is True


def test_early_shift_rejects_whatever_the_rule():
    assert reject(1.0, 2.0, "and", 10, 45, early=3.0, max_early_shift=2.5) is True
    assert reject(1.0, 2.0, "and", 10, 45, early=2.5, max_early_shift=2.5) is False
    assert reject(1.0, 2.0, "or", 10, 45, early=None, max_early_shift=2.5) is None


def test_unknown_largest_step_is_decided_only_when_the_path_bounds_it():
    # Only the total path is known (RELION accumulated motion): no step exceeds the path.
    assert reject(None, 8.0, "frame", 10, 45) is False
    assert reject(None, 12.0, "frame", 10, 45) is None
    assert reject(None, 12.0, "or", 10, 45) is None
    assert reject(None, 50.0, "or", 10, 45) is True
    assert reject(None, 12.0, "and", 10, 45) is False
    assert reject(None, 12.0, "movie", 10, 45) is False


def test_early_late_split_hand_worked():
    steps = np.array([1.0, 2.0, 3.0, 4.0])  # end on frames 2, 3, 4, 5
    # dose 1 e/Å²/frame: cumulative dose 2, 3, 4, 5 -> frames 2..4 are <= 4 e/Å²
    assert early_late_motion(steps, 1.0, 0.0, 4.0) == (6.0, 4.0)
    # pre-exposure 1.5: only frame 2 (3.5 e/Å²) is early
    assert early_late_motion(steps, 1.0, 1.5, 4.0) == (1.0, 9.0)
    # frames 1-2 unobserved: the steps end on frames 4..7
    assert early_late_motion(steps, 1.0, 0.0, 4.0, step_frames=np.array([4, 5, 6, 7])) == (1.0, 9.0)


# --------------------------------------------------------------------------- real RELION files


@needs_relion
@pytest.mark.parametrize("motion, table, row", [
    ("T20S_14sep05c_00024sq_00003hl_00002es_motion.star", "T20S_corrected_micrographs.star", 0),
    ("betagal_20170629_00021_frameImage_motion.star", "betagal_corrected_micrographs.star", 0),
])
def test_relion_accumulated_motion_reproduced(motion, table, row):
    """RELION sums Euclidean steps in (unbinned) pixels; early = steps ending on a frame whose
    cumulative dose is <= 4 e/Å². These rows come from the same RELION run as the STAR."""
    expected = read_star(RELION / table)["micrographs" if "betagal" in table else ""].iloc[row]
    m = measure_trajectory(read_relion_motion_star(RELION / motion), early_dose=4.0)
    for field, label in (("accum_total_px", "rlnAccumMotionTotal"), ("accum_early_px", "rlnAccumMotionEarly"),
                         ("accum_late_px", "rlnAccumMotionLate")):
        assert m[field] == pytest.approx(float(expected[label]), rel=1e-4), label
    assert m["total_path_A"] == pytest.approx(m["accum_total_px"] * m["pixel_size"])


@pytest.fixture
def relion_project(tmp_path) -> Path:
    """A RELION project folder: MotionCorr/job002 with corrected_micrographs.star (3.1, optics)
    and the motion STARs it names; 00022's STAR is missing."""
    if not RELION.is_dir():
        pytest.skip("shared RELION files not present")
    job = tmp_path / "project" / "MotionCorr" / "job002"
    (job / "Movies").mkdir(parents=True)
    shutil.copy(RELION / "betagal_20170629_00021_frameImage_motion.star", job / "Movies" / "20170629_00021_frameImage.star")
    for k in (23, 24):  # more movies of the same run: synthetic trajectories
        write_motion_star(job / "Movies" / f"20170629_000{k}_frameImage.star",
                          trajectory_with_steps([0.5 * k / 23] * 23, pixel_size=0.885, dose=1.277,
                                                movie=f"Movies/20170629_000{k}_frameImage.tiff"))
    text = (RELION / "betagal_corrected_micrographs.star").read_text()
    keep = [line for line in text.splitlines() if "job002" not in line
            or any(f"000{k}_frameImage_PS" in line for k in (21, 22, 23, 24))]
    (job / "corrected_micrographs.star").write_text("\n".join(keep) + "\n")
    return job


def test_corrected_micrographs_end_to_end(relion_project, tmp_path):
    out = tmp_path / "out"
    # movie 21 has a total path of 14.54 Å; synthetic 23: 11.5 Å, 24: 12.0 Å
    summary = run_maxshift([relion_project / "corrected_micrographs.star"], out,
                           MaxShiftParams(max_movie_shift=12.2))
    df = read_csv(out)
    # movie 22's motion STAR is missing: RELION's accumulated motion (19.56 px), with a warning
    assert list(df["status"]) == ["discarded", "discarded", "accepted", "accepted"]
    assert df.loc[0, "rejected_by"] == "movie"
    assert df.loc[0, "total_path_A"] == pytest.approx(16.429035 * 0.885, rel=1e-4)
    assert df.loc[0, "early_A"] == pytest.approx(2.504605 * 0.885, rel=1e-4)
    assert df.loc[1, "total_path_A"] == pytest.approx(19.556374 * 0.885, rel=1e-4)
    assert df.loc[1, "source"] == "relion_accumulated_motion" and df.loc[1, "rejected_by"] == "movie"
    warnings = (tmp_path / "out" / "warnings.txt").read_text()
    assert "1 movie(s): motion STAR (rlnMicrographMetadata) missing" in warnings
    assert "20170629_00022_frameImage.mrc" in warnings
    assert summary["micrographs"]["accepted"] == 2 and summary["micrographs"]["discarded"] == 2
    discarded = read_star(out / "micrographs_discarded.star")
    assert set(discarded) == {"optics", "micrographs"}
    assert discarded["micrographs"]["rlnMicrographName"].tolist() == [
        f"MotionCorr/job002/Movies/20170629_0002{k}_frameImage.mrc" for k in (1, 2)]
    assert float(discarded["micrographs"]["rlnAccumMotionTotal"].iloc[0]) == pytest.approx(16.429035)
    assert float(discarded["optics"]["rlnMicrographOriginalPixelSize"].iloc[0]) == 0.885
    movies = read_star(out / "movies_discarded.star")["movies"]
    assert movies["rlnMicrographMovieName"].tolist()[0] == "Movies/20170629_00021_frameImage.tiff"
    assert len(read_star(out / "micrographs_failed.star")["micrographs"]) == 0
    assert (out / "histograms.png").stat().st_size > 0 and (out / "report.html").exists()
    assert len(list((out / "trajectories").glob("discarded_*.png"))) == 1


@needs_relion
def test_relion30_accumulated_motion_only(tmp_path):
    """Without rlnMicrographMetadata: RELION's accumulated motion (pixels) and --pixel-size."""
    blocks = read_star(RELION / "T20S_corrected_micrographs.star")
    table = blocks[""].drop(columns=["rlnMicrographMetadata"])
    from scopeline.io.star import write_star

    write_star(tmp_path / "corrected.star", {"": table})
    out = tmp_path / "out"
    run_maxshift([tmp_path / "corrected.star"], out, MaxShiftParams(rejection="movie", max_movie_shift=18))
    df = read_csv(out)
    assert list(df["status"]) == ["failed"] * 4 and "no pixel size" in df.loc[0, "error"]
    # total path (Å) = 22.13, 13.29, 17.65, 20.35: frame rule only decidable when path <= 20
    run_maxshift([tmp_path / "corrected.star"], out,
                 MaxShiftParams(rejection="frame", max_frame_shift=20, pixel_size=0.98))
    df = read_csv(out)
    assert df["total_path_A"].tolist() == pytest.approx(
        [v * 0.98 for v in (22.132552, 13.562005, 18.007865, 20.770114)])
    assert list(df["status"]) == ["failed", "accepted", "accepted", "failed"]
    assert "largest frame step unknown" in df.loc[0, "error"]
    assert read_star(out / "micrographs_accepted.star")[""].shape[0] == 2


# --------------------------------------------------------------------------- whole runs


def test_worked_case_through_a_csv_run(tmp_path):
    rows = [{"movie": t.movie, "frame": i + 1, "x": x, "y": y, "pixel_size": PIXEL}
            for t in worked_movies() for i, (x, y) in enumerate(t.shifts_px)]
    pd.DataFrame(rows).to_csv(tmp_path / "shifts.csv", index=False)
    out = tmp_path / "out"
    summary = run_maxshift([tmp_path / "shifts.csv"], out,
                           MaxShiftParams(rejection="or", max_frame_shift=0.12, max_movie_shift=1.03))
    df = read_csv(out)
    assert list(df["movie"]) == ["movie1.mrc", "movie2.mrc"]
    assert list(df["status"]) == ["discarded", "accepted"]
    assert df["max_frame_shift_A"].tolist() == pytest.approx([0.124, 0.112])
    assert (summary["n_accepted"], summary["n_discarded"], summary["n_failed"]) == (1, 1, 0)


def test_malformed_inputs_become_failed_rows_and_the_run_goes_on(tmp_path):
    good = write_motion_star(tmp_path / "good.star", trajectory_with_steps([1.0] * 5, pixel_size=1.0, dose=1.0))
    text = good.read_text()
    (tmp_path / "no_shifts.star").write_text(text.split("data_global_shift")[0])
    with_nan = trajectory_with_steps([1.0] * 5, pixel_size=1.0)
    with_nan.shifts_px[2, 0] = np.nan
    write_motion_star(tmp_path / "nan.star", with_nan)
    one = write_motion_star(tmp_path / "one_frame.star", Trajectory("one.tif", np.zeros((1, 2)), pixel_size=1.0))
    table = tmp_path / "corrected_micrographs.star"
    table.write_text("data_\nloop_\n_rlnMicrographName #1\n_rlnMicrographMetadata #2\n"
                     "mics/a.mrc Movies/does_not_exist.star\n")
    csv = tmp_path / "bad.csv"
    csv.write_text("film,frame,x,y\n")
    inputs = [good, tmp_path / "no_shifts.star", tmp_path / "nan.star", one, table, csv]
    out = tmp_path / "out"
    summary = run_maxshift(inputs, out)
    df = read_csv(out)
    assert list(df["status"]) == ["accepted"] + ["failed"] * 5
    errors = df["error"].tolist()
    assert "no data_global_shift block" in errors[1] and "no_shifts.star" in errors[1]
    assert "NaN" in errors[2] and "nan.star" in errors[2]
    assert "only 1 aligned frame" in errors[3]
    assert "Movies/does_not_exist.star does not exist" in errors[4]
    assert "missing column(s) movie" in errors[5] and "bad.csv" in errors[5]
    assert summary["n_failed"] == 5
    assert len(read_star(out / "movies_failed.star")["movies"]) == 5


def test_empty_sets_are_valid_star_files_with_labels(tmp_path):
    star = write_motion_star(tmp_path / "a.star", trajectory_with_steps([0.5] * 5, pixel_size=1.0))
    out = tmp_path / "out"
    run_maxshift([star], out)
    for name in ("movies_discarded.star", "movies_failed.star"):
        text = (out / name).read_text()
        assert "data_movies" in text and "_rlnMicrographMovieName #1" in text
        block = read_star(out / name)["movies"]
        assert len(block) == 0 and "rlnAccumMotionTotal" in block.columns
    assert len(read_star(out / "movies_accepted.star")["movies"]) == 1


def test_micrographs_propagate_prefer_dose_weighted_and_report_lonely_movies(tmp_path):
    movies = {"a": [0.5] * 5, "b": [20.0] * 5, "c": [0.5] * 5}
    inputs = [write_motion_star(tmp_path / "motion" / f"{name}.star",
                                trajectory_with_steps(steps, pixel_size=1.0, movie=f"frames/{name}.tiff"))
              for name, steps in movies.items()]
    mics = tmp_path / "micrographs.star"
    mics.write_text("data_micrographs\nloop_\n_rlnMicrographName #1\n_rlnCtfMaxResolution #2\n"
                    "mc/a.mrc 4.1\nmc/a_DW.mrc 4.0\nmc/b_DW.mrc 5.0\nmc/z_DW.mrc 3.0\n")
    out = tmp_path / "out"
    summary = run_maxshift(inputs, out, micrographs=mics)
    df = read_csv(out)
    assert list(df["status"]) == ["accepted", "discarded", "accepted"]
    assert list(df["micrograph"]) == ["mc/a_DW.mrc", "mc/b_DW.mrc", ""]
    accepted = read_star(out / "micrographs_accepted.star")["micrographs"]
    assert accepted["rlnMicrographName"].tolist() == ["mc/a_DW.mrc"]
    assert float(accepted["rlnCtfMaxResolution"].iloc[0]) == 4.0  # the input row, unchanged
    assert read_star(out / "micrographs_discarded.star")["micrographs"]["rlnMicrographName"].tolist() == ["mc/b_DW.mrc"]
    assert read_star(out / "micrographs_unmatched.star")["micrographs"]["rlnMicrographName"].tolist() == ["mc/z_DW.mrc"]
    warnings = (out / "warnings.txt").read_text()
    assert "1 movie(s) without a micrograph" in warnings and "frames/c.tiff" in warnings
    assert summary["micrographs"]["without_micrograph"] == 1


def test_name_matching_between_movies_and_micrographs():
    assert normalized_name("Movies/14sep05c_00024sq_00003hl_00002es.frames.out.mrc") == \
        normalized_name("MotionCorr/job019/Movies/14sep05c_00024sq_00003hl_00002es_frames_out_noDW.mrc")
    assert normalized_name("logs/movie_001.mrc0-Full.log") == normalized_name("mics/movie_001_DW.mrc")
    links, unmatched, superseded = link_micrographs(
        [{"movie": "x/m1.tif"}, {"movie": "x/m2.tif"}],
        [{"rlnMicrographName": "m2.mrc"}, {"rlnMicrographName": "m1_DW.mrc"}, {"rlnMicrographName": "m1.mrc"}])
    assert links == {0: 1, 1: 0} and unmatched == [] and superseded == [2]


# --------------------------------------------------------------------------- streaming / resume


def _stars(folder: Path, names: list[str], step: float = 0.5) -> list[Path]:
    return [write_motion_star(folder / f"{n}.star", trajectory_with_steps([step] * 4, pixel_size=1.0, movie=n))
            for n in names]


def _journal(out: Path) -> Path:
    (journal,) = (out / ".scopeline").glob("maxshift_*.jsonl")
    return journal


def _journal_keys(out: Path) -> list[str]:
    lines = _journal(out).read_text().splitlines()
    return [json.loads(line)["key"] for line in lines if line.strip().endswith("}")]


def test_resume_processes_every_item_exactly_once(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    first = _stars(folder, ["m1", "m2", "m3"])
    run_maxshift([str(folder / "*.star")], out)
    _stars(folder, ["m4", "m5"])
    first[0].unlink()  # already in the journal: not read again, still reported
    with open(_journal(out), "a") as handle:
        handle.write('{"key": "torn')  # a run killed while writing
    summary = run_maxshift([str(folder / "*.star")], out)
    df = read_csv(out)
    assert list(df["movie"]) == ["m1", "m2", "m3", "m4", "m5"]
    assert summary["n_accepted"] == 5
    keys = _journal_keys(out)
    assert len(keys) == len(set(keys)) == 5


def test_resume_with_new_thresholds_redecides_without_rereading(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    _stars(folder, ["m1", "m2"])
    run_maxshift([str(folder / "*.star")], out)
    assert list(read_csv(out)["status"]) == ["accepted", "accepted"]
    for star in folder.glob("*.star"):  # re-read, they would fail
        star.write_text("garbage")
    run_maxshift([str(folder / "*.star")], out, MaxShiftParams(max_movie_shift=1.5))
    assert list(read_csv(out)["status"]) == ["discarded", "discarded"]  # path 2 Å > 1.5 Å


def test_watch_picks_up_new_files_until_the_stop_file(tmp_path):
    folder, out, stop = tmp_path / "in", tmp_path / "out", tmp_path / "STOP"
    _stars(folder, ["m1"])

    def acquire():
        time.sleep(0.3)
        _stars(folder, ["m2", "m3"], step=30.0)
        time.sleep(0.3)
        stop.touch()

    thread = threading.Thread(target=acquire)
    thread.start()
    options = StreamOptions(watch=True, stop_file=stop, poll_interval=0.05, idle_timeout=30)
    summary = run_maxshift([str(folder / "*.star")], out, stream=replace(options, min_file_age=0))
    thread.join()
    df = read_csv(out)
    assert list(df["movie"]) == ["m1", "m2", "m3"]
    assert list(df["status"]) == ["accepted", "discarded", "discarded"]
    assert summary["closed"] is True


@pytest.mark.slow
def test_two_dask_workers_give_the_serial_results(tmp_path):
    folder = tmp_path / "in"
    for k in range(40):
        write_motion_star(folder / f"m{k:02d}.star", trajectory_with_steps([0.2 * k] * 6, pixel_size=1.0, movie=f"m{k}"))
    run_maxshift([str(folder / "*.star")], tmp_path / "serial")
    run_maxshift([str(folder / "*.star")], tmp_path / "dask", workers=2)
    pd.testing.assert_frame_equal(read_csv(tmp_path / "serial"), read_csv(tmp_path / "dask"))


def test_pixel_size_option_overrides_the_files_and_says_so(tmp_path):
    star = write_motion_star(tmp_path / "a.star", trajectory_with_steps([1.0] * 4, pixel_size=1.0))
    out = tmp_path / "out"
    run_maxshift([star], out, MaxShiftParams(pixel_size=2.0))
    assert read_csv(out)["total_path_A"].tolist() == pytest.approx([8.0])
    assert "--pixel-size 2 Å overrides the files' pixel size (1 Å)" in (out / "warnings.txt").read_text()


def test_motioncor2_logs_and_scipion_sets_through_a_run(tmp_path):
    from tests.io.test_motion import MOTIONCOR2_LOG, write_scipion_movies

    log = tmp_path / "movie_001.mrc0-Full.log"
    log.write_text(MOTIONCOR2_LOG.replace("# Pixel size: 1.06\n", ""))
    sqlite = tmp_path / "movies.sqlite"
    write_scipion_movies(sqlite, [("m1.tif", [0, 3, 6], [0, 4, 8])], sampling=0.5)
    out = tmp_path / "out"
    run_maxshift([log, sqlite], out, MaxShiftParams(max_frame_shift=2.4))
    df = read_csv(out)
    assert list(df["movie"]) == ["movie_001.mrc", "m1.tif"]
    assert list(df["status"]) == ["failed", "discarded"]  # the log has no pixel size
    assert "no pixel size" in df.loc[0, "error"]
    assert df.loc[1, "max_frame_shift_A"] == pytest.approx(2.5) and df.loc[1, "total_path_A"] == pytest.approx(5.0)
    run_maxshift([log, sqlite], tmp_path / "out2", MaxShiftParams(max_frame_shift=2.4, pixel_size=1.0))
    df = read_csv(tmp_path / "out2")
    assert df["total_path_A"].tolist() == pytest.approx([1.5, 10.0])  # 0.5 + 1.0 px at 1 Å/px


def test_histogram_bins_put_an_edge_on_the_limit():
    from scopeline.cryoem.maxshift_plots import bins_with_edge_at, sample_evenly

    bins = bins_with_edge_at([1.2, 1.5, 2.9, 30.3], 10.0, 20)
    assert np.isclose(bins, 10.0).any() and bins[0] <= 1.2 and bins[-1] >= 30.3
    assert np.allclose(np.diff(bins), np.diff(bins)[0])
    assert sample_evenly(list(range(10)), 4) == [0, 3, 6, 9] and sample_evenly([1, 2], 5) == [1, 2]
