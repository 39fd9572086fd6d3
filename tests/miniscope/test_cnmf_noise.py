"""Noise estimation from the high-frequency spectrum, and the guide's scaling/smoothing."""

import dask.array as da
import numpy as np
import pytest

from scopeline.miniscope.cnmf.noise import adjust_noise_map, bright_threshold, movie_noise, trace_noise


def test_movie_noise_recovers_known_sigma_under_slow_signal():
    rng = np.random.default_rng(0)
    T, h, w = 3000, 12, 10
    sigma = np.linspace(0.5, 2.0, h * w).reshape(h, w)
    slow = 5 * np.sin(2 * np.pi * np.arange(T) / 300)[:, None, None] * rng.uniform(0, 1, (1, h, w))
    Y = (slow + sigma * rng.standard_normal((T, h, w))).astype(np.float32)
    estimate = movie_noise(da.from_array(Y, chunks=(700, h, w)), segment=512)
    np.testing.assert_allclose(estimate, sigma, rtol=0.08)
    # the plain standard deviation would be far off: the test can tell the two apart
    assert np.median(np.abs(Y.std(axis=0) / sigma - 1)) > 0.5


def test_trace_noise_matches_sigma():
    rng = np.random.default_rng(1)
    y = 0.7 * rng.standard_normal((3, 5000))
    np.testing.assert_allclose(trace_noise(y), 0.7, rtol=0.05)


def test_segment_length_does_not_change_white_noise_estimate():
    rng = np.random.default_rng(2)
    Y = rng.standard_normal((2000, 4, 4)).astype(np.float32)
    a, b = movie_noise(Y, segment=256), movie_noise(Y, segment=2000)
    np.testing.assert_allclose(a, b, rtol=0.1)


def test_bright_threshold_kinds():
    frame = np.array([[0.0, 1.0], [2.0, 9.0]])
    assert bright_threshold(frame, "mean") == 3.0
    assert bright_threshold(frame, "median") == 1.5
    assert bright_threshold(frame, "custom", 7.0) == 7.0
    with pytest.raises(ValueError):
        bright_threshold(frame, "custom")


def test_adjust_noise_map_scales_only_bright_pixels():
    sn = np.ones((3, 3), np.float32)
    mean_frame = np.zeros((3, 3))
    mean_frame[1, 1] = 10
    out = adjust_noise_map(sn, mean_frame, 1.5, threshold=1.0, sigma=0)
    expected = np.ones((3, 3))
    expected[1, 1] = 1.5
    np.testing.assert_allclose(out, expected)
    smoothed = adjust_noise_map(sn, mean_frame, 1.5, threshold=1.0, sigma=1.0)
    assert smoothed[1, 1] < 1.5 and smoothed[0, 0] > 1.0
    assert np.isclose(smoothed.sum(), expected.sum(), rtol=0.05)


def test_segment_cap_keeps_the_estimate():
    rng = np.random.default_rng(3)
    Y = (0.5 * rng.standard_normal((6000, 6, 6))).astype(np.float32)
    capped = movie_noise(da.from_array(Y, chunks=(1000, 6, 6)), segment=256, max_segments=4)
    np.testing.assert_allclose(capped, 0.5, rtol=0.1)
