"""Shift-and-crop kernel, float16 conversion and frame grouping of the crop / motion steps."""

import numpy as np
from scipy import ndimage

from scopeline.miniscope.fieldcrop import shift_into_box
from scopeline.miniscope.float16 import from_float16, to_float16
from scopeline.miniscope.steps.motion import frame_groups


def test_shift_into_box_matches_scipy_bilinear_shift():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 40, 50), dtype=np.uint8)
    shifts = np.array([[0.0, 0.0], [2.25, -3.5], [-7.75, 0.4], [0.5, 11.0]])
    mask = np.ones((30, 36), bool)
    mask[0, 0] = False
    out = shift_into_box(frames, shifts, 5, 7, mask, fill=3.0)
    for frame, shift, got in zip(frames, shifts, out):
        expected = ndimage.shift(frame.astype(np.float64), shift, order=1, mode="constant", cval=3.0)
        expected = expected[5:35, 7:43] * mask
        # scipy treats pixels within one pixel of the edge as partly outside too: compare the interior
        inner = np.s_[2:-2, 2:-2] if np.abs(shift).max() < 2 else np.s_[:, :]
        interior = np.zeros(mask.shape, bool)
        interior[inner] = True
        sy, sx = int(np.ceil(abs(shift[0]))) + 1, int(np.ceil(abs(shift[1]))) + 1
        valid = np.zeros(frame.shape, bool)
        valid[sy:-sy, sx:-sx] = True
        interior &= valid[5:35, 7:43]
        assert np.allclose(got[interior], expected[interior], atol=1e-3)
    assert out[0, 0, 0] == 0  # outside the mask
    assert out.dtype == np.float32


def test_shift_into_box_fills_outside_and_nan():
    frames = np.full((1, 10, 10), 7.0, np.float32)
    frames[0, 5, 5] = np.nan
    out = shift_into_box(frames, np.array([[0.0, 3.0]]), 0, 0, np.ones((10, 10), bool), fill=-1.0)
    assert np.all(out[0, :, :3] == -1.0)  # shifted in from outside the frame
    assert out[0, 5, 5 + 3] == -1.0  # the NaN pixel, moved by 3 px
    assert np.all(out[0, :5, 3:] == 7.0)


def test_to_float16_rounds_like_numpy():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-300, 300, 100_000), [65504, 65519, 65520, 1e5, 1.0, 2.0**-14]]).astype(np.float32)
    with np.errstate(over="ignore"):
        expected = x.astype(np.float16)
    assert np.array_equal(to_float16(x).view(np.uint16), expected.view(np.uint16))
    assert to_float16(np.float32([2.0**-16]))[0] == 0  # below the smallest normal
    assert np.isnan(to_float16(np.float32([np.nan]))[0])


def test_frame_groups_subset_and_mean():
    used = np.array([0, 1, 2, 4, 5, 6, 7, 9])
    assert frame_groups(used, 1, "mean").ravel().tolist() == used.tolist()
    assert frame_groups(used, 3, "subset").ravel().tolist() == [0, 4, 7]
    assert frame_groups(used, 3, "mean").tolist() == [[0, 1, 2], [4, 5, 6]]


def test_from_float16_is_exact_for_every_value():
    every = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    expected = every.astype(np.float32)
    got = from_float16(every)
    assert np.array_equal(got.view(np.uint32)[~np.isnan(expected)], expected.view(np.uint32)[~np.isnan(expected)])
    assert np.isnan(got[np.isnan(expected)]).all()
