"""Footprints grown from seed pixels, for crowded one-photon fields (CNMF-E manner).

In a crowded field the summary images (mean, max, NNDSVD components) show neighbouring
cells as one blob, and watershed regions of those images straddle cells. CNMF-E (Zhou et
al. 2018, eLife 7:e28728, doi:10.7554/eLife.28728) instead starts from seed pixels, the
peaks of peak-to-noise ratio x local correlation, and takes as a cell's footprint the
pixels whose traces follow the seed's trace. This module does that in ONE pass over the
movie, without holding it:

* the seed trace is the mean of the (2 ``radius`` + 1)^2 window around the seed;
* every block of frames is centred on its own per-pixel mean (a high-pass that removes
  bleaching and slow neuropil or out-of-focus drifts, i.e. the smooth background), and
  each block adds the within-block cross-products of the seed trace with the pixels of a
  square patch around the seed, and their sums of squares;
* the footprint is the regression coefficient cov(y_p, c) / var(c) on the pixels whose
  correlation with the seed trace reaches ``min_corr`` and that connect to the seed;
  neighbouring cells fire independently, so their pixels do not correlate and are left
  out even where the blurred cells touch.

The same pass gives the seed traces (for merging seeds that are the same cell: footprints
overlapping AND traces correlated, :func:`merge_seeds`).
"""

from __future__ import annotations

import numpy as np


def find_seeds(score: np.ndarray, mask: np.ndarray, min_distance: int, sigma: float = 1.0) -> np.ndarray:
    """(n, 2) int pixel positions of the local maxima of the ``sigma``-smoothed ``score``
    inside the boolean ``mask``, at least ``min_distance`` px apart, best first."""
    from skimage.feature import peak_local_max

    from .segmentation import smooth_image

    smooth = smooth_image(np.nan_to_num(score.astype(np.float32)), sigma)
    if not np.any(mask):
        return np.zeros((0, 2), int)
    peaks = peak_local_max(smooth, min_distance=max(1, int(min_distance)), labels=mask.astype(np.uint8),
                           exclude_border=False)
    order = np.argsort(-smooth[tuple(peaks.T)], kind="stable") if len(peaks) else np.zeros(0, int)
    return peaks[order].astype(int).reshape(-1, 2)


def patch_boxes(seeds: np.ndarray, shape: tuple[int, int], patch_radius: int) -> np.ndarray:
    """(n, 4) boxes ``y0, y1, x0, x1`` of the square patches around the seeds, clipped."""
    h, w = shape
    s = np.asarray(seeds, int).reshape(-1, 2)
    return np.c_[np.maximum(s[:, 0] - patch_radius, 0), np.minimum(s[:, 0] + patch_radius + 1, h),
                 np.maximum(s[:, 1] - patch_radius, 0), np.minimum(s[:, 1] + patch_radius + 1, w)]


def block_seed_sums(frames: np.ndarray, seeds: np.ndarray, boxes: np.ndarray, radius: int = 1) -> dict:
    """Partial sums of one block of frames (t, h, w) for :func:`seed_footprints`:
    ``trace`` (n, t) the seed window means, ``cc`` (n,) and ``cross`` (list of patches)
    the within-block sums of c^2 and of y_p c, ``yy`` (h, w) of y^2 (all after removing
    each pixel's block mean)."""
    frames = np.asarray(frames, np.float32)
    T, h, w = frames.shape
    centred = frames - frames.mean(axis=0, keepdims=True)
    n = len(seeds)
    trace = np.zeros((n, T), np.float32)
    cross = []
    cc = np.zeros(n)
    for i, (y, x) in enumerate(np.asarray(seeds, int)):
        window = frames[:, max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1]
        trace[i] = window.reshape(T, -1).mean(axis=1)
        c = trace[i] - trace[i].mean()
        cc[i] = float(c @ c)
        y0, y1, x0, x1 = boxes[i]
        patch = centred[:, y0:y1, x0:x1]
        cross.append(np.tensordot(c, patch, axes=(0, 0)).astype(np.float64))
    return {"trace": trace, "cc": cc, "cross": cross, "yy": np.einsum("tij,tij->ij", centred, centred,
                                                                        dtype=np.float64)}


def combine_seed_sums(a: dict, b: dict) -> dict:
    """Sums of two consecutive runs of blocks (traces concatenated in time)."""
    return {"trace": np.concatenate([a["trace"], b["trace"]], axis=1), "cc": a["cc"] + b["cc"],
            "cross": [x + y for x, y in zip(a["cross"], b["cross"])], "yy": a["yy"] + b["yy"]}


def footprints_from_sums(sums: dict, seeds: np.ndarray, boxes: np.ndarray, shape: tuple[int, int],
                         min_corr: float):
    """Sparse CSR (n, h*w) footprints and (n,) peak correlations from the combined sums."""
    from scipy import ndimage, sparse

    h, w = shape
    rows, cols, vals = [], [], []
    for i, (y, x) in enumerate(np.asarray(seeds, int)):
        y0, y1, x0, x1 = boxes[i]
        cov = sums["cross"][i]
        den = np.sqrt(sums["yy"][y0:y1, x0:x1] * sums["cc"][i])
        corr = np.where(den > 0, cov / np.where(den > 0, den, 1), 0)
        keep = corr >= min_corr
        labels, _ = ndimage.label(keep)
        own = labels[y - y0, x - x0]
        if own == 0:
            continue
        region = labels == own
        coef = np.maximum(cov / max(sums["cc"][i], 1e-30), 0) * region
        py, px = np.nonzero(coef > 0)
        rows.append(np.full(len(py), i))
        cols.append((py + y0) * w + px + x0)
        vals.append(coef[py, px])
    if not rows:
        return sparse.csr_matrix((len(seeds), h * w), dtype=np.float32)
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(len(seeds), h * w), dtype=np.float32)


def seed_footprints(video, seeds: np.ndarray, patch_radius: int = 15, min_corr: float = 0.4, radius: int = 1):
    """Footprints (sparse CSR (n, h*w)) and traces (n, T) of ``seeds`` (n, 2) from one
    pass over a (frames, h, w) numpy or dask movie (module docstring). A seed whose own
    window does not reach ``min_corr`` has an empty footprint."""
    import dask
    import dask.array as da

    from .tasks import share, tree_reduce

    video = video if isinstance(video, da.Array) else da.from_array(np.asarray(video), chunks=(100, -1, -1))
    video = video.rechunk((video.chunksize[0], -1, -1))
    shape = video.shape[1:]
    seeds = np.asarray(seeds, int).reshape(-1, 2)
    boxes = patch_boxes(seeds, shape, patch_radius)
    shared = share((seeds, boxes))
    parts = [dask.delayed(lambda b, sb: block_seed_sums(b, sb[0], sb[1], radius))(block, shared)
             for block in video.to_delayed().ravel()]
    (sums,) = dask.compute(tree_reduce(parts, combine_seed_sums))
    return footprints_from_sums(sums, seeds, boxes, shape, min_corr), sums["trace"]


def merge_seeds(A, traces: np.ndarray, min_overlap: float, min_corr: float, order: np.ndarray | None = None):
    """Indices of the seeds kept: visiting seeds in ``order`` (best first), a seed is
    dropped when it shares >= ``min_overlap`` of the smaller support with a kept seed AND
    their traces correlate >= ``min_corr`` (the same cell found twice). Touching cells
    that fire independently both stay."""
    from scipy import sparse

    n = A.shape[0]
    order = np.arange(n) if order is None else np.asarray(order)
    support = sparse.csr_matrix(A > 0, dtype=np.float32)
    sizes = np.asarray(support.sum(axis=1)).ravel()
    shared = (support @ support.T).tocsr()
    x = traces - traces.mean(axis=1, keepdims=True)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    kept: list[int] = []
    is_kept = np.zeros(n, bool)
    for i in map(int, order):
        if sizes[i] == 0:
            continue
        row = shared.getrow(i)
        dup = False
        for j, common in zip(row.indices, row.data):
            if j != i and is_kept[j] and common >= min_overlap * min(sizes[i], sizes[j]):
                if float(x[i] @ x[j]) >= min_corr:
                    dup = True
                    break
        if not dup:
            kept.append(i)
            is_kept[i] = True
    return np.array(kept, int)
