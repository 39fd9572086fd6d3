"""Accuracy of steps 1-4 on simulated recordings with known truth (slow: ``-m slow``).

Targets from the issue: motion residual RMSE <= 0.3 px against the true shifts (jumps of
12 px), injected line-splitting frames found with precision and recall >= 0.95, and after
step 4 >= 95 % of true neurons with a candidate whose centroid is within 5 px. Also: a run
killed (SIGKILL) in the middle of step 2 and restarted equals an uninterrupted run.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from scopeline.miniscope.api import run_pipeline
from scopeline.miniscope.params import MiniscopeParams
from scopeline.miniscope.simulate import SimulationParams, simulate_recording

pytestmark = pytest.mark.slow

SEEDS = [11, 12]


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def recording(request, tmp_path_factory):
    sim = SimulationParams(height=200, width=200, n_frames=1000, n_neurons=40, frames_per_file=250,
                           jump_size=12.0, line_split_fraction=0.02, seed=request.param)
    folder = tmp_path_factory.mktemp("sim")
    truth = simulate_recording(folder, sim)
    out = tmp_path_factory.mktemp("out")
    params = MiniscopeParams()
    params.load.line_split = True
    run_pipeline(folder, out, params, to_step="detect", scheduler="threads")
    return truth, out, zarr.open_group(str(out / "store.zarr"), mode="r")


def _offset(truth, store):
    """Constant offset between estimated and true registration shifts (the template's position)."""
    frames = store["motion/frame_index"][...]
    error = store["motion/shifts"][...] - truth["shifts"][frames]
    return np.median(error, axis=0), error


def test_motion_rmse_below_0_3_px_with_12_px_jumps(recording):
    truth, _, store = recording
    jumps = np.hypot(*np.diff(truth["displacement"], axis=0).T)
    assert (jumps > 11.5).sum() == 2  # the recording really holds two 12 px jumps
    offset, error = _offset(truth, store)
    rmse = float(np.sqrt(((error - offset) ** 2).sum(axis=1).mean()))
    print(f"motion RMSE {rmse:.3f} px")
    assert rmse <= 0.3


def test_line_splitting_precision_and_recall(recording):
    truth, out, _ = recording
    found = set(json.loads((out / "steps" / "load" / "removed_frames.json").read_text())["line_split"])
    injected = set(truth["line_split_frames"].tolist())
    precision, recall = len(found & injected) / max(len(found), 1), len(found & injected) / len(injected)
    print(f"line splitting precision {precision:.3f} recall {recall:.3f} ({len(injected)} injected)")
    assert precision >= 0.95 and recall >= 0.95


def test_neurons_have_candidates_within_5_px(recording):
    truth, out, store = recording
    offset, _ = _offset(truth, store)
    crop = json.loads((out / "steps" / "crop" / "crop.json").read_text())
    # a tissue point c appears in the corrected video at c + offset, then in crop coordinates
    centres = truth["centers"] + offset - np.array([crop["y0"], crop["x0"]])
    units = json.loads((out / "steps" / "detect" / "units.json").read_text())
    found = np.array([u["centroid"] for u in units])
    distance = np.hypot(*(centres[:, None, :] - found[None, :, :]).transpose(2, 0, 1)).min(axis=1)
    recall = float((distance <= 5).mean())
    print(f"neuron recall {recall:.3f} ({len(found)} candidates for {len(centres)} neurons)")
    assert recall >= 0.95


def test_killed_in_step_2_and_restarted_matches_uninterrupted(tmp_path):
    """A real SIGKILL while step 2 (the load pass: decode, preprocess, register) is
    writing, then a plain re-run."""
    sim = SimulationParams(height=128, width=128, n_frames=600, n_neurons=15, frames_per_file=200, seed=5)
    simulate_recording(tmp_path / "videos", sim)
    script = ("import sys; from scopeline.miniscope.api import run_pipeline; "
              "from scopeline.miniscope.params import MiniscopeParams; p = MiniscopeParams(); "
              "p.load.chunk_frames = 20; p.load.line_split = True; p.init.when = 'always'; "
              "run_pipeline(sys.argv[1], sys.argv[2], p, to_step='detect', scheduler='synchronous')")
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "videos"), str(killed)])
    deadline = time.time() + 120
    chunks = killed / "store.zarr" / "load" / "pre" / "c"
    while time.time() < deadline and not (chunks.exists() and len(list(chunks.iterdir())) >= 5):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (killed / "steps" / "config" / "complete.json").exists()
    assert not (killed / "steps" / "load" / "complete.json").exists()
    for out in (killed, tmp_path / "clean"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / "videos"), str(out)], check=True)
    a = zarr.open_group(str(killed / "store.zarr"), mode="r")
    b = zarr.open_group(str(tmp_path / "clean" / "store.zarr"), mode="r")
    for name in ["load/pre", "motion/shifts", "crop/Y", "init/nndsvd_spatial",
                 "detect/A_init", "detect/C_init"]:
        assert np.array_equal(a[name][...], b[name][...]), name
