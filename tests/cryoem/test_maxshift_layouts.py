"""``scopeline maxshift`` on real RELION project layouts whose per-movie motion STARs are
missing (a job copied without them, or run from another folder): RELION's own accumulated
motion is used, with a warning, and the frame rules say why they cannot decide."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from scopeline.cli import app
from scopeline.io.star import read_star
from tests.shared_data import RELION

pytestmark = pytest.mark.skipif(not RELION.is_dir(), reason="shared RELION files not present")

# RELION's rlnAccumMotionTotal of each row (pixels), from the files themselves
T20S_TOTAL_PX = [22.132552, 13.562005, 18.007865, 20.770114]
BETAGAL_TOTAL_PX = [16.429035, 19.556374, 17.542337, 18.102179, 24.124382, 13.147140, 15.070049, 13.784786]


@pytest.fixture
def copied_jobs(tmp_path, monkeypatch):
    """Each micrographs STAR copied into a job folder of a new project, without Movies/, and
    the command run from a third folder."""
    paths = {}
    for name, job in (("T20S", "job019"), ("betagal", "job002")):
        folder = tmp_path / name / "MotionCorr" / job
        folder.mkdir(parents=True)
        paths[name] = folder / "corrected_micrographs.star"
        shutil.copy(RELION / f"{name}_corrected_micrographs.star", paths[name])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return paths


def _run(*args):
    result = CliRunner().invoke(app, ["maxshift", *map(str, args)])
    return result, " ".join(result.output.split())


def test_missing_motion_stars_use_relion_accumulated_motion(copied_jobs, tmp_path):
    out = tmp_path / "out"
    result, text = _run(copied_jobs["betagal"], "--out", out, "--rejection", "movie",
                        "--max-movie-shift", 15)
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out / "motion.csv")
    assert df["total_path_A"].tolist() == pytest.approx([v * 0.885 for v in BETAGAL_TOTAL_PX], rel=1e-6)
    accepted = [v * 0.885 <= 15 for v in BETAGAL_TOTAL_PX]
    assert df["status"].tolist() == ["accepted" if a else "discarded" for a in accepted]
    assert set(df["source"]) == {"relion_accumulated_motion"}
    assert "warning: 8 movie(s): motion STAR (rlnMicrographMetadata) missing" in text
    assert "use --rejection movie" in text
    mics = read_star(out / "micrographs_accepted.star")["micrographs"]
    assert len(mics) == sum(accepted)
    assert set(mics.columns) >= {"rlnMicrographName", "rlnAccumMotionTotal", "rlnMicrographMetadata"}
    assert (out / "warnings.txt").read_text().startswith("8 movie(s): motion STAR")


def test_frame_rules_fail_with_the_reason(copied_jobs, tmp_path):
    """The default rule ('or') needs the largest frame step: the movies within the movie limit
    fail with the reason (those beyond it are discarded whatever their steps)."""
    out = tmp_path / "out"
    result, text = _run(copied_jobs["T20S"], "--out", out, "--pixel-size", 0.98,
                        "--max-movie-shift", 20)
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out / "motion.csv")
    total_A = [v * 0.98 for v in T20S_TOTAL_PX]  # 21.69, 13.29, 17.65, 20.35
    assert df["status"].tolist() == ["discarded" if t > 20 else "failed" for t in total_A]
    assert all("largest frame step unknown (only accumulated motion given)" in e
               for e in df.loc[df["status"] == "failed", "error"])
    assert "4 movie(s): motion STAR (rlnMicrographMetadata) missing" in text


def test_use_accumulated_motion_option(copied_jobs, tmp_path):
    """--use-accumulated-motion: asked for, so no warning (and the motion STARs are not read)."""
    out = tmp_path / "out"
    result, text = _run(copied_jobs["T20S"], "--out", out, "--pixel-size", 0.98, "--rejection", "movie",
                        "--max-movie-shift", 18, "--use-accumulated-motion")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out / "motion.csv")
    assert df["status"].tolist() == ["discarded", "accepted", "accepted", "discarded"]
    assert "warning:" not in text and (out / "warnings.txt").read_text() == ""
