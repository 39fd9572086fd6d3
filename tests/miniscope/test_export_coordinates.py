"""Exported footprints are in the input video's frame (crop placed back, spatial
downsampling undone) and export/shifts.npy holds the rigid correction of each exported
frame in input pixels."""

import json

import numpy as np
import pytest

from scopeline.miniscope.api import run_pipeline
from scopeline.miniscope.coordinates import footprints_in_input
from scopeline.miniscope.params import MiniscopeParams
from scopeline.miniscope.simulate import SimulationParams, simulate_recording


def test_footprint_lands_at_its_input_position():
    A = np.zeros((1, 10, 12), np.float32)
    A[0, 3, 4] = 0.7
    crop = {"y0": 5, "y1": 15, "x0": 7, "x1": 19}
    same = footprints_in_input(A, crop, {"shape": [30, 40], "input_shape": [30, 40], "downsample_space": 1,
                                         "downsample_method": "subset"})
    assert same.shape == (1, 30, 40) and same[0, 8, 11] == pytest.approx(0.7) and same.sum() == pytest.approx(0.7)
    # downsampled 2x from 61x81: processed pixel (8, 11) is input rows 16-17, columns 22-23
    up = footprints_in_input(A, crop, {"shape": [30, 40], "input_shape": [61, 81], "downsample_space": 2,
                                       "downsample_method": "mean"})
    assert up.shape == (1, 61, 81)
    assert np.all(up[0, 16:18, 22:24] == np.float32(0.7)) and up.sum() == pytest.approx(4 * 0.7)
    assert footprints_in_input(A, None, None) is A  # no crop record: unchanged


SIM = SimulationParams(height=128, width=128, n_frames=400, n_neurons=12, frames_per_file=200, fps=10.0,
                       jump_times=(200,), jump_size=8, seed=5)


def test_export_in_input_coordinates(tmp_path):
    """A run with 2x spatial downsampling (the harder case: the crop box and the shifts
    are in downsampled pixels inside the pipeline)."""
    videos, out = tmp_path / "videos", tmp_path / "out"
    truth = simulate_recording(videos, SIM)
    factor = 2
    params = MiniscopeParams()
    params.load.downsample_space = factor
    params.load.downsample_method = "mean"
    params.preprocess.denoise_size, params.preprocess.background_size = 3, 8  # filters scaled to the pixels
    params.export.formats = ["nwb"]
    run_pipeline(videos, out, params, scheduler="synchronous", fps=SIM.fps)
    export = out / "export"
    A, units = np.load(export / "A.npy"), json.loads((export / "units.json").read_text())
    shifts, index = np.load(export / "shifts.npy"), np.asarray(units["frame_index"])
    assert A.shape[1:] == (SIM.height, SIM.width) and units["shape"] == [SIM.height, SIM.width]
    assert units["crop"]["x1"] - units["crop"]["x0"] == units["processed_shape"][1]

    # the shift that corrects each frame is the simulated motion's negative, up to the
    # template's own constant position
    assert shifts.shape == (len(index), 2)
    offset = np.median(shifts - truth["shifts"][index], axis=0)
    error = shifts - truth["shifts"][index] - offset
    assert np.sqrt((error**2).sum(axis=1).mean()) < 0.5  # input pixels
    # footprints: each exported unit's peak lies on a true cell, moved by that constant
    centers = truth["centers"] + offset
    peaks = np.array([np.unravel_index(np.argmax(a), a.shape) for a in A])
    distance = np.hypot(*(peaks[:, None, :] - centers[None]).transpose(2, 0, 1)).min(axis=1)
    assert len(A) >= 8 and np.median(distance) < 3 and (distance < 8).mean() >= 0.9

    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(export / "results.nwb"), "r") as io:
        masks = io.read().processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]["image_mask"].data[:]
    assert masks.shape == A.shape
