import numpy as np
import pytest

from scopeline.miniscope.summary_images import (
    NEIGHBOUR_OFFSETS,
    ActivityImages,
    activity_images,
    block_sums,
    combine_sums,
    images_from_sums,
    seed_score,
)


def _disk(shape, center, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2).astype(np.float32)


def _reference_sums(frames, width, threshold):
    """Plain numpy version of ``block_sums`` (the definition, written out)."""
    y = frames.astype(np.float64)
    T, h, w = y.shape
    d = np.diff(y, axis=0)
    neg_sq = (np.minimum(d, 0) ** 2).sum(axis=0)
    sigma = np.sqrt(neg_sq / (T - 1) / width)
    smooth = np.stack([y[t - width + 1 : t + 1].mean(axis=0) for t in range(width - 1, T)])
    x = smooth - y.mean(axis=0)
    z = np.where(sigma > 0, x / np.where(sigma > 0, sigma, 1), 0)
    z[z < threshold] = 0
    cross = np.zeros((4, h, w))
    for k, (dy, dx) in enumerate(NEIGHBOUR_OFFSETS):
        a = (slice(None), slice(0, h - dy), slice(max(0, -dx), w - max(0, dx)))
        b = (slice(None), slice(dy, h), slice(max(0, dx), w - max(0, -dx)))
        cross[k][a[1:]] = (z[a] * z[b]).sum(axis=0)
    return {"peak": x.max(axis=0), "neg_sq": neg_sq, "z_sum": z.sum(axis=0), "z_sq": (z * z).sum(axis=0),
            "cross": cross, "n": T - width + 1, "n_diff": T - 1}


def test_block_sums_match_their_definition():
    rng = np.random.default_rng(0)
    frames = rng.normal(10, 1, (40, 9, 11)).astype(np.float32)
    frames[12:16, 3:6, 4:8] += 8  # a transient shared by neighbouring pixels
    got, want = block_sums(frames, width=3, threshold=2.0), _reference_sums(frames, 3, 2.0)
    for key, value in want.items():
        assert np.allclose(got[key], value, rtol=1e-5, atol=1e-6), key


def test_pnr_by_hand():
    """Trace 0 0 4 0 0 0: differences 0 4 -4 0 0, so sigma^2 = 16 / 5; mean 2/3.
    Running mean of 2: 0 2 2 0 0, peak 2 - 2/3 above the mean, noise sigma / sqrt(2)."""
    frames = np.zeros((6, 1, 1), np.float32)
    frames[2] = 4
    sigma = np.sqrt(16 / 5)
    one = activity_images(frames, width=1)
    assert one.noise[0, 0] == pytest.approx(sigma) and one.pnr[0, 0] == pytest.approx((4 - 2 / 3) / sigma)
    two = activity_images(frames, width=2)
    assert two.pnr[0, 0] == pytest.approx((2 - 2 / 3) / (sigma / np.sqrt(2)), rel=1e-6)


def test_noise_of_white_noise():
    """White noise sigma = 2: the running mean of 3 has noise 2 / sqrt(3); a transient
    of 20 stands far above the noise maxima (about 3 sigma)."""
    rng = np.random.default_rng(1)
    frames = rng.normal(50, 2, (600, 24, 24)).astype(np.float32)
    frames[200:230, 12, 12] += 20
    images = activity_images(frames, width=3, threshold=3.0)
    assert np.median(images.noise) == pytest.approx(2 / np.sqrt(3), rel=0.03)
    background = np.delete(images.pnr.ravel(), 12 * 24 + 12)
    assert 2.5 < np.median(background) < 4.5 and background.max() < 6
    assert images.pnr[12, 12] > 10


def test_rare_cell_scores_like_an_active_cell():
    """A cell firing twice and one firing 20 times get the same PNR and correlation,
    while the mean frame shows only the active one; noise pixels do not correlate."""
    rng = np.random.default_rng(2)
    T, shape = 1000, (48, 48)
    kernel = np.exp(-np.arange(30) / 6.0)
    active, rare = np.zeros(T), np.zeros(T)
    active[rng.choice(T - 30, 20, replace=False)] = 1
    rare[[300, 700]] = 1
    movie = rng.normal(20, 1, (T,) + shape)
    for cell, trace in ((_disk(shape, (14, 14), 4), active), (_disk(shape, (32, 34), 4), rare)):
        movie += 6 * np.convolve(trace, kernel)[:T, None, None] * cell
    images = activity_images(movie.astype(np.float32), width=3, threshold=3.0)
    pnr_active, pnr_rare = images.pnr[14, 14], images.pnr[32, 34]
    assert pnr_rare > 8 and pnr_rare == pytest.approx(pnr_active, rel=0.3)
    assert images.correlation[14, 14] > 0.8 and images.correlation[32, 34] > 0.8
    far = np.ones(shape, bool)
    far[6:23, 6:23] = far[24:41, 26:43] = False
    assert np.median(np.abs(images.correlation[far])) < 0.1
    score, mask = seed_score(images, min_corr=0.7, min_pnr=6)
    assert mask[14, 14] and mask[32, 34] and not mask[far].any()
    assert score[32, 34] > 8


def test_blocks_combine_like_one_pass():
    """Chunked and single-block results agree (baselines are per block, so up to noise)."""
    rng = np.random.default_rng(3)
    frames = rng.normal(5, 1, (300, 16, 16)).astype(np.float32)
    frames[100:110, 4:9, 4:9] += 10
    import dask.array as da

    chunked = activity_images(da.from_array(frames, chunks=(50, -1, -1)), 3, 3.0)
    whole = images_from_sums(block_sums(frames, 3, 3.0))
    assert np.allclose(chunked.noise, whole.noise, rtol=0.05)  # differences across block edges are not used
    # the baseline is the block mean: the 10-frame transient of 10 raises it by 100 / 50
    # in its 50-frame block but by 100 / 300 in the whole movie
    peak_chunked, peak_whole = (im.pnr[6, 6] * im.noise[6, 6] for im in (chunked, whole))
    assert peak_chunked == pytest.approx(peak_whole - 100 * (1 / 50 - 1 / 300), abs=0.3)
    assert chunked.correlation[6, 6] == pytest.approx(whole.correlation[6, 6], abs=0.02)
    a, b, c = (block_sums(frames[s : s + 100], 3, 3.0) for s in (0, 100, 200))
    left, right = combine_sums(combine_sums(a, b), c), combine_sums(a, combine_sums(b, c))
    for key in left:
        assert np.allclose(left[key], right[key]), key


def test_constant_pixels_and_short_blocks():
    frames = np.zeros((2, 5, 5), np.float32)  # shorter than the running mean; no noise at all
    images = activity_images(frames, width=3)
    assert np.all(images.pnr == 0) and np.all(images.correlation == 0) and np.all(images.noise == 0)
    with pytest.raises(ValueError):
        activity_images(np.zeros((0, 5, 5), np.float32))
    assert isinstance(images, ActivityImages)
