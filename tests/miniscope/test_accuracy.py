"""Accuracy of the whole `scopeline miniscope` pipeline on the simulator (slow).

Realistic settings (the simulator's defaults): strong fluctuating 1-photon background,
neuropil, vignetting, drift with sudden 12 px jumps, shot and read noise, neurons close
enough to overlap, three activity levels (0.3, 1, 3 spikes/s); 10 Hz; two field sizes and
two seeds. Targets: F1 >= 0.97 (issue 11; one-to-one footprint matching), median correlation of C
with the true calcium >= 0.95, of 5-frame-binned S with the true spikes >= 0.8.
"""

import pytest

from scopeline.miniscope.cnmf.metrics import evaluate_run
from scopeline.miniscope.api import run_pipeline
from scopeline.miniscope.simulate import SimulationParams, simulate_recording

CASES = [(200, 40, 0), (200, 40, 1), (300, 90, 0), (300, 90, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("size,n_neurons,seed", CASES, ids=[f"{s}px-seed{k}" for s, _, k in CASES])
def test_pipeline_accuracy_on_simulator(tmp_path, size, n_neurons, seed):
    video = tmp_path / "video"
    simulate_recording(video, SimulationParams(height=size, width=size, n_frames=1500, n_neurons=n_neurons,
                                               fps=10.0, seed=seed))
    run_pipeline(video, tmp_path / "out", scheduler="threads", fps=10.0)
    result = evaluate_run(video, tmp_path / "out")
    print(result)
    assert result["f1"] >= 0.97, result
    assert result["median_corr_C"] >= 0.95, result
    assert result["median_corr_S"] >= 0.8, result
