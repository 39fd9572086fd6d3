"""Rigid motion estimation by band-limited phase correlation with sub-pixel refinement.

Frames are compared through the low-frequency band of their spectra (|f| <= ``BAND``
cycles/px; after denoising the rest is mostly noise). Only the band is computed: a
real FFT along rows keeping the band's columns, a complex FFT of those columns, and
the negative column frequencies from conjugate symmetry (a third of a full 2-D FFT). The phase-normalised cross-power
spectrum is evaluated directly -- as a matrix-multiply DFT (Guizar-Sicairos et al.
2008) -- on a 2-px grid of shifts within ``max_shift`` (no wrap-around, so jumps up to
``max_shift`` are found), then on 1/4-px and 1/``upsample``-px grids around the best.
Shifts follow skimage's convention: the (dy, dx) to apply to a frame to register it
onto the template (``scipy.ndimage.shift(frame, shift)``).

Estimation is recursive and chunked: within a chunk each frame is registered to the
chunk's template, which is rebuilt from the registered frames; chunk templates are then
registered to each other and to a global template rebuilt the same way. Everything works
on band spectra, so templates never need warping.
"""

from __future__ import annotations

import numba
import numpy as np

_EPS = 1e-12
BAND = 0.25
TEMPLATE_BAND = 0.125
COARSE_BAND = 0.125


def band_frequencies(shape: tuple[int, int], band: float = BAND) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row / column indices of the band of an (h, w) spectrum and their frequencies."""
    fy, fx = np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1])
    rows, cols = np.flatnonzero(np.abs(fy) <= band), np.flatnonzero(np.abs(fx) <= band)
    return rows, cols, fy[rows], fx[cols]


class _BandFFT:
    """``fft2(frame)[np.ix_(rows, cols)]`` of real frames computed from the band only."""

    def __init__(self, shape: tuple[int, int], band: float):
        h, w = shape
        self.rows, self.cols, fy, fx = band_frequencies(shape, band)
        self.n_pos = int((fx >= 0).sum())
        position = {r: i for i, r in enumerate(self.rows)}
        negatives = [position.get((h - r) % h) for r in self.rows]
        # the band is symmetric (band < 0.5): the negative columns are conjugates of positive ones
        self.symmetric = band < 0.5 and None not in negatives and np.all(np.diff(self.cols[: self.n_pos]) == 1)
        if self.symmetric:
            self.neg_rows = np.array(negatives)
            self.neg_cols = (w - self.cols[self.n_pos :]) % w

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        import scipy.fft

        if not self.symmetric:
            return scipy.fft.fft2(frame, workers=1)[np.ix_(self.rows, self.cols)]
        half = scipy.fft.rfft(frame, axis=1, workers=1)[:, : self.n_pos]
        half = scipy.fft.fft(half, axis=0, workers=1)[self.rows]
        out = np.empty((len(self.rows), len(self.cols)), np.complex64)
        out[:, : self.n_pos] = half
        out[:, self.n_pos :] = np.conj(half[self.neg_rows][:, self.neg_cols])
        return out


def edge_window(shape: tuple[int, int], alpha: float = 0.2) -> np.ndarray:
    """2-D Tukey window: 1 inside, cosine taper over ``alpha``/2 of each side, so the
    frame's edges (which do not move with the tissue) do not pull the shift to zero."""
    from scipy.signal.windows import tukey

    return np.outer(tukey(shape[0], alpha), tukey(shape[1], alpha)).astype(np.float32)


def band_spectra(frames: np.ndarray, band: float = BAND, taper: bool = False) -> np.ndarray:
    """Low-frequency spectra (t, ny, nx) complex64 of the mean-subtracted frames
    (edge-tapered with ``taper``: for patches cut from inside a frame)."""
    transform = _BandFFT(frames.shape[1:], band)
    window = edge_window(frames.shape[1:]) if taper else None
    out = np.empty((len(frames), len(transform.rows), len(transform.cols)), np.complex64)
    for i, frame in enumerate(frames):
        frame = np.asarray(frame, np.float32)
        frame = frame - np.float32(frame.mean(dtype=np.float64))
        out[i] = transform(frame if window is None else frame * window)
    return out


def _kernel(offsets: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    return np.exp(2j * np.pi * np.outer(offsets, freqs)).astype(np.complex64)


class _Grid:
    """DFT kernels of one grid of offsets around a centre: the kernel for centre c is
    exp(2 pi i (c + o) f) = exp(2 pi i o f) * exp(2 pi i c f), so only the ramp (one
    vector) is computed per search."""

    def __init__(self, offsets: np.ndarray, fy: np.ndarray, fx: np.ndarray):
        self.offsets, self.fy, self.fx = offsets, fy, fx
        self.ky, self.kx = _kernel(offsets, fy), _kernel(offsets, fx)

    def best(self, cross: np.ndarray, cy: float, cx: float) -> tuple[float, float, float]:
        ky = self.ky * np.exp(2j * np.pi * cy * self.fy).astype(np.complex64) if cy else self.ky
        kx = self.kx * np.exp(2j * np.pi * cx * self.fx).astype(np.complex64) if cx else self.kx
        surface = (ky @ cross @ kx.T).real
        y, x = np.unravel_index(np.argmax(surface), surface.shape)
        return cy + self.offsets[y], cx + self.offsets[x], surface[y, x] / cross.size


def register_spectra(spectra: np.ndarray, template: np.ndarray, fy: np.ndarray, fx: np.ndarray,
                     max_shift: float = 20, upsample: int = 20, centers: np.ndarray | None = None,
                     fine: bool = True, phase: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Shift (t, 2) registering each band spectrum onto ``template`` and the peak height (t,).

    The search covers ``centers[i]`` (rounded; default 0) +- ``max_shift`` px;
    ``fine=False`` stops at 1/4 px; ``phase=False`` uses plain cross-correlation (better
    for small smooth patches, where phase correlation is pulled to 0 by the patch edges)."""
    coarse = np.arange(-np.ceil(max_shift / 2) * 2, max_shift + 2, 2.0)
    coarse = coarse[np.abs(coarse) <= max_shift + 1]
    sub_y, sub_x = np.abs(fy) <= COARSE_BAND, np.abs(fx) <= COARSE_BAND
    coarse_grid = _Grid(coarse, fy[sub_y], fx[sub_x])
    quarter_grid = _Grid(np.arange(-4, 5) / 4, fy, fx)
    fine_grid = _Grid(np.arange(-round(upsample / 4), round(upsample / 4) + 1) / upsample, fy, fx)
    shifts = np.zeros((len(spectra), 2))
    peaks = np.zeros(len(spectra))
    for i, spectrum in enumerate(spectra):
        cy, cx = (0.0, 0.0) if centers is None else np.round(centers[i])
        if phase:
            cross = _phase_cross(template, spectrum)
        else:
            cross = template * np.conj(spectrum)
            cross *= cross.size / (np.linalg.norm(template) * np.linalg.norm(spectrum) + _EPS)
        dy, dx, _ = coarse_grid.best(cross[np.ix_(sub_y, sub_x)], cy, cx)
        dy, dx, peak = quarter_grid.best(cross, dy, dx)
        if fine and upsample > 4:
            dy, dx, peak = fine_grid.best(cross, dy, dx)
        shifts[i], peaks[i] = (dy, dx), peak
    return shifts, peaks


@numba.njit(cache=True, nogil=True)
def _phase_cross(template: np.ndarray, spectrum: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Phase-normalised cross-power spectrum template * conj(spectrum) / |...| in one pass."""
    out = np.empty_like(template)
    for i in range(template.shape[0]):
        for j in range(template.shape[1]):
            a, b = template[i, j], spectrum[i, j]
            re = a.real * b.real + a.imag * b.imag
            im = a.imag * b.real - a.real * b.imag
            scale = np.float32(1.0) / (np.sqrt(re * re + im * im) + np.float32(_EPS))
            out[i, j] = complex(re * scale, im * scale)
    return out


def mean_shifted_spectrum(spectra: np.ndarray, shifts: np.ndarray, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """Band spectrum of the mean of the frames shifted by ``shifts`` (Fourier shift theorem)."""
    total = np.zeros(spectra.shape[1:], np.complex64)
    for spectrum, (dy, dx) in zip(spectra, shifts):
        ramp_y = np.exp(-2j * np.pi * dy * fy).astype(np.complex64)
        ramp_x = np.exp(-2j * np.pi * dx * fx).astype(np.complex64)
        total += spectrum * np.outer(ramp_y, ramp_x)
    return total / max(len(spectra), 1)


def recursive_register(spectra: np.ndarray, fy: np.ndarray, fx: np.ndarray, max_shift: float = 20,
                       upsample: int = 20, template_frames: int = 50,
                       iterations: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Register a stack of band spectra to its own template, rebuilt from the registered
    stack ``iterations`` times. Returns shifts (t, 2), peak heights (t,), template spectrum."""
    template = spectra[:template_frames].mean(axis=0)
    for it in range(iterations + 1):
        last = it == iterations
        shifts, peaks = register_spectra(spectra, template, fy, fx, max_shift, upsample, fine=last)
        if not last:
            template = mean_shifted_spectrum(spectra, shifts, fy, fx)
    return shifts, peaks, template


def estimate_chunk(frames: np.ndarray, max_shift: int = 20, upsample: int = 20,
                   template_frames: int = 50) -> dict:
    """Within-chunk registration of frames (t, h, w): shifts, peaks, template spectrum.

    Runs single-threaded (BLAS too): parallelism comes from chunks, and small
    multi-threaded matrix products are many times slower."""
    from threadpoolctl import threadpool_limits

    _, _, fy, fx = band_frequencies(frames.shape[1:])
    with threadpool_limits(1):
        shifts, peaks, template = recursive_register(band_spectra(frames), fy, fx, max_shift, upsample,
                                                     template_frames)
    # the chunk template (an average of many frames) is kept at half the band: a quarter
    # of the memory per chunk in the client, which holds one per chunk of the recording
    keep_y, keep_x = np.abs(fy) <= TEMPLATE_BAND, np.abs(fx) <= TEMPLATE_BAND
    return {"shifts": shifts, "peaks": peaks, "template": template[np.ix_(keep_y, keep_x)]}


def combine_chunks(chunks: list[dict], shape: tuple[int, int], max_shift: int = 20,
                   upsample: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Register the chunk templates to each other; return the total shift and peak of every frame.

    Each template is first registered to its predecessor (neighbours differ by at most the
    motion of one chunk) and the offsets are chained; then all templates are registered
    to the mean of the aligned templates, searching around the chained offsets, which
    removes the accumulated error of the chain. The result is centred on the median
    position (rounded), so most frames move least."""
    from threadpoolctl import threadpool_limits

    _, _, fy, fx = band_frequencies(shape, TEMPLATE_BAND)
    templates = np.stack([c["template"] for c in chunks])
    offsets = np.zeros((len(templates), 2))
    with threadpool_limits(1):
        for i in range(1, len(templates)):
            step, _ = register_spectra(templates[i : i + 1], templates[i - 1], fy, fx, max_shift, upsample)
            offsets[i] = offsets[i - 1] + step[0]
        for _ in range(2):
            reference = mean_shifted_spectrum(templates, offsets, fy, fx)
            offsets, _ = register_spectra(templates, reference, fy, fx, max_shift, upsample, centers=offsets)
    shifts = np.concatenate([c["shifts"] + offset for c, offset in zip(chunks, offsets)])
    peaks = np.concatenate([c["peaks"] for c in chunks])
    return shifts - np.median(shifts, axis=0).round(), peaks


def motion_outliers(shifts: np.ndarray, k: float = 5.0, min_motion: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Frames whose frame-to-frame motion exceeds mean + k std (and ``min_motion`` px).

    Returns the indices and the motion (t,) of every frame (0 for the first)."""
    motion = np.zeros(len(shifts))
    if len(shifts) > 1:
        motion[1:] = np.hypot(*np.diff(shifts, axis=0).T)
    threshold = max(motion.mean() + k * motion.std(), min_motion)
    return np.flatnonzero(motion > threshold), motion


def apply_shifts(frames: np.ndarray, shifts: np.ndarray, fill: float = 0.0,
                 box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Shift each frame by (dy, dx) with bilinear interpolation; float32 out. With
    ``box`` = (y0, y1, x0, x1) only that window of the shifted frames is computed."""
    import cv2

    cv2.setNumThreads(1)
    t, h, w = frames.shape
    y0, y1, x0, x1 = box if box is not None else (0, h, 0, w)
    out = np.empty((t, y1 - y0, x1 - x0), np.float32)
    for i, (frame, (dy, dx)) in enumerate(zip(frames, shifts)):
        matrix = np.float32([[1, 0, dx - x0], [0, 1, dy - y0]])
        out[i] = cv2.warpAffine(frame.astype(np.float32, copy=False), matrix, (x1 - x0, y1 - y0),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=float(fill))
    return out


def mesh_field(frame: np.ndarray, template: np.ndarray, mesh: tuple[int, int], max_shift: int = 5,
               upsample: int = 10) -> np.ndarray:
    """Non-rigid residual shifts (mesh_y, mesh_x, 2) at a grid of control points.

    Each control point's shift registers a patch of the frame (about two grid spacings
    wide, edge-tapered, plain cross-correlation) onto the same patch of the template; a 3x3 median filter over the grid removes
    isolated failures."""
    from scipy.ndimage import median_filter

    h, w = frame.shape
    ys, xs = np.linspace(0, h - 1, mesh[0]), np.linspace(0, w - 1, mesh[1])
    half_y, half_x = max(16, int(h / (mesh[0] - 1))), max(16, int(w / (mesh[1] - 1)))
    field = np.zeros((mesh[0], mesh[1], 2))
    for i, cy in enumerate(ys):
        for j, cx in enumerate(xs):
            y0, y1 = int(max(0, cy - half_y)), int(min(h, cy + half_y))
            x0, x1 = int(max(0, cx - half_x)), int(min(w, cx + half_x))
            patches = np.stack([frame[y0:y1, x0:x1], template[y0:y1, x0:x1]])
            _, _, fy, fx = band_frequencies(patches.shape[1:], 0.5)
            spectra = band_spectra(patches, 0.5, taper=True)
            shift, _ = register_spectra(spectra[:1], spectra[1], fy, fx, max_shift, upsample, phase=False)
            field[i, j] = shift[0]
    if min(mesh) >= 3:
        field = np.stack([median_filter(field[..., k], size=3, mode="nearest") for k in (0, 1)], axis=-1)
    return field


def warp_mesh(frame: np.ndarray, field: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Shift every pixel by the bilinear interpolation of the control-point ``field``."""
    import cv2
    from scipy.interpolate import RectBivariateSpline

    h, w = frame.shape
    ys, xs = np.linspace(0, h - 1, field.shape[0]), np.linspace(0, w - 1, field.shape[1])
    dy = RectBivariateSpline(ys, xs, field[..., 0], kx=1, ky=1)(np.arange(h), np.arange(w))
    dx = RectBivariateSpline(ys, xs, field[..., 1], kx=1, ky=1)(np.arange(h), np.arange(w))
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    return cv2.remap(np.asarray(frame, np.float32), (xx - dx).astype(np.float32), (yy - dy).astype(np.float32),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=float(fill))


def apply_mesh(frames: np.ndarray, template: np.ndarray, mesh: tuple[int, int], fill: float = 0.0,
               max_shift: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Non-rigid correction of rigidly corrected frames; returns frames and fields (t, my, mx, 2)."""
    from threadpoolctl import threadpool_limits

    out = np.empty(frames.shape, np.float32)
    fields = np.zeros((len(frames), mesh[0], mesh[1], 2), np.float32)
    with threadpool_limits(1):
        for i, frame in enumerate(frames):
            fields[i] = mesh_field(frame, template, mesh, max_shift)
            out[i] = warp_mesh(frame, fields[i], fill)
    return out, fields
