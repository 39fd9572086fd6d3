"""Spatial update: LASSO solver, dilation, clustering, boxes, tiles, known footprints."""

import numpy as np
import pytest
from scipy.optimize import nnls

from scopeline.miniscope.cnmf import spatial
from scopeline.miniscope.cnmf.metrics import footprint_similarity
from scopeline.miniscope.params_cnmf import SpatialParams

from .cnmf_synthetic import make_cnmf_movie


def test_lasso_without_penalty_is_nnls():
    rng = np.random.default_rng(0)
    C = rng.random((4, 200))
    Y = rng.random((30, 4)) @ C + 0.1 * rng.standard_normal((30, 200)) - 0.2
    a = spatial.nonneg_lasso(Y @ C.T, C @ C.T, np.zeros((30, 4)), np.ones((30, 4), bool), iterations=5000, tol=1e-12)
    for row, y in zip(a, Y):
        np.testing.assert_allclose(row, nnls(C.T, y)[0], atol=1e-6)


def test_lasso_matches_cvxpy_with_penalty_and_mask():
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(1)
    C = rng.random((3, 100))
    y = np.array([1.0, 0.5, 0.2]) @ C + 0.05 * rng.standard_normal(100)
    penalty = np.array([2.0, 5.0, 1.0])
    allowed = np.array([True, True, False])
    a = spatial.nonneg_lasso((y @ C.T)[None], C @ C.T, penalty[None], allowed[None], iterations=5000, tol=1e-12)[0]
    x = cp.Variable(3)
    cp.Problem(cp.Minimize(0.5 * cp.sum_squares(y - C.T @ x) + penalty @ x), [x >= 0, x[2] == 0]).solve()
    np.testing.assert_allclose(a, x.value, atol=1e-5)


def test_dilation_by_hand():
    A = np.zeros((1, 9, 9))
    A[0, 4, 4] = 1.0
    A[0, 0, 0] = 0.05  # below the 10% threshold: not dilated
    support = spatial.dilate_footprints(A, radius=2, threshold=0.1)
    np.testing.assert_array_equal(support[0], np.pad(spatial.disk(2), 2))
    assert support[0].sum() == 13


def test_clusters_respect_overlap_and_size():
    support = np.zeros((4, 10, 30), bool)
    support[0, 2:6, 0:6] = True
    support[1, 2:6, 4:10] = True  # overlaps unit 0 by 8 of 24 px (1/3)
    support[2, 2:6, 20:26] = True
    support[3, 2:6, 25:30] = True  # overlaps unit 2 by 4 of 20 px (1/5)
    A = support.astype(float)
    clusters = spatial.cluster_units(support, A, max_cluster_size=10, overlap_threshold=0.25)
    assert sorted(map(sorted, (c.tolist() for c in clusters))) == [[0, 1], [2], [3]]
    split = spatial.cluster_units(support, A, max_cluster_size=1, overlap_threshold=0.1)
    assert len(split) == 4


def test_cluster_box_padding_and_minimum():
    A = np.zeros((1, 100, 100))
    A[0, 50, 50] = 1.0
    box = spatial.cluster_box(A, np.array([0]), (100, 100), dilation_radius=2, padding=3, min_size=4,
                              intensity_threshold=0.05)
    assert (box.y0, box.y1, box.x0, box.x1) == (45, 56, 45, 56)
    big = spatial.cluster_box(A, np.array([0]), (100, 100), 0, 0, 40, 0.05)
    assert big.y1 - big.y0 == 40 and big.x1 - big.x0 == 40


def test_tiles_cover_each_supported_pixel_once():
    data = make_cnmf_movie(h=40, w=40, n=6, T=10, min_distance=6)
    support = spatial.dilate_footprints(data["A"], 3, 0.1)
    clusters = spatial.cluster_units(support, data["A"], 2, 0.2)
    boxes = [spatial.cluster_box(data["A"], c, (40, 40), 2, 2, 5, 0.05) for c in clusters]
    tiles = spatial.make_tiles(support, clusters, boxes, handle_overlaps=True, n_background=1)
    pixels = np.concatenate([t.pixels for t in tiles])
    assert len(pixels) == len(set(pixels.tolist()))
    np.testing.assert_array_equal(np.sort(pixels), np.flatnonzero(support.any(axis=0).ravel()))
    for t in tiles:  # every unit covering a pixel of the tile is among its columns
        covering = np.flatnonzero(support.reshape(6, -1)[:, t.pixels].any(axis=1))
        assert set(covering) <= set(t.columns[:-1].tolist())


def test_spatial_update_recovers_known_footprints():
    data = make_cnmf_movie(h=40, w=40, n=5, T=1200, noise=0.3)
    before = np.diag(footprint_similarity(data["A_init"], data["A"]))
    params = SpatialParams(min_penalty=1.0, max_penalty=4.0)
    sn = np.full((40, 40), 0.3, np.float32)
    result = spatial.spatial_update(data["Y"], data["A_init"], data["C"].astype(float), data["f"][None].astype(float),
                                    sn, params, frame_chunk=300)
    after = np.diag(footprint_similarity(result.A, data["A"]))
    assert before.min() < 0.95
    assert after.min() > 0.99
    away = data["A"].sum(axis=0) < 0.01  # where no neuron's light could be absorbed into b
    np.testing.assert_allclose(result.b[0][away], data["b"][away], atol=0.03)
    # the scale follows C: footprints come back with max close to 1
    np.testing.assert_allclose(result.A.max(axis=(1, 2)), 1.0, atol=0.1)


def test_suggestions_scale_with_candidate_pixels():
    sn = np.ones((50, 50))
    small = np.zeros((1, 50, 50), bool)
    small[0, :10, :10] = True
    large = np.ones((1, 50, 50), bool)
    s1, s2 = spatial.suggest_spatial(sn, small), spatial.suggest_spatial(sn, large)
    assert np.isclose(s1["max_penalty"], np.sqrt(2 * np.log(100)))
    assert s2["max_penalty"] > s1["max_penalty"]
    assert np.isclose(s1["min_std"], 0.9)


def test_peak_component_drops_fragments():
    A = np.zeros((1, 10, 10))
    A[0, 2:5, 2:5] = 1.0
    A[0, 3, 3] = 2.0
    A[0, 8, 8] = 0.5  # a separate fragment
    out = spatial.peak_component(A)
    assert out[0, 8, 8] == 0 and out[0, 2:5, 2:5].sum() == A[0, 2:5, 2:5].sum()


def _blobs_at_edges(seed: int = 0) -> np.ndarray:
    """Footprints with fragments, some cut by the frame edge (where per-box work could go wrong)."""
    rng = np.random.default_rng(seed)
    A = np.zeros((6, 30, 36), np.float32)
    for a, (y, x) in zip(A, [(0, 0), (29, 35), (15, 0), (0, 20), (15, 18), (29, 5)]):
        yy, xx = np.mgrid[:30, :36]
        a += np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 8.0) * (rng.random((30, 36)) > 0.2)
        a[(y + 9) % 30, (x + 11) % 36] = 0.7  # a stray fragment
    A[A < 0.05] = 0
    A[5] = 0  # an empty footprint
    return A


def test_box_morphology_equals_whole_frame_operations():
    from scipy import ndimage

    from scopeline.miniscope.steps.cnmf_common import outline_overlay

    A = _blobs_at_edges()
    peak = A.reshape(6, -1).max(axis=1)
    core = A > (0.1 * peak)[:, None, None]
    expected = ndimage.binary_dilation(core, structure=spatial.disk(3)[None])
    np.testing.assert_array_equal(spatial.dilate_footprints(A, 3, 0.1), expected)
    np.testing.assert_array_equal(spatial.dilate_footprints(A, 0, 0.1), core)
    smoothed = ndimage.gaussian_filter(A, sigma=(0, 1.5, 1.5), mode="constant")
    np.testing.assert_allclose(spatial.smooth_footprints(A, 1.5), smoothed, atol=1e-6)
    for a, kept in zip(A, spatial.peak_component(A)):
        if a.max() > 0:
            labels, _ = ndimage.label(a > 0, structure=np.ones((3, 3)))
            np.testing.assert_array_equal(kept, np.where(labels == labels.flat[np.argmax(a)], a, 0))
    edges = np.zeros(A.shape[1:], bool)
    for a in A[:5]:
        mask = a > 0.3 * a.max()
        edges |= mask & ~ndimage.binary_erosion(mask)
    np.testing.assert_array_equal(outline_overlay(A)[..., 3] > 0, edges)


def test_cluster_units_sparse_overlap_matches_dense_count():
    A = _blobs_at_edges()
    support = spatial.dilate_footprints(A, 2, 0.1)
    flat = support.reshape(6, -1).astype(float)
    inter = flat @ flat.T
    area = np.diag(inter)
    linked = inter > 0.2 * np.maximum(np.minimum(area[:, None], area[None, :]), 1)
    np.fill_diagonal(linked, False)
    clusters = spatial.cluster_units(support, A, 10, 0.2, min_area=1)
    label = {u: i for i, c in enumerate(clusters) for u in c}
    for i, j in zip(*np.nonzero(linked)):
        if area[i] >= 1 and area[j] >= 1:
            assert label[i] == label[j]


def test_tile_statistics_of_float16_movie_with_offset():
    rng = np.random.default_rng(1)
    T, h, w = 230, 12, 14
    Y = (100.0 + rng.standard_normal((T, h, w))).astype(np.float16)  # large mean, unit std
    regressors = rng.standard_normal((3, T))
    tiles = [spatial.Tile(spatial.Box(0, 5, 0, 5), np.array([0, 3, 20]), np.array([0, 2])),
             spatial.Tile(spatial.Box(0, 5, 0, 5), np.array([7, 100]), np.array([1, 2]))]
    Y2 = Y.reshape(T, -1).astype(np.float64)
    R32 = regressors.astype(np.float32).astype(np.float64)
    for per_task in (None, 150):  # tasks of one chunk, or of several chunks summed in the task
        stats, pixel = spatial.tile_statistics(Y, tiles, regressors, n_background=1, frame_chunk=64,
                                               frames_per_task=per_task)
        for t, s in zip(tiles, stats):
            np.testing.assert_allclose(s, Y2[:, t.pixels].T @ R32[t.columns].T, rtol=1e-5)
        np.testing.assert_allclose(pixel["Yf"][:, 0], Y2.T @ R32[2], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(pixel["sum"], Y2.sum(axis=0), rtol=1e-9)
        variance = pixel["sumsq"] / T - (pixel["sum"] / T) ** 2
        np.testing.assert_allclose(variance, Y2.var(axis=0), rtol=1e-3)
