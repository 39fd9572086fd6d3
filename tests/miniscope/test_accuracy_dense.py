"""Accuracy of the whole `scopeline miniscope` pipeline on crowded fields (slow).

The crowded-field simulator (``simulate_dense.py``: 150 or 250 cells in 256 x 256 px at
1.7 um/px, scattering blur, out-of-focus cells, neuropil, vessels, vignetting, bleaching,
8-bit sensor, rigid and non-rigid motion, GCaMP-like saturating calcium at 0.05-2 Hz;
20 Hz, 2,000 frames), default parameters. Targets of issue 11: F1 >= 0.85 (one-to-one
matching at footprint IoU >= 0.5), median correlation of C with the true calcium >= 0.90,
of 5-frame-binned S with the true spikes >= 0.80. Measured with the defaults (search of the
residual, kernel from the upper SNR quartile): F1 0.891-0.933, corr C 0.941-0.957, corr S
0.816-0.878 (docs/miniscope_cnmf.md).
"""

import pytest

from scopeline.miniscope.api import run_pipeline
from scopeline.miniscope.cnmf.metrics import evaluate_run
from scopeline.miniscope.simulate_dense import DenseSimulationParams, simulate_dense_recording

CASES = [(150, 0), (150, 1), (150, 2), (250, 0), (250, 1), (250, 2)]
#: cases measured below a target, with the figures (see docs/miniscope_cnmf.md)
KNOWN_SHORT: dict[tuple[int, int], str] = {
}


def _case(cells, seed):
    marks = [pytest.mark.xfail(reason=KNOWN_SHORT[(cells, seed)], strict=False)] if (cells, seed) in KNOWN_SHORT else []
    return pytest.param(cells, seed, marks=marks, id=f"{cells}cells-seed{seed}")


@pytest.mark.slow
@pytest.mark.parametrize("cells,seed", [_case(c, s) for c, s in CASES])
def test_pipeline_accuracy_on_crowded_fields(tmp_path, cells, seed):
    video = tmp_path / "video"
    p = DenseSimulationParams(n_cells=cells, n_frames=2000, seed=seed)
    simulate_dense_recording(video, p)
    run_pipeline(video, tmp_path / "out", scheduler="threads", fps=p.fps)
    result = evaluate_run(video, tmp_path / "out", metric="iou")
    print(result)
    assert result["f1"] >= 0.85, result
    assert result["median_corr_C"] >= 0.90, result
    assert result["median_corr_S"] >= 0.80, result
