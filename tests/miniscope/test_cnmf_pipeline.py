"""The whole `scopeline miniscope` pipeline on a tiny simulated recording: it reaches the
export, and `--from` a CNMF step re-runs only that step and the later ones."""

import json

import numpy as np

from scopeline.miniscope.api import run_pipeline
from scopeline.miniscope.simulate import SimulationParams, simulate_recording


def test_run_all_then_resume_from_spatial_step(tmp_path):
    video, out = tmp_path / "video", tmp_path / "out"
    simulate_recording(video, SimulationParams(height=96, width=96, n_frames=400, n_neurons=10, fps=10.0, seed=3))
    first = run_pipeline(video, out, scheduler="synchronous", fps=10.0)
    assert first.ran[-4:] == ["noise", "cnmf_temporal", "cnmf_spatial", "export"]
    C = np.load(out / "export" / "C.npy")
    units = json.loads((out / "export" / "units.json").read_text())
    assert C.shape == (len(units["unit_ids"]), len(units["frame_index"])) and len(C) >= 5
    assert units["parameters"]["cnmf_temporal"]["ar_order"] in (1, 2)  # OUT/params.json carried along

    again = run_pipeline(video, out, scheduler="synchronous", fps=10.0, from_step="cnmf_spatial")
    assert again.ran == ["cnmf_spatial", "export"]
    assert "cnmf_temporal" in again.reused
    np.testing.assert_array_equal(np.load(out / "export" / "C.npy"), C)
