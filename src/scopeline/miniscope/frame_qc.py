"""Broken-frame detection for wireless miniscope recordings (pure functions).

The radio link of a wireless miniscope corrupts whole frames: bands of rows or blocks
are replaced by high-contrast noise, blocks or most of the frame are blacked out (the
sensor offset plus noise). Each frame is judged against its neighbouring frames, cell
by cell on a grid (``ROW_BINS`` row bands x ``COL_BINS`` column segments of the raw
frame), with robust statistics:

1. **Cheap per-frame statistics** (:func:`frame_statistics`, one numba pass in the load
   step, about 0.2 ms per 600x600 frame): per cell the mean and the mean absolute
   difference of horizontally adjacent pixels (high-frequency energy ``hf``).
2. **Decision against the neighbours** (:func:`detect_broken_frames`, motion step): per
   cell a running median over ``window`` frames centred on the frame (so a persistent
   change -- a motion jump, a brightness step -- is the reference from its first frame
   on) and the scaled median absolute deviation of the residual over time.

   * *noise*: ``hf`` exceeds its reference by more than ``k`` MADs **and**, after
     normalising by the shot-noise level expected at the cell's mean
     (``hf_pred(m) = sqrt(a (m - dark) + b)``, fitted over the cells of the recording),
     by more than ``noise_ratio`` times. The normalisation keeps bright transients and
     brightness changes (which raise ``hf`` through shot noise) from counting.
   * *dark*: the mean falls by more than ``k`` MADs and to within ``dark_fraction`` of
     the way from the recording's dark level (1st percentile of the cells' median means:
     the sensor offset outside the imaging field) to its reference.

   A frame is broken when at least ``min_cells`` cells are noisy (reason ``noise``) or
   dark (``dark``). The reference is a median over neighbouring frames, so bursts of up
   to ``window // 2`` consecutive broken frames are still judged against clean ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

ROW_BINS = 128
"""Row bands of the statistics grid (fewer when the frame has fewer rows)."""
COL_BINS = 8
"""Column segments of the statistics grid: partial-width blocks fill most of a segment."""
N_STATS = 2  # mean, high-frequency energy


def grid_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """(row bands, column segments) of the statistics grid of (h, w) frames."""
    h, w = shape
    return min(h, ROW_BINS), min(max(w // 2, 1), COL_BINS)


def frame_statistics(frames: np.ndarray) -> np.ndarray:
    """Per-cell statistics of each frame (t, h, w) -> (t, rows, cols, 2) float32.

    ``[..., 0]`` is the cell's mean (grey levels), ``[..., 1]`` the mean absolute
    difference of horizontally adjacent pixels inside the cell (grey levels). Cells are
    the grid of :func:`grid_shape`: row ``y`` is in band ``y * rows // h``, column ``x``
    in segment ``x * cols // w``. Any real dtype; one pass, no temporary frames.
    """
    frames = np.ascontiguousarray(frames)
    t, h, w = frames.shape
    rows, cols = grid_shape((h, w))
    row_of = (np.arange(h) * rows // h).astype(np.int64)
    col_edges = np.searchsorted(np.arange(w) * cols // w, np.arange(cols + 1), side="left").astype(np.int64)
    out = np.zeros((t, rows, cols, N_STATS), np.float32)
    _statistics(frames, row_of, col_edges, out)
    counts = np.bincount(row_of, minlength=rows).astype(np.float32)
    widths = np.diff(col_edges).astype(np.float32)
    out[..., 0] /= counts[:, None] * widths[None, :]
    out[..., 1] /= counts[:, None] * np.maximum(widths - 1, 1)[None, :]
    return out


@numba.njit(cache=True, nogil=True, fastmath=True)
def _statistics(frames, row_of, col_edges, out):  # pragma: no cover - compiled
    """Sums and absolute-difference sums per cell (float32 accumulators per row segment:
    exact for 8-bit video; relative error about 1e-7 per add otherwise)."""
    t, h = frames.shape[:2]
    cols = len(col_edges) - 1
    for k in range(t):
        for y in range(h):
            r = row_of[y]
            for c in range(cols):
                x0, x1 = col_edges[c], col_edges[c + 1]
                prev = np.float32(frames[k, y, x0])
                total = prev
                diff = np.float32(0)
                for x in range(x0 + 1, x1):
                    v = np.float32(frames[k, y, x])
                    total += v
                    diff += abs(v - prev)
                    prev = v
                out[k, r, c, 0] += total
                out[k, r, c, 1] += diff


@dataclass
class BrokenFrames:
    """Result of :func:`detect_broken_frames` (all arrays over the frames given)."""

    noise: np.ndarray  # (T,) bool: frame has >= min_cells noisy cells
    dark: np.ndarray  # (T,) bool: frame has >= min_cells blacked-out cells
    noise_cells: np.ndarray  # (T,) int: noisy cells per frame
    dark_cells: np.ndarray  # (T,) int: dark cells per frame

    @property
    def broken(self) -> np.ndarray:
        return self.noise | self.dark

    def reasons(self) -> dict[int, str]:
        """{frame: "noise" | "dark" | "noise+dark"} for every broken frame."""
        out = {}
        for t in np.flatnonzero(self.broken):
            out[int(t)] = "+".join(k for k, v in (("noise", self.noise[t]), ("dark", self.dark[t])) if v)
        return out


def running_median(x: np.ndarray, window: int) -> np.ndarray:
    """Median over ``window`` consecutive frames (axis 0) centred on each frame; near the
    ends the window is moved inward (the first / last ``window`` frames), so every frame
    counts once and a burst at the end cannot fill the window twice. float32, any shape
    (t, ...) (NaN counts as 0); a sorted window per value updated frame by frame, about
    10x faster than ``scipy.ndimage.median_filter``."""
    x = np.nan_to_num(np.asarray(x, np.float32))
    t = len(x)
    window = max(1, min(window, t))
    flat = np.ascontiguousarray(x.reshape(t, -1))
    out = np.empty_like(flat)
    _running_median(flat, window, out)
    return out.reshape(x.shape)


@numba.njit(cache=True, nogil=True)
def _running_median(x, window, out):  # pragma: no cover - compiled
    """Sliding median per column: one sorted window per column, updated by removing the
    value that leaves and inserting the one that enters (O(window) per step)."""
    t, n = x.shape
    half = window // 2
    rows = np.empty((n, window), np.float32)
    for j in range(n):
        for i in range(window):  # insertion sort of the first window
            v = x[i, j]
            m = i
            while m > 0 and rows[j, m - 1] > v:
                rows[j, m] = rows[j, m - 1]
                m -= 1
            rows[j, m] = v
    start = 0
    for k in range(t):
        a = min(max(k - half, 0), t - window)
        if a != start:  # the window moved by one frame
            for j in range(n):
                old, new = x[a - 1, j], x[a + window - 1, j]
                i = 0
                while i < window - 1 and rows[j, i] != old:
                    i += 1
                if new > old:
                    while i + 1 < window and rows[j, i + 1] < new:
                        rows[j, i] = rows[j, i + 1]
                        i += 1
                else:
                    while i > 0 and rows[j, i - 1] > new:
                        rows[j, i] = rows[j, i - 1]
                        i -= 1
                rows[j, i] = new
            start = a
        for j in range(n):
            out[k, j] = rows[j, half] if window % 2 else 0.5 * (rows[j, half - 1] + rows[j, half])


def noise_model(level_m: np.ndarray, level_hf: np.ndarray) -> tuple[float, float, float]:
    """(dark, a, b) of ``hf_pred(m) = sqrt(a max(m - dark, 0) + b)`` from the cells' typical
    mean and high-frequency energy (e.g. their medians over time): ``dark`` = 1st
    percentile of the means, ``b`` = the lowest squared energy (read noise), ``a`` = the
    median slope of the squared energy over the brighter cells (shot noise); ``a`` = 0
    when there is no shot-noise trend (then ``hf`` is only compared to its reference)."""
    m, hf = np.asarray(level_m, np.float64).ravel(), np.asarray(level_hf, np.float64).ravel()
    dark = float(np.percentile(m, 1))
    b = max(float(np.percentile(hf, 1)) ** 2, 1e-6)
    x = m - dark
    bright = x > 0.25 * x.max() if x.max() > 0 else np.zeros_like(x, bool)
    a = float(np.median((hf[bright] ** 2 - b) / x[bright])) if bright.any() else 0.0
    return dark, max(a, 0.0), b


def detect_broken_frames(stats, window: int = 11, k: float = 8.0, noise_ratio: float = 1.5,
                         dark_fraction: float = 0.4, min_cells: int = 3, block: int = 2048,
                         sample: int = 2000) -> BrokenFrames:
    """Broken frames from per-frame cell statistics ``stats`` (T, rows, cols, 2) as made by
    :func:`frame_statistics` (any array-like; read ``block`` frames at a time plus a halo,
    so a zarr array of a long recording never sits in memory whole).

    Parameters
    ----------
    window : int
        Frames of the running median each frame is compared with (odd; centred).
    k : float
        Least excess over the reference, in scaled MADs (1.4826 MAD over time, per cell).
    noise_ratio : float
        Least ratio of the shot-noise-normalised high-frequency energy to its reference.
    dark_fraction : float
        A dark cell's mean is below ``dark + dark_fraction * (reference - dark)``.
    min_cells : int
        Least noisy (or dark) cells for a broken frame.
    sample : int
        Frames (evenly spaced) used for the recording-wide noise model.

    Returns
    -------
    BrokenFrames
    """
    T = stats.shape[0]
    if T == 0:
        empty = np.zeros(0, bool)
        return BrokenFrames(empty, empty, np.zeros(0, int), np.zeros(0, int))
    picks = np.unique(np.linspace(0, T - 1, min(T, sample)).round().astype(int))
    sampled = np.asarray(stats.oindex[picks] if hasattr(stats, "oindex") else stats[picks], np.float32)
    sampled = sampled.reshape(len(picks), -1, N_STATS)
    dark, a, b = noise_model(np.median(sampled[..., 0], axis=0), np.median(sampled[..., 1], axis=0))
    half = window // 2
    noise_cells, dark_cells = np.zeros(T, np.int64), np.zeros(T, np.int64)
    for start in range(0, T, block):
        stop = min(start + block, T)
        lo, hi = max(0, start - half), min(T, stop + half)
        x = np.asarray(stats[lo:hi], np.float32).reshape(hi - lo, -1, N_STATS)
        n, d = _judge(x, window, k, noise_ratio, dark_fraction, dark, a, b)
        noise_cells[start:stop], dark_cells[start:stop] = n[start - lo : stop - lo], d[start - lo : stop - lo]
    return BrokenFrames(noise_cells >= min_cells, dark_cells >= min_cells, noise_cells, dark_cells)


def _judge(x: np.ndarray, window: int, k: float, noise_ratio: float, dark_fraction: float,
           dark: float, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Noisy and dark cells per frame of one block (t, cells, 2)."""
    m, hf = x[..., 0], x[..., 1]
    ref = running_median(x, window)
    ref_m, ref_hf = ref[..., 0], ref[..., 1]
    step = max(1, len(x) // 512)  # the MAD over time from at most ~1,000 frames of the block
    residual = np.abs(x[::step] - ref[::step])
    mad = 1.4826 * np.median(residual, axis=0)
    scale_m = np.maximum(mad[:, 0], 0.01 * np.abs(ref_m).mean(axis=0) + 0.05)
    scale_hf = np.maximum(mad[:, 1], 0.01 * ref_hf.mean(axis=0) + 0.02)

    def predicted(mean):
        return np.sqrt(a * np.maximum(mean - dark, 0) + b)

    q, q_ref = hf / predicted(m), ref_hf / predicted(ref_m)
    noisy = (hf - ref_hf > k * scale_hf) & (q > noise_ratio * q_ref)
    black = (ref_m - m > k * scale_m) & (m - dark < dark_fraction * (ref_m - dark))
    return noisy.sum(axis=1), black.sum(axis=1)


def interpolation_plan(broken: np.ndarray, good: np.ndarray) -> np.ndarray:
    """For each broken frame its nearest good neighbours: rows (frame, before, after,
    weight of before) float64, linear in time; at the ends the one neighbour (weight 1
    or 0). ``broken`` and ``good`` are sorted frame numbers. Empty (0, 4) when no good
    frame exists."""
    broken, good = np.asarray(broken, np.int64), np.asarray(good, np.int64)
    if broken.size == 0 or good.size == 0:
        return np.zeros((0, 4))
    j = np.searchsorted(good, broken)
    before = good[np.clip(j - 1, 0, len(good) - 1)]
    after = good[np.clip(j, 0, len(good) - 1)]
    before = np.where(j == 0, after, before)
    after = np.where(j == len(good), before, after)
    span = (after - before).astype(np.float64)
    weight = np.where(span > 0, (after - broken) / np.where(span > 0, span, 1), 1.0)
    return np.column_stack([broken, before, after, weight]).astype(np.float64)
