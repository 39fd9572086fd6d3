"""`scopeline dose` end to end on synthetic Poisson counting movies with known dose."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from scopeline.cryoem.dose import DoseParams
from scopeline.cryoem.dose_analysis import run_dose

PIXEL = 1.25  # Å/px


def write_movie(path: Path, dose_per_frame: float, n_frames: int = 5, shape=(64, 64), seed=0,
                pixel_size: float | None = PIXEL) -> Path:
    """Counting-mode movie: Poisson electrons per pixel, mean = dose * pixel area."""
    rng = np.random.default_rng(seed)
    lam = dose_per_frame * PIXEL**2
    stack = rng.poisson(lam, size=(n_frames, *shape)).astype(np.uint8)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(stack)
        if pixel_size:
            mrc.voxel_size = pixel_size
    return path


def make_session(folder: Path, doses, shape=(64, 64)) -> list[Path]:
    """Movies appear whole, as acquisition software moves finished files into place."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, d in enumerate(doses):
        final = folder / f"movie_{i:04d}.mrc"
        if not final.exists():
            tmp = write_movie(folder / f".movie_{i:04d}.part", d, n_frames=3 + i % 4, shape=shape, seed=i)
            tmp.rename(final)
        paths.append(final)
    return paths


def test_estimated_dose_within_one_percent(tmp_path):
    make_session(tmp_path / "m", [1.6] * 6, shape=(256, 256))
    summary = run_dose([tmp_path / "m"], tmp_path / "out", DoseParams(samples=3), workers=0)
    table = pd.read_csv(tmp_path / "out" / "dose.csv")
    assert np.allclose(table["mean_dose"], 1.6, rtol=0.01)
    assert summary["reference_dose"] == pytest.approx(1.6, rel=0.01)
    assert summary["reference_source"] == "experimental"
    assert summary["n_accepted"] == 6


def test_sustained_shift_is_discarded_and_warned(tmp_path):
    doses = [1.0] * 30 + [1.2] * 20  # the beam changed after movie 30
    make_session(tmp_path / "m", doses)
    warnings = []
    summary = run_dose([tmp_path / "m"], tmp_path / "out",
                       DoseParams(samples=10, window=10, max_faulty=30), workers=0,
                       warn=warnings.append)
    table = pd.read_csv(tmp_path / "out" / "dose.csv")
    assert (table["status"][:30] == "accepted").all()
    assert (table["status"][30:] == "discarded").all()
    assert summary["n_discarded"] == 20
    text = (tmp_path / "out" / "warnings.txt").read_text()
    assert "movies 31-40" in text and "movies 41-50" in text and "movies 21-30" not in text
    assert len(warnings) == 2
    accepted = starfile.read(tmp_path / "out" / "movies_accepted.star", always_dict=True)["movies"]
    assert len(accepted) == 30
    for name in ("dose_vs_time.png", "dose_difference.png", "report.html", "summary.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_metadata_disagreeing_by_30_percent_switches_to_experimental(tmp_path):
    make_session(tmp_path / "m", [1.0] * 8)
    summary = run_dose([tmp_path / "m"], tmp_path / "out",
                       DoseParams(samples=5, dose_per_frame=1.3), workers=0)
    assert summary["reference_source"] == "experimental"
    assert summary["reference_dose"] == pytest.approx(1.0, rel=0.01)
    assert "does not match" in (tmp_path / "out" / "warnings.txt").read_text()
    agree = run_dose([tmp_path / "m"], tmp_path / "out2",
                     DoseParams(samples=5, dose_per_frame=1.01), workers=0)
    assert agree["reference_source"] == "metadata" and agree["reference_dose"] == 1.01


def test_metadata_dose_from_star(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_session(tmp_path / "Movies", [1.0] * 4)
    optics = pd.DataFrame({"rlnOpticsGroupName": ["g1"], "rlnOpticsGroup": [1],
                           "rlnMicrographOriginalPixelSize": [PIXEL], "rlnMicrographDoseRate": [1.0]})
    movies = pd.DataFrame({"rlnMicrographMovieName": [f"Movies/movie_{i:04d}.mrc" for i in range(4)],
                           "rlnOpticsGroup": [1] * 4})
    starfile.write({"optics": optics, "movies": movies}, tmp_path / "movies.star")
    summary = run_dose(["movies.star"], tmp_path / "out", DoseParams(samples=4), workers=0)
    assert summary["reference_source"] == "metadata"
    out = starfile.read(tmp_path / "out" / "movies_accepted.star", always_dict=True)
    assert list(out["movies"]["rlnMicrographMovieName"]) == list(movies["rlnMicrographMovieName"])
    assert "optics" in out


def test_corrupt_movies_land_in_failed(tmp_path):
    paths = make_session(tmp_path / "m", [1.0] * 5)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 2])  # truncated
    paths[3].write_bytes(b"\0" * 100)  # bad header
    nan_path = tmp_path / "m" / "movie_9999.mrc"
    with mrcfile.new(nan_path) as mrc:
        stack = np.ones((3, 16, 16), np.float32)
        stack[0, 0, 0] = np.nan
        mrc.set_data(stack)
        mrc.voxel_size = PIXEL
    summary = run_dose([tmp_path / "m"], tmp_path / "out", DoseParams(samples=2), workers=0)
    table = pd.read_csv(tmp_path / "out" / "dose.csv")
    assert len(table) == 6 and summary["n_failed"] == 3
    failed = table[table.status == "failed"]
    assert set(failed.movie.map(lambda m: Path(m).name)) == {"movie_0001.mrc", "movie_0003.mrc", "movie_9999.mrc"}
    assert failed.error.str.contains("movie_0001.mrc").all() or failed.error.notna().all()
    assert len(starfile.read(tmp_path / "out" / "movies_failed.star", always_dict=True)["movies"]) == 3


def test_dask_run_matches_serial(tmp_path):
    make_session(tmp_path / "m", [1.0, 1.1, 0.9, 1.0, 1.3, 1.0])
    a = run_dose([tmp_path / "m"], tmp_path / "a", DoseParams(samples=3), workers=0)
    b = run_dose([tmp_path / "m"], tmp_path / "b", DoseParams(samples=3), workers=2)
    ta, tb = pd.read_csv(tmp_path / "a" / "dose.csv"), pd.read_csv(tmp_path / "b" / "dose.csv")
    pd.testing.assert_frame_equal(ta, tb)
    assert a["n_accepted"] == b["n_accepted"]


def _cli(*args, **kw):
    env = {**os.environ, "SCOPELINE_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "scopeline.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, **kw)


def test_killed_watch_run_resumes_with_every_movie_once(tmp_path):
    movies = tmp_path / "incoming"
    movies.mkdir()
    out = tmp_path / "out"
    args = ["dose", movies, "--out", out, "--watch", "--idle-timeout", "600", "--poll-interval", "0.2",
            "--batch-size", "1", "--workers", "0", "--samples", "3", "--stop-file", tmp_path / "STOP",
            "--min-file-age", "0"]
    env = {**os.environ, "SCOPELINE_NO_PROGRESS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "scopeline.cli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    make_session(movies, [1.0] * 6)
    deadline = time.time() + 60

    def journaled():
        return sum(len(j.read_text().splitlines()) for j in (out / ".scopeline").glob("dose_*.jsonl"))

    while time.time() < deadline and (not (out / ".scopeline").exists() or journaled() < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # killed mid-session
    proc.wait()
    make_session(movies, [1.0] * 10)  # more movies arrived meanwhile (first 6 rewritten identically)
    (tmp_path / "STOP").touch()
    done = subprocess.run([sys.executable, "-m", "scopeline.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out / "dose.csv")
    names = sorted(Path(m).name for m in table.movie)
    assert names == [f"movie_{i:04d}.mrc" for i in range(10)]
    assert table.status.eq("accepted").all()
    accepted = starfile.read(out / "movies_accepted.star", always_dict=True)["movies"]
    assert len(accepted) == 10


def test_cli_bad_input_one_line_no_traceback(tmp_path):
    r = _cli("dose", tmp_path / "missing.mrc", "--out", tmp_path / "o", "--workers", "0")
    assert r.returncode != 0 and "missing.mrc" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "x.txt").write_text("hello")
    r = _cli("dose", tmp_path / "x.txt", "--out", tmp_path / "o", "--workers", "0")
    assert r.returncode != 0 and "x.txt" in r.stderr and "Traceback" not in r.stderr
    write_movie(tmp_path / "nopix.mrc", 1.0, pixel_size=None)
    r = _cli("dose", tmp_path / "nopix.mrc", "--out", tmp_path / "o", "--workers", "0")
    assert r.returncode != 0 and "nopix.mrc" in r.stderr and "--pixel-size" in r.stderr
    assert "Traceback" not in r.stderr


def test_gain_reference_applied(tmp_path):
    from scopeline.cryoem.simulate import simulate_counting_movie, write_mrc_movie, write_tiff_movie

    rng = np.random.default_rng(3)
    gain = rng.uniform(0.5, 1.5, size=(128, 128)).astype(np.float32)
    (tmp_path / "m").mkdir()
    for i in range(3):
        stack = simulate_counting_movie((128, 128), 4, 2.0 * PIXEL**2, rng, gain=gain)
        write_tiff_movie(tmp_path / "m" / f"g{i}.tiff", stack, PIXEL, compression="lzw")
    write_mrc_movie(tmp_path / "gain.mrc", gain[None], PIXEL)
    with_gain = run_dose([tmp_path / "m"], tmp_path / "a", DoseParams(samples=3, pixel_size=PIXEL,
                                                                        gain=tmp_path / "gain.mrc"), workers=0)
    without = run_dose([tmp_path / "m"], tmp_path / "b", DoseParams(samples=3, pixel_size=PIXEL), workers=0)
    assert with_gain["reference_dose"] == pytest.approx(2.0, rel=0.01)
    assert abs(without["reference_dose"] - 2.0) / 2.0 > 0.02  # raw counts are biased by the gain
