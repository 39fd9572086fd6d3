import numpy as np

from scopeline.io.video import find_videos, probe_video, read_frames
from scopeline.miniscope.simulate import (
    SimulationParams,
    ar2_coefficients,
    calcium_from_spikes,
    make_truth,
    render_frames,
    simulate_recording,
)


def test_ar2_kernel_hand_case():
    g1, g2 = ar2_coefficients(tau_rise=0.1, tau_decay=1.0, fps=10.0)
    d, r = np.exp(-0.1), np.exp(-1.0)
    assert np.isclose(g1, d + r) and np.isclose(g2, -d * r)
    spikes = np.zeros((1, 60))
    spikes[0, 5] = 1
    c = calcium_from_spikes(spikes, (g1, g2))[0]
    assert np.isclose(c.max(), 1.0) and c[:5].sum() == 0
    # the AR(2) recursion holds exactly after the spike
    assert np.allclose(c[8:], g1 * c[7:-1] + g2 * c[6:-2])


def test_truth_is_consistent():
    p = SimulationParams(height=96, width=96, n_frames=120, n_neurons=8, jump_times=(60,), jump_size=12,
                         line_split_fraction=0.05)
    truth = make_truth(p)
    assert truth["A"].shape == (8, 96, 96) and truth["C"].shape == (8, 120)
    assert np.allclose(truth["A"].reshape(8, -1).max(axis=1), 1.0, atol=0.05)
    jump = truth["displacement"][60] - truth["displacement"][59]
    assert np.hypot(*jump) > 11.5 and np.allclose(truth["shifts"], -truth["displacement"])
    assert len(truth["line_split_frames"]) == 6
    frames = render_frames(p, truth, 0, 120)
    assert frames.dtype == np.uint8 and 20 < frames.mean() < 200


def test_recording_is_written_in_files_with_truth(tmp_path):
    p = SimulationParams(height=64, width=64, n_frames=50, n_neurons=3, frames_per_file=20)
    truth = simulate_recording(tmp_path, p)
    files = find_videos(tmp_path)
    assert [f.name for f in files] == ["0.avi", "1.avi", "2.avi"]
    assert [probe_video(f).n_frames for f in files] == [20, 20, 10]
    saved = np.load(tmp_path / "truth.npz")
    assert np.array_equal(saved["S"], truth["S"])
    # the files hold exactly the rendered frames (lossless 8 bit)
    assert np.array_equal(read_frames(files[1], 0, 20), render_frames(p, truth, 20, 40))
