"""Ring background (CNMF-E): ring means by hand, the fit on an exact ring model, and on a
movie whose background is NOT a ring model (local blobs with their own dynamics plus
smooth fluctuations at several scales) the ring estimate recovers the background under
the cells better than the low-rank one; the out-of-core versions against numpy."""

import dask.array as da
import numpy as np
from scipy import ndimage

from scopeline.miniscope.cnmf import ring_background as rb


def test_ring_means_by_hand():
    frame = np.arange(49, dtype=np.float32).reshape(7, 7)
    # radius 1, width 1: the 8 neighbours; the centre pixel (3, 3) = 24, neighbours average 24
    ring = rb.ring_means(frame, 1, 1)
    assert ring[3, 3] == 24.0
    # corner (0, 0): neighbours inside the frame are (0, 1), (1, 0), (1, 1) = 1, 7, 8
    assert np.isclose(ring[0, 0], (1 + 7 + 8) / 3)
    # radius 2, width 1 around (3, 3): the 16 pixels at Chebyshev distance 2
    yy, xx = np.mgrid[:7, :7]
    on_ring = np.maximum(abs(yy - 3), abs(xx - 3)) == 2
    assert np.isclose(rb.ring_means(frame, 2, 1)[3, 3], frame[on_ring].mean())
    # a mask: the mean is over the ring's pixels inside the field only
    mask = xx < 3
    expected = frame[on_ring & mask].mean()
    assert np.isclose(rb.ring_means(frame, 2, 1, mask)[3, 3], expected)
    # a ring with no pixel in the field has mean 0
    assert rb.ring_means(frame, 2, 1, xx == 0)[3, 3] == 0.0
    # width 2 (distances 2 and 3) on a stack of frames
    both = rb.ring_means(np.stack([frame, 2 * frame]), 2, 2)
    on_wide = (np.maximum(abs(yy - 3), abs(xx - 3)) >= 2)
    np.testing.assert_allclose(both[:, 3, 3], [frame[on_wide].mean(), 2 * frame[on_wide].mean()])


def test_fit_recovers_an_exact_ring_model():
    rng = np.random.default_rng(0)
    T, h, w = 200, 24, 24
    weight = rng.uniform(0.5, 1.5, (h, w)).astype(np.float32)
    offset = rng.uniform(-3, 3, (h, w)).astype(np.float32)
    ring = rng.normal(10, 2, (T, h, w)).astype(np.float32)  # any ring means at all
    z = offset + weight * ring
    model = rb.fit_ring(rb.ring_statistics(z, ring), 3, 1)
    np.testing.assert_allclose(model.weight, weight, rtol=1e-3)
    np.testing.assert_allclose(model.offset, offset, atol=2e-2)
    # sums of two halves combine to the sums of the whole
    whole = rb.ring_statistics(z, ring)
    halves = rb.combine_statistics(rb.ring_statistics(z[:77], ring[:77]), rb.ring_statistics(z[77:], ring[77:]))
    for name in ("z", "r", "rr", "zr"):
        np.testing.assert_allclose(getattr(halves, name), getattr(whole, name), rtol=1e-9)
    # a pixel outside the field, or whose ring never varies, gets weight 0 and the mean as offset
    ring[:, 0, 0] = 5.0
    mask = np.ones((h, w), bool)
    mask[1, 1] = False
    model = rb.fit_ring(rb.ring_statistics(z, ring), 3, 1, mask)
    assert model.weight[0, 0] == 0 and model.weight[1, 1] == 0
    assert np.isclose(model.offset[1, 1], z[:, 1, 1].mean(), rtol=1e-5)


def _crowded(seed=0, h=64, w=64, T=400):
    """Cells on a background that is not a ring model: 40 out-of-focus blobs (sigma 4-9 px)
    with their own positive transients, plus smooth fluctuations at 4, 8 and 16 px with
    their own slow time courses (18 patterns), plus a constant."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    B = np.full((T, h, w), 30.0, np.float32)
    for _ in range(40):
        cy, cx, s = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 9)
        trace = ndimage.gaussian_filter1d(rng.standard_normal(T), 3)
        trace = 1 + 2 * np.maximum(trace, 0) / trace.std()
        B += (rng.uniform(5, 15) * trace)[:, None, None] * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    for scale in (4, 8, 16):
        for _ in range(6):
            pattern = ndimage.gaussian_filter(rng.standard_normal((h, w)), scale)
            trace = ndimage.gaussian_filter1d(rng.standard_normal(T), 5)
            B += 2 * (trace / trace.std())[:, None, None] * (pattern / pattern.std())
    n = 25
    A = np.zeros((n, h, w), np.float32)
    for i in range(n):
        cy, cx = rng.uniform(6, h - 6), rng.uniform(6, w - 6)
        A[i] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 2.0**2))
    A[A < 0.05] = 0
    spikes = rng.random((n, T)) < 0.03
    C = np.zeros((n, T), np.float32)
    for t in range(T):
        C[:, t] = (0.9 * C[:, t - 1] if t else 0) + 20 * spikes[:, t]
    Y = B + np.einsum("nhw,nt->thw", A, C) + rng.normal(0, 1, (T, h, w)).astype(np.float32)
    return Y.astype(np.float32), A, C, B


def _low_rank(Z: np.ndarray, away: np.ndarray, k: int) -> np.ndarray:
    """The pipeline's low-rank background: a constant and ``k`` time courses from the pixels
    ``away`` from the cells (leading singular vectors), maps by least squares on every pixel."""
    X = Z[:, away] - Z[:, away].mean(axis=0)
    u = np.linalg.svd(X, full_matrices=False)[0]
    F = np.vstack([np.ones(len(Z)), u[:, :k].T])
    maps = np.linalg.lstsq(F.T, Z.reshape(len(Z), -1), rcond=None)[0]
    return (F.T @ maps).reshape(Z.shape)


def test_ring_recovers_a_local_background_better_than_low_rank():
    Y, A, C, B = _crowded()
    cells = A.max(axis=0) > 0.3
    Z = Y - np.einsum("nhw,nt->thw", A, C)  # the residual given the true cells
    model = rb.fit_ring_movie(da.from_array(Y, chunks=(64, -1, -1)), A, C, radius=6, width=2)
    ring_error = np.sqrt(np.mean((rb.ring_background(Z, model) - B)[:, cells] ** 2))
    away = ~ndimage.binary_dilation(A.max(axis=0) > 0, iterations=3)
    low_rank_error = np.sqrt(np.mean((_low_rank(Z, away, 8) - B)[:, cells] ** 2))
    background_std = float(B[:, cells].std(axis=0).mean())
    # measured: ring 5.7, low-rank (8 components, the pipeline's default) 11.3, background std 17.9
    assert ring_error < 0.6 * low_rank_error
    assert ring_error < 0.4 * background_std


def test_movie_versions_match_numpy():
    Y, A, C, _ = _crowded(seed=1, h=40, w=48, T=150)
    mask = np.ones(Y.shape[1:], bool)
    mask[:, :5] = False
    Yd = da.from_array(Y.astype(np.float16), chunks=(40, -1, -1))
    y = Y.astype(np.float16).astype(np.float32)
    Z = y - np.einsum("nhw,nt->thw", A, C)
    model = rb.fit_ring_movie(Yd, A, C, 5, 2, mask)
    direct = rb.fit_ring(rb.ring_statistics(Z, rb.ring_means(Z, 5, 2, mask)), 5, 2, mask)
    np.testing.assert_allclose(model.weight, direct.weight, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.offset, direct.offset, rtol=1e-4, atol=1e-3)
    out = rb.subtract_ring_movie(Yd, A, C, model, mask)
    assert out.shape == Y.shape and out.dtype == np.float32
    expected = (y - rb.ring_background(Z, model, mask)) * mask
    np.testing.assert_allclose(out.compute(), expected, atol=1e-3)


def test_ring_radius_from_the_footprints():
    yy, xx = np.mgrid[:40, :40]
    # discs of radius 4 px (area 49 px above any level < 1): equivalent radius 3.95 -> 2 x = 7.9
    A = np.stack([(np.hypot(yy - 10 - 20 * i, xx - 20) <= 4).astype(np.float32) for i in range(2)])
    assert (A[0] > 0).sum() == 49
    assert rb.ring_radius_for(A) == 8
    assert rb.ring_radius_for(A, factor=1.25) == 5
    # the level counts: a Gaussian of sigma 2 px is 30 % of its max out to 2 sqrt(2 ln(1/0.3)) = 3.1 px
    gauss = np.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / (2 * 2.0**2))[None]
    assert rb.ring_radius_for(gauss, factor=1.0) == 3
    assert rb.ring_radius_for(np.zeros((0, 40, 40))) == 2
