"""Noise estimation from the high-frequency power spectrum (CNMF's ``get_noise_fft``).

Calcium transients are slow, so the power at frequencies above a quarter of the sampling
rate is essentially the (white) noise: for white noise of standard deviation sigma the
one-sided periodogram ``|X_k|^2 / T`` has expectation ``sigma^2`` at every frequency. The
movie version averages that periodogram over non-overlapping segments of frames (Welch
with a rectangular window), so memory is bounded by one segment, whatever the length.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

from ..float16 import as_dtype


def _band(n: int, freq_range: tuple[float, float]) -> np.ndarray:
    freqs = np.fft.rfftfreq(n)
    band = (freqs >= freq_range[0]) & (freqs <= freq_range[1])
    if not band.any():
        raise ValueError(f"no frequency of a {n}-sample spectrum falls in {freq_range}")
    return band


def band_power(x: np.ndarray, freq_range: tuple[float, float] = (0.25, 0.5)) -> np.ndarray:
    """Mean periodogram ``|X_k|^2 / T`` over the band, along axis 0 (time).

    Returns an array of ``x.shape[1:]``; for white noise its expectation is the variance.
    """
    from scipy import fft

    x = as_dtype(x, np.float32)
    n = x.shape[0]
    # scipy's FFT keeps float32 (complex64) and is several times faster along axis 0 than numpy's
    spectrum = fft.rfft(x - x.mean(axis=0), axis=0)[_band(n, freq_range)]
    return (spectrum.real**2 + spectrum.imag**2).mean(axis=0, dtype=np.float64) / n


def trace_noise(y: np.ndarray, freq_range: tuple[float, float] = (0.25, 0.5)) -> np.ndarray:
    """Noise standard deviation of a trace (T,) or of each row of traces (units, T)."""
    y = np.asarray(y, dtype=np.float64)
    if y.shape[-1] < 8:
        return np.asarray(np.std(y, axis=-1))
    return np.sqrt(band_power(np.moveaxis(y, -1, 0), freq_range))


def movie_noise(Y, segment: int = 512, freq_range: tuple[float, float] = (0.25, 0.5), block_bytes: int = 64 << 20,
                max_segments: int | None = 8):
    """Per-pixel noise std of a (frames, h, w) movie, numpy or dask; returns numpy (h, w).

    The periodogram band power is averaged over segments of ``segment`` frames (the last,
    shorter segment is used when it has at least 16 frames), computed lazily block by block.
    At most ``max_segments`` segments, evenly spread over the recording, are used (noise
    is stationary; 8 x 128 band frequencies give the variance to ~3 %), so the cost does
    not grow with the recording's length.
    """
    import dask.array as da

    Y = da.asarray(Y)
    n_frames, height, width = Y.shape
    segment = int(min(segment, n_frames))
    n_segments = -(-n_frames // segment)
    if max_segments and n_segments > max_segments:
        # whole segments of the segment grid (a movie read in segment-long chunks then
        # needs no re-assembly), evenly spread over the recording
        starts = np.linspace(0, n_frames // segment - 1, max_segments).round().astype(int) * segment
        Y = da.concatenate([Y[s : s + segment] for s in starts], axis=0)
        n_frames = Y.shape[0]
    rows = int(max(1, min(height, block_bytes // max(1, segment * width * Y.dtype.itemsize))))
    if Y.chunks[0][0] == segment and len(Y.chunks[1]) == 1:
        rows = height  # already read in segments of whole frames: keep them (block_power slabs the rows)
    Y = Y.rechunk((segment, rows, width))
    lengths = np.array(Y.chunks[0])
    usable = lengths >= min(16, n_frames)

    def block_power(block: np.ndarray) -> np.ndarray:
        if block.shape[0] < min(16, n_frames):
            return np.zeros((1,) + block.shape[1:], np.float64)
        # a few rows at a time: the float32 copy and the spectrum stay small (a float16
        # store is converted piece by piece)
        step = max(1, (4 << 20) // max(1, block.shape[0] * block.shape[2] * 8))
        power = np.empty(block.shape[1:], np.float64)
        for r in range(0, block.shape[1], step):
            power[r : r + step] = band_power(block[:, r : r + step], freq_range)
        return power[None]

    power = Y.map_blocks(block_power, dtype=np.float64, chunks=((1,) * len(lengths), Y.chunks[1], Y.chunks[2]))
    weights = (usable * lengths).astype(np.float64)
    weighted = (power * weights[:, None, None]).sum(axis=0) / weights.sum()
    return np.sqrt(np.asarray(weighted.compute(), dtype=np.float64)).astype(np.float32)


def bright_threshold(mean_frame: np.ndarray, kind: Literal["mean", "median", "custom"], custom: float | None = None) -> float:
    """Intensity separating 'bright' (active) pixels from background in the mean frame."""
    values = np.asarray(mean_frame)[np.isfinite(mean_frame)]
    if kind == "mean":
        return float(values.mean())
    if kind == "median":
        return float(np.median(values))
    if custom is None:
        raise ValueError("custom background threshold needs a value")
    return float(custom)


def adjust_noise_map(
    sn: np.ndarray, mean_frame: np.ndarray, scaling: float, threshold: float, sigma: float
) -> np.ndarray:
    """Guide step 5a: multiply the noise of pixels brighter than ``threshold`` by
    ``scaling`` (shot noise of active regions), then Gaussian-smooth with ``sigma`` px."""
    adjusted = np.where(np.asarray(mean_frame) > threshold, sn * scaling, sn).astype(np.float32)
    if sigma > 0:
        adjusted = ndimage.gaussian_filter(adjusted, sigma, mode="nearest")
    return adjusted
