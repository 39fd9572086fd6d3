"""The crowded-field simulator: hand-checked pieces and a consistent small scene."""

import numpy as np

from scopeline.miniscope.simulate_dense import (
    DenseSimulationParams,
    gcamp_kernel,
    make_dense_truth,
    render_dense_frames,
    saturating_calcium,
)


def test_density_hand_case():
    # 250 cells in a field of radius 0.48 * 256 px * 1.7 um, 40 um thick
    p = DenseSimulationParams(n_cells=250)
    radius_mm = 0.48 * 256 * 1.7e-3
    assert np.isclose(p.density_per_mm3(), 250 / (np.pi * radius_mm**2 * 0.040))
    assert 40_000 < p.density_per_mm3() < 50_000


def test_kernel_rises_then_decays_with_its_time_constant():
    k = gcamp_kernel(tau_rise=0.05, tau_decay=0.8, fps=20.0)
    assert np.isclose(k.max(), 1.0) and 0 < np.argmax(k) <= 3
    late = k[40:60]  # rise term negligible: pure exponential decay of 0.8 s
    assert np.allclose(late[1:] / late[:-1], np.exp(-1 / (0.8 * 20)), rtol=1e-6)


def test_calcium_saturates():
    kernel = gcamp_kernel(0.05, 0.8, 20.0)
    one, two = np.zeros(100), np.zeros(100)
    one[10], two[10] = 1, 2
    c1 = saturating_calcium(one, kernel, amplitude=10.0, saturation=3.0)
    c2 = saturating_calcium(two, kernel, amplitude=10.0, saturation=3.0)
    assert np.isclose(c1.max(), 10.0)  # an isolated spike peaks at the amplitude
    # x / (1 + x / K): two spikes give 2 / (1 + 2/3) = 1.2 times the (1 + 1/3)-scaled single one
    assert np.isclose(c2.max() / c1.max(), (2 / (1 + 2 / 3)) / (1 / (1 + 1 / 3)))


def test_truth_and_frames_are_consistent():
    p = DenseSimulationParams(height=96, width=96, n_frames=80, n_cells=25, seed=3, n_jumps=1)
    truth = make_dense_truth(p)
    n = len(truth["A"])
    assert n == 25 and truth["C"].shape == (25, 80) and truth["S"].shape == (25, 80)
    assert np.allclose(truth["A"].reshape(n, -1).max(axis=1), 1.0)
    # observed footprints overlap their neighbours (full extent)
    support = truth["A"].reshape(n, -1) > 0.05
    shared = support.astype(int) @ support.T.astype(int)
    np.fill_diagonal(shared, 0)
    assert (shared.max(axis=1) > 0).mean() > 0.5
    assert np.all(truth["C"] >= 0) and np.all((truth["S"] > 0).sum(axis=1) >= 0)
    frames = render_dense_frames(p, truth, 0, 80)
    assert frames.dtype == np.uint8 and frames.shape == (80, 96, 96) and 20 < frames.mean() < 150
    # photobleaching: later frames are dimmer on average
    assert truth["bleach"][-1] < truth["bleach"][0]


def test_hard_setting_has_more_and_finer_haze():
    """HARD: three out-of-focus cells per in-focus one (default 1.5), twice the neuropil,
    on a finer spatial scale (the patterns' correlation falls off within ~8 px, not ~18)."""
    from scopeline.miniscope.simulate_dense import HARD

    def lag_correlation(image, lag):
        x = image - image.mean()
        return float((x[:, lag:] * x[:, :-lag]).mean() / (x * x).mean())

    base = DenseSimulationParams(height=128, width=128, n_frames=20, n_cells=40, seed=3)
    hard = base.model_copy(update=HARD)
    t0, t1 = make_dense_truth(base), make_dense_truth(hard)
    assert len(t0["oof"]) == round(1.5 * len(t0["C"])) and len(t1["oof"]) == round(3.0 * len(t1["C"]))
    assert np.isclose(t1["patterns"].mean() / t0["patterns"].mean(), 2.0, rtol=0.1)
    # at 10 px the default neuropil is still strongly correlated, the hard one much less
    assert lag_correlation(t0["patterns"][0], 10) > 0.7 > lag_correlation(t1["patterns"][0], 10)
