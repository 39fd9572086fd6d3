"""Footprints grown from seeds: touching cells that fire independently are separated."""

import numpy as np

from scopeline.miniscope.seed_init import find_seeds, merge_seeds, seed_footprints


def _scene(seed=0, T=600):
    rng = np.random.default_rng(seed)
    h = w = 40
    yy, xx = np.mgrid[:h, :w]
    centres = [(20, 15), (20, 24)]  # 9 px apart: the blurred cells touch
    A = np.stack([np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 2.5**2)) for y, x in centres])
    spikes = (rng.random((2, T)) < 0.03).astype(float)
    kernel = np.exp(-np.arange(40) / 8.0)
    C = np.stack([np.convolve(s, kernel)[:T] for s in spikes]) * 10
    slow = 20 + 5 * np.sin(np.arange(T) / 90.0)  # shared smooth background drift
    Y = np.einsum("nt,nij->tij", C, A) + slow[:, None, None] + rng.normal(0, 1.0, (T, h, w))
    return Y.astype(np.float32), A, C, centres, slow


def test_touching_cells_get_their_own_footprints():
    Y, A, C, centres, slow = _scene()
    A_found, traces = seed_footprints(Y, np.array(centres), patch_radius=12, min_corr=0.6)
    found = A_found.toarray().reshape(2, 40, 40)
    for k in range(2):
        mask_true = A[k] >= 0.3
        mask_found = found[k] >= 0.3 * found[k].max()
        iou = (mask_true & mask_found).sum() / (mask_true | mask_found).sum()
        assert iou > 0.6, (k, iou)
        # the footprint does not reach the neighbour's centre
        other = centres[1 - k]
        assert found[k][other] < 0.2 * found[k].max()
        # the trace is the raw seed window mean: the cell plus the shared drift
        assert np.corrcoef(traces[k] - slow, C[k])[0, 1] > 0.9


def test_duplicate_seed_merged_neighbour_kept():
    Y, A, C, centres, slow = _scene(seed=1)
    seeds = np.array([centres[0], (centres[0][0] + 1, centres[0][1]), centres[1]])  # a twin of cell 0
    A_found, traces = seed_footprints(Y, seeds, patch_radius=12, min_corr=0.6)
    keep = merge_seeds(A_found, traces - slow, min_overlap=0.5, min_corr=0.6)
    assert keep.tolist() == [0, 2]


def test_find_seeds_orders_by_score_and_respects_mask():
    score = np.zeros((30, 30), np.float32)
    score[5, 5], score[20, 20], score[25, 5] = 1.0, 3.0, 2.0
    mask = np.ones_like(score, bool)
    mask[25, 5] = False
    seeds = find_seeds(score, mask, min_distance=3, sigma=0)
    assert seeds.tolist() == [[20, 20], [5, 5]]
