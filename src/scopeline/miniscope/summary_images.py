"""Activity summary images of a movie: peak-to-noise ratio and local correlation.

Cells that fire rarely barely show in a mean or max projection or in the leading
components of the movie, but each of their transients stands out of the noise and is
shared by the neighbouring pixels of the cell. Two images measure that, independently of
how often a cell fires (as in CaImAn's CNMF-E initialisation, Zhou et al. 2018):

* peak-to-noise ratio (PNR): the largest value of each pixel's trace, smoothed by a
  ``width``-frame running mean and with its baseline (mean) removed, divided by the noise
  standard deviation of that smoothed trace;
* local correlation: the mean Pearson correlation of each pixel's trace with its 8
  neighbours, computed on the smoothed traces in noise units with values below
  ``threshold`` set to 0 (so only transients, not noise or slow background, correlate).

Both come from one pass over the movie in blocks of frames: each block gives partial
sums (:func:`block_sums`), the sums of all blocks are combined pairwise
(:func:`combine_sums`) and turned into the images (:func:`images_from_sums`). Memory is a
few frame-sized arrays per block, independent of the number of frames.

Per pixel, the noise sigma is estimated from the negative first differences only:
for white noise, d_t = y_t - y_{t-1} has variance 2 sigma^2 and E[min(d, 0)^2] = sigma^2,
while calcium transients rise within a frame (large positive differences) and decay
slowly (small negative ones), so they hardly bias it. The baseline and the noise used for
the threshold of the correlation are those of the block; the PNR uses the noise of the
whole movie.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

# (dy, dx) of the neighbour below / right of a pixel; with their mirror images, all 8
NEIGHBOUR_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass
class ActivityImages:
    pnr: np.ndarray  # (h, w) peak-to-noise ratio of the smoothed, baseline-removed traces (>= 0)
    correlation: np.ndarray  # (h, w) mean correlation with the 8 neighbours, in [-1, 1]
    noise: np.ndarray  # (h, w) noise standard deviation of the smoothed traces


def neighbour_table(shape: tuple[int, int], pixels: np.ndarray | None = None) -> np.ndarray:
    """For each pixel (all of a frame of ``shape``, or the flat indices ``pixels``), the
    position of its neighbour at each of :data:`NEIGHBOUR_OFFSETS` among the same pixels,
    -1 where that neighbour is outside the frame or not one of them: (n, 4) int32."""
    h, w = shape
    pixels = np.arange(h * w) if pixels is None else np.asarray(pixels, np.int64)
    where = np.full(h * w, -1, np.int64)
    where[pixels] = np.arange(len(pixels))
    yy, xx = np.divmod(pixels, w)
    table = np.full((len(pixels), len(NEIGHBOUR_OFFSETS)), -1, np.int32)
    for k, (dy, dx) in enumerate(NEIGHBOUR_OFFSETS):
        ok = (yy + dy < h) & (xx + dx >= 0) & (xx + dx < w)
        table[ok, k] = where[(yy[ok] + dy) * w + xx[ok] + dx]
    return table


@numba.njit(cache=True, nogil=True)
def _accumulate(frames, neighbours, width, threshold, peak, neg_sq, z_sum, z_sq, cross):  # pragma: no cover (compiled)
    """Add one block's partial sums (frames: (t, pixels)) to the float64 accumulators (see
    :func:`block_sums`); returns the number of smoothed samples. The neighbour table
    costs nothing measurable on whole frames (600 x 600 x 100 frames: 0.20-0.25 s either
    way against the same loops over (h, w)): the products are taken only where the
    thresholded value is not 0."""
    T, n = frames.shape
    base = np.zeros(n)
    sigma = np.zeros(n)
    for t in range(T):
        for i in range(n):
            v = frames[t, i]
            base[i] += v
            if t > 0:
                d = v - frames[t - 1, i]
                if d < 0:
                    sigma[i] += d * d
    for i in range(n):
        neg_sq[i] += sigma[i]
        base[i] /= T
        # noise of the block's smoothed trace: sigma / sqrt(width)
        sigma[i] = np.sqrt(sigma[i] / max(T - 1, 1) / width)
    window = np.zeros(n)
    z = np.zeros(n)
    for t in range(T):
        for i in range(n):
            window[i] += frames[t, i]
            if t >= width:
                window[i] -= frames[t - width, i]
        if t < width - 1:
            continue
        for i in range(n):
            x = window[i] / width - base[i]
            if x > peak[i]:
                peak[i] = x
            s = sigma[i]
            v = x / s if s > 0 else 0.0
            if v < threshold:
                v = 0.0
            z[i] = v
            z_sum[i] += v
            z_sq[i] += v * v
        for i in range(n):
            v = z[i]
            if v == 0.0:
                continue
            for k in range(neighbours.shape[1]):
                j = neighbours[i, k]
                if j >= 0:
                    cross[k, i] += v * z[j]
    return T - width + 1


def block_sums(frames: np.ndarray, width: int = 3, threshold: float = 3.0,
               neighbours: np.ndarray | None = None) -> dict:
    """Partial sums of one block of frames for :func:`images_from_sums`: ``frames`` is
    (t, h, w), or (t, n) for a set of pixels whose :func:`neighbour_table` is given.

    ``peak``: max of the ``width``-frame running mean minus the block mean; ``neg_sq`` and
    ``n_diff``: sum of squared negative frame differences and their number; ``z_sum``,
    ``z_sq``, ``cross`` (4, ...) and ``n``: sums of the thresholded noise-unit values,
    their squares and their products with the neighbours of :data:`NEIGHBOUR_OFFSETS`.
    A block shorter than ``width`` is averaged over all its frames."""
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    T, shape = frames.shape[0], frames.shape[1:]
    if neighbours is None:
        neighbours = neighbour_table(shape)
    sums = {"peak": np.full(shape, -np.inf), "neg_sq": np.zeros(shape), "z_sum": np.zeros(shape),
            "z_sq": np.zeros(shape), "cross": np.zeros((len(NEIGHBOUR_OFFSETS),) + shape),
            "n_diff": max(T - 1, 0), "n": 0, "width": int(width)}
    if T == 0:
        return sums
    flat = {key: sums[key].reshape(sums[key].shape[: key == "cross"] + (-1,))
            for key in ("peak", "neg_sq", "z_sum", "z_sq", "cross")}  # views
    sums["n"] = int(_accumulate(frames.reshape(T, -1), neighbours, max(1, min(int(width), T)), float(threshold),
                                flat["peak"], flat["neg_sq"], flat["z_sum"], flat["z_sq"], flat["cross"]))
    return sums


def combine_sums(a: dict, b: dict) -> dict:
    """Partial sums of two sets of blocks together (peaks: max; everything else: sum)."""
    return {key: np.maximum(a[key], b[key]) if key == "peak" else a[key] if key == "width" else a[key] + b[key]
            for key in a}


def _neighbour_correlation(z_sum, z_sq, cross, n, neighbours) -> np.ndarray:
    """Mean correlation of each pixel with its neighbours (those in the table), from the
    sums (flat arrays)."""
    mean = z_sum / max(n, 1)
    sd = np.sqrt(np.maximum(z_sq / max(n, 1) - mean**2, 0))
    total, count = np.zeros(len(mean)), np.zeros(len(mean))
    for k in range(neighbours.shape[1]):
        i = np.flatnonzero(neighbours[:, k] >= 0)  # pixels with this neighbour
        j = neighbours[i, k]  # their neighbours
        den = sd[i] * sd[j]
        r = np.where(den > 0, (cross[k][i] / max(n, 1) - mean[i] * mean[j]) / np.where(den > 0, den, 1), 0)
        for side in (i, j):  # each pixel appears once per offset on each side
            total[side] += r
            count[side] += 1
    return np.clip(total / np.maximum(count, 1), -1, 1)


def images_from_sums(sums: dict, neighbours: np.ndarray | None = None) -> ActivityImages:
    """PNR, local correlation and noise images from the combined partial sums (of whole
    frames, or of the pixels of ``neighbours``: then the images are (n,) arrays)."""
    shape = sums["z_sum"].shape
    if neighbours is None:
        neighbours = neighbour_table(shape)
    noise = np.sqrt(sums["neg_sq"] / max(sums["n_diff"], 1) / sums["width"])
    peak = np.where(np.isfinite(sums["peak"]), sums["peak"], 0)
    pnr = np.where(noise > 0, np.maximum(peak, 0) / np.where(noise > 0, noise, 1), 0)
    corr = _neighbour_correlation(sums["z_sum"].ravel(), sums["z_sq"].ravel(),
                                  sums["cross"].reshape(len(sums["cross"]), -1), sums["n"], neighbours)
    return ActivityImages(pnr.astype(np.float32), corr.reshape(shape).astype(np.float32), noise.astype(np.float32))


def activity_images(video, width: int = 3, threshold: float = 3.0) -> ActivityImages:
    """PNR and local correlation images of a (frames, h, w) numpy or dask movie in one
    pass over its blocks of frames (dask tasks on the active scheduler, partial sums
    combined in a tree). ``width``: frames of the running mean; ``threshold``: noise
    units below which smoothed values do not count in the correlation."""
    import dask
    import dask.array as da

    from .tasks import tree_reduce

    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    video = video if isinstance(video, da.Array) else da.from_array(np.asarray(video), chunks=(100, -1, -1))
    if video.shape[0] == 0:
        raise ValueError("the movie has no frames")
    video = video.rechunk((video.chunksize[0], -1, -1))
    parts = [dask.delayed(block_sums)(block, width, threshold) for block in video.to_delayed().ravel()]
    (sums,) = dask.compute(tree_reduce(parts, combine_sums))
    return images_from_sums(sums)


def seed_score(images: ActivityImages, min_corr: float, min_pnr: float) -> tuple[np.ndarray, np.ndarray]:
    """Score (PNR x correlation) of every pixel as a candidate cell centre, and the mask of
    pixels where both reach their minimum (``min_corr``, ``min_pnr``)."""
    score = np.nan_to_num(images.pnr * np.maximum(images.correlation, 0), nan=0.0, posinf=0.0, neginf=0.0)
    return score.astype(np.float32), (images.correlation >= min_corr) & (images.pnr >= min_pnr) & (score > 0)
