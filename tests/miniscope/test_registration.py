import numpy as np
import pytest
from scipy import ndimage

from scopeline.miniscope.registration import apply_shifts, combine_chunks, estimate_chunk, motion_outliers


def _texture(shape=(160, 160), seed=0):
    rng = np.random.default_rng(seed)
    image = ndimage.gaussian_filter(rng.standard_normal(shape), 3)
    return (image - image.min()) / np.ptp(image) * 100


def _shifted_stack(displacements, noise=1.0, seed=0):
    """Frames = texture displaced by ``displacements`` (dy, dx), plus noise."""
    base = np.fft.fft2(_texture(seed=seed))
    rng = np.random.default_rng(seed + 1)
    frames = [np.fft.ifft2(ndimage.fourier_shift(base, d)).real for d in displacements]
    return np.stack(frames).astype(np.float32) + rng.normal(0, noise, (len(displacements), 160, 160)).astype(np.float32)


def _rmse(estimated, displacements):
    """RMSE of the estimated registration shifts against -displacement, up to a constant."""
    error = estimated + displacements
    error -= error.mean(axis=0)
    return float(np.sqrt((error**2).sum(axis=1).mean()))


def test_subpixel_shifts_within_a_chunk():
    rng = np.random.default_rng(3)
    displacements = rng.uniform(-3, 3, size=(40, 2))
    result = estimate_chunk(_shifted_stack(displacements), max_shift=10, upsample=20, template_frames=10)
    assert _rmse(result["shifts"], displacements) < 0.1


def test_jump_of_12_px_is_found():
    displacements = np.zeros((40, 2))
    displacements[25:] = (7.0, -9.75)  # |jump| = 12 px
    result = estimate_chunk(_shifted_stack(displacements), max_shift=20, upsample=20, template_frames=10)
    assert _rmse(result["shifts"], displacements) < 0.1


def test_chunks_are_chained_beyond_max_shift():
    """Two jumps of 12 px in the same direction: 24 px from the start, more than max_shift
    from the first template, still registered through the chain of chunk templates."""
    displacements = np.zeros((90, 2))
    displacements[35:] += (0.0, 12.0)
    displacements[65:] += (0.0, 12.0)
    displacements += np.linspace(0, 1.5, 90)[:, None]  # slow drift
    stack = _shifted_stack(displacements)
    chunks = [estimate_chunk(stack[i : i + 30], max_shift=15, upsample=20, template_frames=10) for i in (0, 30, 60)]
    shifts, peaks = combine_chunks(chunks, stack.shape[1:], max_shift=15, upsample=20)
    assert _rmse(shifts, displacements) < 0.15
    assert peaks.min() > 0.05


def test_apply_shifts_matches_bilinear_shift():
    frame = _texture((64, 64))[None].astype(np.float32)
    out = apply_shifts(frame, np.array([[2.5, -1.25]]))
    expected = ndimage.shift(frame[0], (2.5, -1.25), order=1)
    assert np.allclose(out[0, 8:-8, 8:-8], expected[8:-8, 8:-8], atol=1e-3)
    assert out[0, :2].max() == 0  # filled


def test_apply_then_estimate_registers_back():
    stack = _shifted_stack(np.array([[0, 0]] * 10 + [[4.3, -2.6]] * 10))
    result = estimate_chunk(stack, max_shift=10, template_frames=5)
    corrected = apply_shifts(stack, result["shifts"])
    assert np.abs(corrected[15, 20:-20, 20:-20] - corrected[2, 20:-20, 20:-20]).mean() < 2.5


def test_motion_outliers_hand_case():
    shifts = np.zeros((100, 2))
    shifts[:, 1] = np.linspace(0, 1, 100)  # smooth drift, 0.01 px/frame
    shifts[60:, 0] += 12  # one jump at frame 60
    dropped, motion = motion_outliers(shifts, k=5, min_motion=2.0)
    assert dropped.tolist() == [60]
    assert motion[60] == pytest.approx(np.hypot(12, 0.0101), abs=1e-3)
    dropped, _ = motion_outliers(shifts[:50], k=1, min_motion=2.0)  # nothing above 2 px
    assert dropped.size == 0


def test_non_rigid_mesh_reduces_a_smooth_deformation():
    import cv2

    from scopeline.miniscope.registration import apply_mesh

    template = _texture((160, 160)).astype(np.float32)
    yy, xx = np.mgrid[:160, :160].astype(np.float32)
    frames = []
    for k in range(3):
        dy, dx = 2.0 * np.sin(2 * np.pi * xx / 160 + k), 1.5 * np.cos(2 * np.pi * yy / 160 + k)
        frames.append(cv2.remap(template, xx - dx, yy - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    frames = np.stack(frames)
    corrected, fields = apply_mesh(frames, template, (9, 9))
    inner = (slice(None), slice(20, -20), slice(20, -20))
    before = np.abs(frames - template)[inner].mean()
    after = np.abs(corrected - template)[inner].mean()
    assert fields.shape == (3, 9, 9, 2)
    assert after < 0.6 * before
