"""Search of the residual for cells missed by the initialisation (CNMF-E manner).

In a crowded field a cell that fires rarely next to a bright, active neighbour is often
no seed of the initialisation: on the activity image (peak-to-noise ratio x local
correlation) it sits on the neighbour's slope instead of being a peak of its own. Once
the found units are modelled, CNMF-E (Zhou et al. 2018, eLife 7:e28728,
doi:10.7554/eLife.28728, "picking neurons from the residual") looks for seeds again on
the residual, where the modelled cells are gone and the missed ones remain. This module
does that without holding the movie:

* :func:`residual_movie` is the residual ``Y - A C`` as a lazy dask movie (each block of
  frames minus the units' part), with by default each frame's least-squares traces, read
  by the same one-pass kernels as the initialisation: the activity images
  (:func:`.summary_images.activity_images`) and the footprints grown from seeds
  (:func:`.seed_init.seed_footprints`); :func:`residual_activity_images` computes the
  activity images only on the pixels where they can differ from those of ``Y`` (under a
  footprint or next to one), so the search costs one pass over a fifth of a sparse field;
* :func:`new_units` keeps the residual's seeds whose footprint is not one of the found
  units again: a new unit overlapping a found one (``min_overlap`` of the smaller
  support) AND whose residual trace correlates with its trace (``min_corr``) is the
  found unit's modelling error, not a missed cell; duplicates among the new seeds are
  merged the same way;
* :func:`orthogonal_background` takes the new units' activity out of the background time
  courses before the next spatial update (they were found on pixels away from the first
  units, so they may hold it).

The new units then enter the next spatial update with the found ones (their traces: the
high-passed seed traces) and the final temporal update of the export step.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, sparse


def _subtract_units(values: np.ndarray, model: tuple, t0: int, t1: int) -> np.ndarray:
    """``values`` (t, columns) float32, writable and finite, minus the units' part ``A^T C``
    on the model's covered pixels (its ``positions`` among the columns: indices or a slice), with the given
    traces or with each frame's least-squares traces; returns ``values``."""
    from scipy.linalg import cho_solve

    A, C, gram, positions = model  # A: (units, covered pixels) CSR
    covered = values[:, positions]  # (t, covered) copy
    if C is None:
        traces = cho_solve(gram, np.asarray(A @ covered.T, np.float64)).astype(np.float32)  # (units, t)
    else:
        traces = np.asarray(C[:, t0:t1], np.float32)
    values[:, positions] = covered - np.asarray(A.T @ traces, np.float32).T
    return values


def _residual_block(y: np.ndarray, model: tuple, t0: int, t1: int) -> np.ndarray:
    """One block of frames (t, h, w) minus the units' part of the model on those frames
    (float32). Only the pixels under some footprint change."""
    from .cnmf.temporal import finite_block
    from .float16 import as_dtype

    t, h, w = y.shape
    flat = as_dtype(y, np.float32).reshape(t, h * w)
    if np.shares_memory(flat, y) or not flat.flags.writeable:
        flat = flat.copy()
    return _subtract_units(finite_block(flat, True), model, t0, t1).reshape(t, h, w)


def _unit_model(A, C: np.ndarray | None) -> tuple:
    """Footprints as CSR (units, pixels) float32, the flat indices of the pixels they
    cover, and the Cholesky factor of ``A A^T`` (None when ``C`` is given)."""
    from scipy.linalg import cho_factor

    A = sparse.csr_matrix(A.reshape(len(A), -1) if not sparse.issparse(A) else A, dtype=np.float32)
    pixels = np.flatnonzero(np.asarray(A.getnnz(axis=0)) > 0)
    gram = None
    if C is None:
        AA = (A @ A.T).toarray().astype(np.float64)
        ridge = 1e-9 * max(float(np.trace(AA)) / max(len(AA), 1), 1e-30)
        gram = cho_factor(AA + ridge * np.eye(len(AA)))
    return A[:, pixels].tocsr(), gram, pixels


def _frame_blocks(Y):
    """``Y`` as dask with chunks of whole frames, its delayed blocks and their first frames."""
    import dask.array as da

    Y = da.asarray(Y)
    Y = Y.rechunk((Y.chunksize[0],) + Y.shape[1:])
    starts = np.r_[0, np.cumsum(Y.chunks[0])].astype(int)
    return Y, Y.to_delayed().ravel(), starts


def residual_movie(Y, A, C: np.ndarray | None = None):
    """The residual ``Y - A C`` as a lazy dask movie (frames, h, w) float32.

    ``Y``: (frames, h, w) numpy or dask movie (chunks of whole frames are kept);
    ``A``: footprints (units, h, w) dense or (units, pixels) sparse; ``C`` (units, frames),
    or None: each frame's least-squares traces ``(A A^T)^-1 A y_t``, so that everything
    the footprints can explain is removed whatever the errors of the current traces (a
    unit whose footprint was just updated while its trace was not would otherwise leave
    a copy of itself in the residual). Background is not removed: the activity images
    ignore a smooth background, and background components fitted on the pixels away from
    the found units would hold the cells missed there. Each block of frames is computed
    when read."""
    import dask
    import dask.array as da

    from .tasks import share

    Y, blocks, starts = _frame_blocks(Y)
    T, h, w = Y.shape
    A, gram, pixels = _unit_model(A, C)
    model = share((A, None if C is None else np.asarray(C, np.float32), gram, pixels))
    parts = [da.from_delayed(dask.delayed(_residual_block)(block, model, int(starts[k]), int(starts[k + 1])),
                             (int(starts[k + 1] - starts[k]), h, w), np.float32)
             for k, block in enumerate(blocks)]
    return da.concatenate(parts, axis=0)


def _residual_pixel_sums(y: np.ndarray, model: tuple, t0: int, t1: int, pixels: tuple, width: int,
                         threshold: float) -> dict:
    """Activity sums (:func:`.summary_images.block_sums`) of one block of frames of the
    residual on a set of pixels only: they are gathered (in the store's dtype), made
    float32 and finite, and the units' part removed."""
    from .cnmf.temporal import finite_block
    from .float16 import as_dtype
    from .summary_images import block_sums

    used, neighbours = pixels
    t = len(y)
    values = as_dtype(y.reshape(t, -1)[:, used], np.float32)
    values = finite_block(values if values.flags.writeable else values.copy(), True)
    return block_sums(_subtract_units(values, model, t0, t1), width, threshold, neighbours)


def residual_activity_images(Y, A, width: int = 3, threshold: float = 3.0):
    """Activity images (:func:`.summary_images.activity_images`) of the residual
    ``Y - A C_ls`` (``C_ls``: each frame's least-squares traces), computed only where they
    can differ from those of ``Y``: on the pixels under a footprint or next to one (a
    pixel's images depend on its own trace and its 8 neighbours'). One pass over ``Y``
    that computes on those pixels and their neighbours only.

    Returns ``(images, computed)``: the images (h, w) (0 where not computed) and the
    mask of the pixels where they were computed; elsewhere the residual is ``Y``. On the
    600 x 600 field of ``benchmarks/miniscope_end_to_end.py`` (300 cells) that is 20 % of
    the frame."""
    import dask

    from .summary_images import ActivityImages, combine_sums, images_from_sums, neighbour_table
    from .tasks import share, tree_reduce

    Y, blocks, starts = _frame_blocks(Y)
    h, w = Y.shape[1:]
    A, gram, covered = _unit_model(A, None)
    near = np.zeros(h * w, bool)
    near[covered] = True
    near = ndimage.binary_dilation(near.reshape(h, w), structure=np.ones((3, 3), bool))
    around = ndimage.binary_dilation(near, structure=np.ones((3, 3), bool)).ravel()  # + their neighbours
    around[covered] = False
    used = np.r_[covered, np.flatnonzero(around)]  # covered first: the units' part is a slice, not a gather
    images = [np.zeros(h * w, np.float32) for _ in range(3)]
    if len(used):
        neighbours = neighbour_table((h, w), used)
        model = share((A, None, gram, slice(0, len(covered))))
        pixels = share((used, neighbours))
        parts = [dask.delayed(_residual_pixel_sums)(block, model, int(starts[k]), int(starts[k + 1]), pixels,
                                                    width, threshold) for k, block in enumerate(blocks)]
        (sums,) = dask.compute(tree_reduce(parts, combine_sums))
        found = images_from_sums(sums, neighbours)
        inside = near.ravel()[used]  # exact there: every neighbour is among the pixels used
        for full, image in zip(images, (found.pnr, found.correlation, found.noise)):
            full[used[inside]] = image[inside]
    return ActivityImages(*(image.reshape(h, w) for image in images)), near


def orthogonal_background(f: np.ndarray, traces: np.ndarray) -> np.ndarray:
    """Background time courses ``f`` (n, frames) without their part explained by
    ``traces`` (m, frames): ``f - (f T^T)(T T^T)^-1 T``. The background components come
    from pixels away from the units found first, so they carry the activity of cells
    missed there; unpenalised in the spatial update, their maps would take such a cell
    from the unit added for it."""
    f = np.asarray(f, np.float64)
    T = np.asarray(traces, np.float64)
    if not len(f) or not len(T):
        return f
    coef = np.linalg.lstsq(T @ T.T, T @ f.T, rcond=None)[0]  # (m, n)
    return f - coef.T @ T


def _unit_vectors(traces: np.ndarray) -> np.ndarray:
    x = np.asarray(traces, np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)


def new_units(found, found_traces: np.ndarray, candidates, candidate_traces: np.ndarray, min_overlap: float,
              min_corr: float) -> np.ndarray:
    """Indices of the ``candidates`` (seeds of the residual, best first) kept as new units.

    A candidate is dropped when its support shares at least ``min_overlap`` of the
    smaller support with a ``found`` unit or an earlier kept candidate AND its trace
    correlates at least ``min_corr`` with that unit's trace (the same source again).
    Footprints: sparse or dense (n, pixels); traces (n, frames), high-passed alike."""
    found = sparse.csr_matrix(found, dtype=np.float32)
    candidates = sparse.csr_matrix(candidates, dtype=np.float32)
    n_found = found.shape[0]
    support = sparse.vstack([found > 0, candidates > 0]).astype(np.float32).tocsr()
    sizes = np.asarray(support.sum(axis=1)).ravel()
    shared = (support[n_found:] @ support.T).tocsr()  # candidates x everything
    x = _unit_vectors(np.vstack([found_traces, candidate_traces]))
    alive = np.r_[np.ones(n_found, bool), np.zeros(candidates.shape[0], bool)]
    kept = []
    for i in range(candidates.shape[0]):
        k = n_found + i
        if sizes[k] == 0:
            continue
        row = shared.getrow(i)
        same = [j for j, common in zip(row.indices, row.data)
                if j != k and alive[j] and common >= min_overlap * min(sizes[k], sizes[j])
                and float(x[k] @ x[j]) >= min_corr]
        if not same:
            kept.append(i)
            alive[k] = True
    return np.array(kept, int)
