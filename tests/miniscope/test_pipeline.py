"""The pipeline machinery on a small simulated recording: outputs, reuse, invalidation,
ranges, crash and resume, bad videos, fraction."""

import json
import shutil

import numpy as np
import pytest
import zarr

from scopeline.errors import ConfigError, InputError
from scopeline.miniscope import pipeline
from scopeline.miniscope.api import run_pipeline
from scopeline.miniscope.params import MiniscopeParams
from scopeline.miniscope.simulate import SimulationParams, simulate_recording

CORE = ["config", "load", "preprocess", "motion", "crop", "init", "detect"]
SIM = SimulationParams(height=96, width=96, n_frames=200, n_neurons=10, frames_per_file=100,
                       jump_times=(120,), jump_size=6, line_split_fraction=0.03, seed=4)


def _params():
    p = MiniscopeParams()
    p.load.line_split = True
    p.load.chunk_frames = 50
    p.crop.chunk_frames = 50
    p.init.n_components = 10
    p.init.chunk_frames = 100
    p.init.when = "always"
    return p


def _run(videos, out, params=None, **kw):
    return run_pipeline(videos, out, params or _params(), to_step="detect", scheduler="synchronous", **kw)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    simulate_recording(folder, SIM)
    return folder


@pytest.fixture(scope="module")
def baseline(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    result = _run(videos, out)
    return out, result


def _arrays(out):
    group = zarr.open_group(str(out / "store.zarr"), mode="r")
    names = ["crop/Y", "motion/shifts", "motion/frame_index", "detect/A_init", "detect/C_init", "init/b_init"]
    return {name: group[name][...] for name in names}


def test_init_skipped_unless_its_components_are_used(videos, tmp_path):
    """The seeds method (default) never reads the NNDSVD components: with init.when =
    'needed' the step writes nothing; switching detect to the watershed search re-runs it."""
    p = _params()
    p.init.when = "needed"
    run_pipeline(videos, tmp_path / "out", p, to_step="init", scheduler="synchronous")
    marker = json.loads((tmp_path / "out" / "steps" / "init" / "complete.json").read_text())
    assert "skipped" in marker["summary"] and not marker["outputs"].get("array")
    p.detect.method = "watershed"
    result = run_pipeline(videos, tmp_path / "out", p, to_step="init", scheduler="synchronous")
    assert result.ran == ["init"]
    assert zarr.open_group(str(tmp_path / "out" / "store.zarr"), mode="r")["init/nndsvd_spatial"].shape[0] == 10


def test_outputs_and_contract(baseline):
    out, result = baseline
    assert [s.name for s in result.steps] == CORE and result.ran == CORE
    group = zarr.open_group(str(out / "store.zarr"), mode="r")
    Y, A, C = group["crop/Y"], group["detect/A_init"], group["detect/C_init"]
    assert Y.dtype == np.float16 and Y.chunks[0] == 50  # stored half precision ...
    assert A.shape[1:] == Y.shape[1:] and C.shape == (A.shape[0], Y.shape[0])
    assert group["detect/unit_ids"].shape == (A.shape[0],)
    assert group["init/f_init"].shape == (Y.shape[0],) and group["init/b_init"].shape == Y.shape[1:]
    assert group["crop/crop_mask"].dtype == bool
    assert group["motion/frame_index"].shape == (Y.shape[0],)
    from scopeline.miniscope.steps.base import StepContext

    ctx = StepContext(out_dir=out, step="init", upstream=CORE[:5][::-1])
    assert ctx.read("Y").dtype == np.float32  # ... read as float32
    assert json.loads((out / "params.json").read_text())["load"]["line_split"] is True
    assert (out / "report.html").exists() and (out / "report" / "motion_shifts.png").exists()
    removed = (out / "all_removed_frames.txt").read_text().splitlines()
    assert removed[0] == "frame\treason" and len(removed) > 1


def test_rerun_reuses_everything(videos, baseline):
    out, _ = baseline
    before = _arrays(out)
    result = _run(videos, out)
    assert result.reused == CORE and result.ran == []
    after = _arrays(out)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_changed_parameter_reruns_that_step_and_later(videos, baseline, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(baseline[0], out)
    p = _params()
    p.detect.normalize = "l2"
    result = _run(videos, out, p)
    assert result.ran == ["detect"]
    p.motion.qc_threshold = 4.0  # frame QC only: the load pass is reused
    result = _run(videos, out, p)
    assert result.ran == CORE[3:] and result.reused == CORE[:3]
    p.preprocess.background_size = 10  # filtering happens in the load pass: it re-runs
    result = _run(videos, out, p)
    assert result.ran == CORE[1:] and result.reused == CORE[:1]


def test_from_and_to(videos, baseline, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(baseline[0], out)
    result = run_pipeline(videos, out, _params(), from_step="crop", to_step="init", scheduler="synchronous")
    assert result.ran == ["crop", "init"] and result.reused == CORE[:4]
    with pytest.raises(ConfigError, match="no up-to-date stored result"):
        run_pipeline(videos, tmp_path / "fresh", _params(), from_step="motion", scheduler="synchronous")
    with pytest.raises(ConfigError, match="unknown step"):
        run_pipeline(videos, out, _params(), to_step="nonsense", scheduler="synchronous")


def test_crash_in_step_2_then_resume_is_identical(videos, baseline, tmp_path, monkeypatch):
    from scopeline.miniscope.steps import load

    calls = {"n": 0}
    real = load.preprocess_frames

    def crashing(frames, p):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real(frames, p)

    monkeypatch.setattr(load, "preprocess_frames", crashing)
    out = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        _run(videos, out)
    assert calls["n"] == 3 and not (out / "steps" / "load" / "complete.json").exists()
    monkeypatch.setattr(load, "preprocess_frames", real)
    result = _run(videos, out)
    assert result.reused == ["config"] and result.ran == CORE[1:]
    resumed, clean = _arrays(out), _arrays(baseline[0])
    for name in clean:
        assert np.array_equal(resumed[name], clean[name]), name


def test_bad_video_stop_or_skip(videos, tmp_path):
    folder = tmp_path / "videos"
    shutil.copytree(videos, folder)
    data = (folder / "1.avi").read_bytes()
    (folder / "1.avi").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"1\.avi: truncated"):
        run_pipeline(folder, tmp_path / "stop", _params(), to_step="load", scheduler="synchronous")
    result = run_pipeline(folder, tmp_path / "skip", _params(), to_step="load", scheduler="synchronous",
                          on_bad_video="skip")
    assert result.steps[-1].summary["files_skipped"] == 1
    videos_json = json.loads((tmp_path / "skip" / "steps" / "load" / "videos.json").read_text())
    assert [v["status"] for v in videos_json] == ["used", "skipped"] and "truncated" in videos_json[1]["error"]


def test_fraction_uses_the_first_part(videos, tmp_path):
    result = run_pipeline(videos, tmp_path / "tenth", _params(), to_step="load", fraction=0.25,
                          scheduler="synchronous")
    assert result.steps[-1].summary["frames_loaded"] == 50


def test_cnmf_steps_are_optional():
    names = [s.name for s in pipeline.available_steps()]
    assert names[:7] == CORE


def test_non_rigid_mesh_runs_through_the_pipeline(videos, baseline, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(baseline[0], out)
    p = _params()
    p.motion.mesh = (3, 3)
    result = run_pipeline(videos, out, p, to_step="crop", scheduler="synchronous")
    assert result.ran == ["motion", "crop"] and result.steps[-1].summary["non_rigid_mesh"] == (3, 3)
    Y = zarr.open_group(str(out / "store.zarr"), mode="r")["crop/Y"]
    assert Y.shape == zarr.open_group(str(baseline[0] / "store.zarr"), mode="r")["crop/Y"].shape


def test_preview_writes_statistics_only(videos, tmp_path):
    from scopeline import miniscope
    from scopeline.miniscope.api import preview_pipeline

    stats = preview_pipeline(videos, _params(), n_frames=120, out_dir=tmp_path)
    assert stats["frames"] == 120 and stats["frame_shape"] == [96, 96]
    written = sorted(f.name for f in (tmp_path / "preview").iterdir())
    assert written == ["crop.png", "denoise.png", "motion.png", "preview.json", "seeds.png"]
    saved = json.loads((tmp_path / "preview" / "preview.json").read_text())
    assert {k: saved[k] for k in stats} == stats and len(saved["seed_positions"]) == stats["seeds"]
    assert not (tmp_path / "store.zarr").exists()
    # the preview module does not shadow the public function scopeline.miniscope.preview
    assert callable(miniscope.preview) and miniscope.preview(videos, _params(), n_frames=20)["frames"] == 20


def test_downsampling_in_space_and_time_averages_corrected_frames(videos, tmp_path):
    from scopeline.miniscope.fieldcrop import shift_into_box

    p = _params()
    p.load.downsample_space, p.load.downsample_time, p.load.downsample_method = 2, 2, "mean"
    run_pipeline(videos, tmp_path / "ds", p, to_step="crop", scheduler="synchronous")
    g = zarr.open_group(str(tmp_path / "ds" / "store.zarr"), mode="r")
    pre, groups, Y = g["load/pre"], g["motion/groups"][...], g["crop/Y"]
    assert pre.shape == (200, 48, 48)
    assert groups.shape[1] == 2 and (groups[:, 1] > groups[:, 0]).all()
    assert Y.shape[0] == len(groups) and np.array_equal(g["motion/frame_index"][...], groups[:, 0])
    # each frame of Y is the mean of its group's frames, each shifted by its own shift
    crop = json.loads((tmp_path / "ds" / "steps" / "crop" / "crop.json").read_text())
    mask = g["crop/crop_mask"][...]
    shifts = g["motion/shifts_all"][...][groups[3]]
    expected = shift_into_box(pre[groups[3]], shifts, crop["y0"], crop["x0"], mask).mean(axis=0)
    assert np.allclose(Y[3].astype(np.float32), expected, rtol=1e-3, atol=1e-3)
