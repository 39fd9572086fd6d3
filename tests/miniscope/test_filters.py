import numpy as np
import pytest

from scopeline.miniscope.filters import (
    anisotropic_diffusion,
    denoise,
    output_dtype,
    preprocess_frames,
    remove_background,
)
from scopeline.miniscope.params import PreprocessParams


def _disk_frame(size=96, background=60.0, radius=4, amplitude=80.0):
    yy, xx = np.mgrid[:size, :size]
    smooth = background + 30 * np.exp(-((yy - size / 2) ** 2 + (xx - size / 3) ** 2) / (2 * 40.0**2))
    cell = (yy - 48) ** 2 + (xx - 48) ** 2 <= radius**2
    return np.clip(smooth + amplitude * cell, 0, 255).astype(np.uint8)[None], cell


def test_tophat_removes_smooth_background_keeps_cell():
    frame, cell = _disk_frame()
    out = remove_background(frame, "tophat", 15)
    assert out.dtype == np.uint8
    assert out[0][~cell].max() <= 3  # smooth background gone (up to rounding)
    assert out[0][cell].min() >= 75  # the cell's excess survives


def test_uniform_background_clips_at_zero():
    frame, cell = _disk_frame()
    out = remove_background(frame, "uniform", 15)
    assert out.min() >= 0 and out[0][cell].mean() > 40
    assert np.median(out[0][~cell]) <= 2


def test_median_removes_salt_and_pepper():
    frame = np.full((1, 32, 32), 100, np.uint8)
    frame[0, 5, 5], frame[0, 20, 9] = 255, 0
    assert np.all(denoise(frame, "median", 3) == 100)


@pytest.mark.parametrize("method", ["gaussian", "bilateral", "anisotropic"])
def test_smoothers_reduce_noise_and_keep_the_mean(method):
    rng = np.random.default_rng(0)
    frame = np.clip(100 + rng.normal(0, 10, (1, 64, 64)), 0, 255).astype(np.uint8)
    out = denoise(frame, method, 5, sigma_color=60, iterations=10, kappa=50)
    assert out[0].std() < 0.6 * frame[0].std()
    assert abs(float(out.mean()) - float(frame.mean())) < 1.5


def test_anisotropic_preserves_a_strong_edge():
    step = np.zeros((1, 32, 32), np.float32)
    step[:, :, 16:] = 200
    out = anisotropic_diffusion(step, iterations=20, kappa=10, gamma=0.2)
    assert np.allclose(out, step, atol=1.0)


def test_output_dtype_follows_the_methods():
    assert output_dtype(np.uint8, PreprocessParams()) == np.uint8
    assert output_dtype(np.uint8, PreprocessParams(denoise="anisotropic")) == np.float32
    frames = np.random.default_rng(1).integers(0, 255, (3, 40, 40), dtype=np.uint8)
    for params in (PreprocessParams(), PreprocessParams(denoise="anisotropic", background="uniform")):
        assert preprocess_frames(frames, params).dtype == output_dtype(np.uint8, params)



@pytest.mark.parametrize("size", [3, 7, 9, 15])
def test_median_int_equals_opencv_and_scipy(size):
    import cv2
    from scipy.ndimage import median_filter

    from scopeline.miniscope.filters import median_int

    rng = np.random.default_rng(size)
    frame = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    frame[5:9, 10:30] = 255  # flat runs and saturation
    frame[20:, :4] = 0
    assert np.array_equal(median_int(frame, size), cv2.medianBlur(frame, size))
    wide = rng.integers(0, 65536, (37, 53), dtype=np.uint16)
    assert np.array_equal(median_int(wide, size), median_filter(wide, size, mode="nearest"))


def test_16_bit_and_float_video_take_a_7x7_median():
    from scipy.ndimage import median_filter

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 4096, (2, 30, 40), dtype=np.uint16)
    expected = median_filter(frames, size=(1, 7, 7), mode="nearest").astype(np.float32)
    assert np.array_equal(denoise(frames, "median", 7), expected)
    assert np.array_equal(denoise(frames.astype(np.float32), "median", 7), expected)
