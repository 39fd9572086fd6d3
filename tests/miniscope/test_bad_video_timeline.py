"""Issue 12 defect 4: with ``--on-bad-video skip`` the frames of a skipped file keep their
places in the timeline (frame_index, timestamps), and the skip is said on the console."""

import json
import shutil

import numpy as np
import pytest
import zarr

from scopeline.miniscope.api import run_pipeline
from scopeline.miniscope.params import MiniscopeParams
from scopeline.miniscope.simulate import SimulationParams, simulate_recording

SIM = SimulationParams(height=64, width=64, n_frames=300, n_neurons=6, frames_per_file=100, seed=3)


def _params():
    p = MiniscopeParams()
    p.load.chunk_frames = 50
    p.motion.qc = False
    return p


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("timeline")
    simulate_recording(folder, SIM)
    return folder


def _frame_index(out):
    return zarr.open_group(str(out / "store.zarr"), mode="r")["motion/frame_index"][...]


def test_skipped_file_keeps_its_place_in_the_timeline(videos, tmp_path, capsys):
    folder = tmp_path / "videos"
    shutil.copytree(videos, folder)
    data = (folder / "1.avi").read_bytes()
    (folder / "1.avi").write_bytes(data[: len(data) // 2])  # header intact: it declares 100 frames
    out = tmp_path / "out"
    run_pipeline(folder, out, _params(), to_step="motion", scheduler="synchronous", on_bad_video="skip", fps=20)
    index = _frame_index(out)
    # frames 0-99 from 0.avi, 100-199 (1.avi) missing, 200-299 from 2.avi -- not 100-199
    assert np.array_equal(index, np.r_[0:100, 200:300])
    assert index[-1] / 20 == pytest.approx(14.95)  # the last frame's time: 299 / 20 fps
    videos_json = json.loads((out / "steps" / "load" / "videos.json").read_text())
    assert videos_json[1]["status"] == "skipped" and videos_json[1]["frames_in_timeline"] == 100
    err = capsys.readouterr().err
    assert "1.avi" in err and "skipping" in err and "frames 100-199" in err


def test_skipped_file_of_unknown_length_is_said(videos, tmp_path, capsys):
    folder = tmp_path / "videos"
    shutil.copytree(videos, folder)
    (folder / "1.avi").write_bytes(b"RIFF" + bytes(200))  # no readable header
    out = tmp_path / "out"
    run_pipeline(folder, out, _params(), to_step="motion", scheduler="synchronous", on_bad_video="skip")
    assert np.array_equal(_frame_index(out), np.arange(200))
    err = capsys.readouterr().err
    assert "1.avi" in err and "frame count is unknown" in err


def test_removed_frames_log_uses_the_timeline(videos, tmp_path):
    """all_removed_frames.txt numbers frames like frame_index: a frame broken in 2.avi after
    a skipped 1.avi is frame 200 + its place in 2.avi, not its place among loaded frames."""
    from scopeline.io.video import probe_video, read_frames, write_avi
    from scopeline.miniscope.simulate_corruption import corrupt_one

    folder = tmp_path / "videos"
    shutil.copytree(videos, folder)
    data = (folder / "1.avi").read_bytes()
    (folder / "1.avi").write_bytes(data[: len(data) // 2])
    frames = read_frames(folder / "2.avi", 0, probe_video(folder / "2.avi").n_frames)
    frames[50] = corrupt_one(frames[50], "dark_most", np.random.default_rng(0))
    write_avi(folder / "2.avi", frames, fps=SIM.fps)
    out = tmp_path / "out"
    run_pipeline(folder, out, _params(), to_step="motion", scheduler="synchronous", on_bad_video="skip", fps=20)
    lines = (out / "all_removed_frames.txt").read_text().splitlines()
    assert lines[0] == "frame\treason"
    assert [line.split("\t")[0] for line in lines[1:]] == ["250"]
    assert lines[1].split("\t")[1].startswith("broken:")
    index = _frame_index(out)
    assert 250 not in index and 249 in index and 251 in index  # dropped, in the same numbering
