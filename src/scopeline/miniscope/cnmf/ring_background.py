"""Local (ring) background model of one-photon data (CNMF-E).

In one-photon recordings most of a pixel's light comes from out of focus: neuropil and
the blurred glow of cells above and below the focal plane. That background fluctuates
locally, on the scale of a few cells, which a few spatially extended low-rank components
``b f`` cannot follow. CNMF-E (Zhou et al. 2018, eLife 7:e28728, doi:10.7554/eLife.28728)
models the background at each pixel as a weighted combination of the pixels on a ring
around it, radius a bit larger than a cell so that the ring lies outside the cell:

    B = W (Y - A C) + b0,

fitted from the data. Here each pixel has one weight on the mean of its ring:

    B_t(x) = b0(x) + w(x) * ring_t(x),   ring_t = mean over the ring of (Y_t - A C_t),

with ``w`` and ``b0`` the per-pixel least-squares fit of ``(Y - A C)(x)`` on ``ring(x)``
over frames (a pixel's background is then its neighbourhood's current background,
scaled). The ring is the square annulus of pixels whose Chebyshev distance from the
centre lies in ``[radius, radius + width)``: two box filters per frame (cost independent
of the radius), averaged only over pixels inside the imaging field (``mask``).

Everything the fit needs comes from one pass over the movie (per-pixel sums, see
:func:`ring_statistics`, combined with :func:`combine_statistics`); the background-free
movie ``Y - B`` is a lazy dask movie computed block by block when read
(:func:`subtract_ring_movie`), so the movie is never held in memory.

Measured (``benchmarks/miniscope_accuracy.py``, ring radius 8 px from
:func:`ring_radius_for`), against the low-rank background alone: crowded-field simulator,
seed 0 of its harder setting (three times the out-of-focus cells, nearer the focus; twice the neuropil
on a finer scale): F1 0.800 -> 0.823 (150 cells) and 0.825 -> 0.840 (250 cells), median
corr C 0.922 -> 0.935 and 0.916 -> 0.925, median corr S 0.784 -> 0.821 and 0.773 ->
0.794; default setting, seeds 0-2 at 150 and 250 cells: F1 0.899-0.951 (0.891-0.933), corr C 0.950-0.962,
corr S 0.840-0.883 (0.816-0.878); sparse simulator unchanged. Details and the choice of
the radius in docs/miniscope_cnmf.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

DOI = "10.7554/eLife.28728"


def _box_sums(frame: np.ndarray, side: int) -> np.ndarray:
    """Sum of ``frame`` over the ``side`` x ``side`` square centred on every pixel (zero outside)."""
    import cv2

    if side <= 0:
        return np.zeros_like(frame)
    return cv2.boxFilter(frame, -1, (side, side), normalize=False, borderType=cv2.BORDER_CONSTANT)


def ring_sums(frame: np.ndarray, radius: int, width: int) -> np.ndarray:
    """Sum of ``frame`` (h, w) over the square annulus around every pixel: the pixels at
    Chebyshev distance ``radius <= d < radius + width`` (zero outside the frame)."""
    frame = np.ascontiguousarray(frame, np.float32)
    return _box_sums(frame, 2 * (radius + width) - 1) - _box_sums(frame, 2 * radius - 1)


def ring_count(mask: np.ndarray, radius: int, width: int) -> np.ndarray:
    """Number of in-field (``mask``) pixels on every pixel's ring (h, w)."""
    return np.rint(ring_sums(np.asarray(mask, np.float32), radius, width))


def ring_means(frames: np.ndarray, radius: int, width: int = 2, mask: np.ndarray | None = None) -> np.ndarray:
    """Mean of each frame over the ring around every pixel.

    Parameters
    ----------
    frames : (t, h, w) or (h, w) array
    radius : int
        Inner Chebyshev radius of the ring (px), a bit more than a cell's radius.
    width : int
        Width of the ring (px).
    mask : (h, w) bool, optional
        Pixels inside the imaging field; the mean is over the ring's pixels inside it
        (0 where the ring holds none). Default: every pixel.

    Returns
    -------
    (t, h, w) or (h, w) float32 array of ring means.
    """
    frames = np.asarray(frames, np.float32)
    single = frames.ndim == 2
    frames = frames[None] if single else frames
    shape = frames.shape[1:]
    inside = np.ones(shape, bool) if mask is None else np.asarray(mask, bool)
    count = ring_count(inside, radius, width)
    scale = np.where(count > 0, 1.0 / np.maximum(count, 1), 0.0).astype(np.float32)
    out = np.empty(frames.shape, np.float32)
    for t, frame in enumerate(frames):
        out[t] = ring_sums(np.where(inside, frame, 0), radius, width) * scale
    return out[0] if single else out


def ring_radius_for(A, level: float = 0.3, factor: float = 2.0, smallest: int = 2) -> int:
    """A ring radius (px) outside the typical cell: ``factor`` x the median equivalent
    radius ``sqrt(area / pi)`` of the footprints' pixels above ``level`` x their max
    (at least ``smallest``). ``A``: (units, h, w) array or sparse (units, pixels).

    On both simulators (cells of about 4 px radius at 30 % of max) the default gives 8 px.
    On the crowded one's harder setting (250 cells) F1 was 0.818 / 0.868 / 0.860 / 0.853 /
    0.853 at 3 / 4 / 5 / 6 / 8 px, but at 5 px (``factor`` 1.25) the sparse simulator's
    300 px fields of overlapping neurons lost corr C (0.964 -> 0.948, seed 1; 0.964 at 8 px):
    the ring lay on the neighbours."""
    if A.shape[0] == 0:
        return int(smallest)
    A = sparse.csr_matrix(A.reshape(len(A), -1) if not sparse.issparse(A) else A)
    peak = A.max(axis=1).toarray().ravel()
    rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    area = np.bincount(rows[A.data > level * peak[rows]], minlength=A.shape[0])
    return max(int(smallest), int(round(factor * np.sqrt(np.median(area[area > 0]) / np.pi)))) if (area > 0).any() \
        else int(smallest)


@dataclass
class RingStatistics:
    """Per-pixel sums over frames of the residual ``z`` and its ring mean ``r``."""

    n: int
    z: np.ndarray  # (h, w) float64 sum of z
    r: np.ndarray  # sum of r
    rr: np.ndarray  # sum of r^2
    zr: np.ndarray  # sum of z r


def ring_statistics(residual: np.ndarray, ring: np.ndarray) -> RingStatistics:
    """Sums of one block of frames: ``residual`` (t, h, w) = ``Y - A C`` and ``ring`` =
    :func:`ring_means` of it, both about the block's first frame (float64 sums of the
    float32 products)."""
    z = np.asarray(residual, np.float32)
    r = np.asarray(ring, np.float32)
    return RingStatistics(len(z), z.sum(axis=0, dtype=np.float64), r.sum(axis=0, dtype=np.float64),
                          np.einsum("tij,tij->ij", r, r, dtype=np.float64),
                          np.einsum("tij,tij->ij", z, r, dtype=np.float64))


def combine_statistics(a: RingStatistics, b: RingStatistics) -> RingStatistics:
    """Sums of two blocks together."""
    return RingStatistics(a.n + b.n, a.z + b.z, a.r + b.r, a.rr + b.rr, a.zr + b.zr)


@dataclass
class RingModel:
    """Per-pixel ring background: ``B = offset + weight * ring_means(Y - A C)``."""

    weight: np.ndarray  # (h, w) float32
    offset: np.ndarray  # (h, w) float32
    radius: int
    width: int


def fit_ring(stats: RingStatistics, radius: int, width: int, mask: np.ndarray | None = None,
             ridge: float = 1e-6) -> RingModel:
    """Least-squares weight and offset of every pixel's ring from the sums of all frames.

    Parameters
    ----------
    stats : RingStatistics
        Sums over all frames (:func:`ring_statistics`, :func:`combine_statistics`).
    radius, width : int
        The ring the sums were computed with (kept in the model).
    mask : (h, w) bool, optional
        Pixels inside the imaging field; outside, weight 0 and offset the mean residual.
    ridge : float
        Relative ridge on the ring's variance (a pixel whose ring does not vary gets weight 0).

    Returns
    -------
    RingModel
        ``weight = cov(z, r) / var(r)``, ``offset = mean(z) - weight * mean(r)`` per pixel.
    """
    n = max(stats.n, 1)
    mean_z, mean_r = stats.z / n, stats.r / n
    var_r = np.maximum(stats.rr / n - mean_r**2, 0.0)
    cov = stats.zr / n - mean_z * mean_r
    floor = ridge * max(float(np.median(var_r[var_r > 0])) if (var_r > 0).any() else 0.0, 1e-30)
    weight = np.where(var_r > floor, cov / (var_r + floor), 0.0)
    if mask is not None:
        weight = np.where(np.asarray(mask, bool), weight, 0.0)
    offset = mean_z - weight * mean_r
    return RingModel(weight.astype(np.float32), offset.astype(np.float32), int(radius), int(width))


def ring_background(residual: np.ndarray, model: RingModel, mask: np.ndarray | None = None) -> np.ndarray:
    """The background ``offset + weight * ring_means(residual)`` of frames (t, h, w) (or one
    frame (h, w)) of the residual ``Y - A C``, float32."""
    ring = ring_means(residual, model.radius, model.width, mask)
    return model.offset + model.weight * ring


# ----------------------------------------------------------------------- out of core
@dataclass
class _Units:
    """The cells' part of the model for the block kernels: footprints restricted to the
    pixels they cover (CSR (units, covered)), those pixels' flat indices, the traces."""

    A: sparse.csr_matrix
    pixels: np.ndarray
    C: np.ndarray  # (units, frames) float32


def _units(A, C: np.ndarray) -> _Units:
    A = sparse.csr_matrix(A.reshape(len(A), -1) if not sparse.issparse(A) else A, dtype=np.float32)
    pixels = np.flatnonzero(np.asarray(A.getnnz(axis=0)) > 0)
    return _Units(A[:, pixels].tocsr(), pixels, np.asarray(C, np.float32))


def _frames_and_cells(y, units: _Units, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
    """A block of frames as float32 (t, h * w) (a copy, finite) and the cells' part ``A^T C``
    on the covered pixels (t, covered)."""
    from ..float16 import as_dtype
    from .temporal import finite_block

    y = np.asarray(y)
    frames = as_dtype(y, np.float32).reshape(len(y), -1)
    if np.shares_memory(frames, y) or not frames.flags.writeable:
        frames = frames.copy()
    frames = finite_block(frames, True)
    cells = np.asarray(units.A.T @ units.C[:, t0:t1], np.float32).T  # (t, covered)
    return frames, np.ascontiguousarray(cells)


def _block_statistics(y, units: _Units, t0: int, t1: int, radius: int, width: int, mask) -> RingStatistics:
    frames, cells = _frames_and_cells(y, units, t0, t1)
    frames[:, units.pixels] -= cells
    z = frames.reshape(np.shape(y))
    return ring_statistics(z, ring_means(z, radius, width, mask))


def _block_subtracted(y, units: _Units, model: RingModel, t0: int, t1: int, mask) -> np.ndarray:
    frames, cells = _frames_and_cells(y, units, t0, t1)
    t, (h, w) = len(frames), model.weight.shape
    inside = np.ones((h, w), bool) if mask is None else np.asarray(mask, bool)
    count = ring_count(inside, model.radius, model.width)
    scaled_weight = np.where(count > 0, model.weight / np.maximum(count, 1), 0.0).astype(np.float32)
    inside_f = inside.astype(np.float32)
    offset = (model.offset * inside_f).ravel()
    z = np.empty(h * w, np.float32)
    for k in range(t):  # frame by frame: the temporaries stay in cache
        np.copyto(z, frames[k])
        z[units.pixels] -= cells[k]
        z *= inside_f.ravel()
        background = ring_sums(z.reshape(h, w), model.radius, model.width)
        background *= scaled_weight
        frames[k] -= background.ravel()
        frames[k] -= offset
    frames *= inside_f.ravel()
    return frames.reshape(t, h, w)


def _blocks(Y):
    import dask.array as da

    Y = da.asarray(Y)
    T, h, w = Y.shape
    Y = Y.rechunk((Y.chunksize[0], h, w))
    starts = np.r_[0, np.cumsum(Y.chunks[0])].astype(int)
    return Y, [(block, int(starts[k]), int(starts[k + 1])) for k, block in enumerate(Y.to_delayed().ravel())]


def fit_ring_movie(Y, A, C: np.ndarray, radius: int, width: int = 2, mask: np.ndarray | None = None,
                   ridge: float = 1e-6) -> RingModel:
    """Fit the ring background of a movie in one pass over its blocks of frames.

    Parameters
    ----------
    Y : (frames, h, w) numpy or dask array
        The movie (chunks of whole frames are kept; memory: one block at a time per task).
    A : (units, h, w) array or sparse (units, pixels)
        Footprints.
    C : (units, frames) array
        Their traces, on the movie's scale (``A C`` is the cells' part of ``Y``).
    radius, width : int
        The ring (px, see :func:`ring_means`).
    mask : (h, w) bool, optional
        Pixels inside the imaging field.
    ridge : float
        See :func:`fit_ring`.

    Returns
    -------
    RingModel
    """
    import dask

    from ..tasks import share, tree_reduce

    Y, blocks = _blocks(Y)
    units = share(_units(A, C))
    parts = [dask.delayed(_block_statistics)(block, units, t0, t1, radius, width, mask) for block, t0, t1 in blocks]
    (stats,) = dask.compute(tree_reduce(parts, combine_statistics))
    return fit_ring(stats, radius, width, mask, ridge)


def subtract_ring_movie(Y, A, C: np.ndarray, model: RingModel, mask: np.ndarray | None = None):
    """``Y - B`` as a lazy dask movie (frames, h, w) float32, ``B`` the ring background of
    ``Y - A C`` (:func:`ring_background`), computed block by block when read; pixels
    outside ``mask`` are 0."""
    import dask
    import dask.array as da

    from ..tasks import share

    Y, blocks = _blocks(Y)
    _, h, w = Y.shape
    units, shared_model = share(_units(A, C)), share(model)
    parts = [da.from_delayed(dask.delayed(_block_subtracted)(block, units, shared_model, t0, t1, mask),
                             (t1 - t0, h, w), np.float32) for block, t0, t1 in blocks]
    return da.concatenate(parts, axis=0)
