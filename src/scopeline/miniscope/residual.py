"""Search of the residual for cells missed by the initialisation (CNMF-E manner).

In a crowded field a cell that fires rarely next to a bright, active neighbour is often
no seed of the initialisation: on the activity image (peak-to-noise ratio x local
correlation) it sits on the neighbour's slope instead of being a peak of its own. Once
the found units are modelled, CNMF-E (Zhou et al. 2018, eLife 7:e28728,
doi:10.7554/eLife.28728, "picking neurons from the residual") looks for seeds again on
the residual ``R = Y - A C - b f``, where the modelled cells are gone and the missed ones
remain. This module does that without holding the movie:

* :func:`residual_movie` is the residual as a lazy dask movie (each block of frames minus
  its model), read by the same one-pass kernels as the initialisation: the activity
  images (:func:`.summary_images.activity_images`) and the footprints grown from seeds
  (:func:`.seed_init.seed_footprints`);
* :func:`new_units` keeps the residual's seeds whose footprint is not one of the found
  units again: a new unit overlapping a found one (``min_overlap`` of the smaller
  support) AND whose residual trace correlates with its trace (``min_corr``) is the
  found unit's modelling error (a footprint slightly too small leaves ``delta_a c(t)``
  in the residual), not a missed cell; duplicates among the new seeds are merged the
  same way.

The new units then enter the next spatial update with the found ones (their traces: the
high-passed seed traces) and the final temporal update of the export step.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def _residual_block(y: np.ndarray, model: tuple, t0: int, t1: int) -> np.ndarray:
    """One block of frames (t, h, w) minus ``A C + b f`` on those frames (float32)."""
    from .float16 import as_dtype

    A, C, b, f = model
    t, h, w = y.shape
    fitted = A.T @ C[:, t0:t1]  # (pixels, t): sparse footprints times traces
    if len(b):
        fitted = fitted + b.T @ f[:, t0:t1]
    out = as_dtype(y, np.float32).reshape(t, h * w) - np.asarray(fitted, np.float32).T
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).reshape(t, h, w)


def residual_movie(Y, A, C: np.ndarray, b: np.ndarray, f: np.ndarray):
    """The residual ``Y - A C - b f`` as a lazy dask movie (frames, h, w) float32.

    ``Y``: (frames, h, w) numpy or dask movie (chunks of whole frames are kept);
    ``A``: footprints (units, h, w) dense or (units, pixels) sparse; ``C`` (units, frames);
    ``b`` (n, h, w) or (n, pixels) background maps and ``f`` (n, frames) their time
    courses (n may be 0). Each block of frames is computed when read."""
    import dask
    import dask.array as da

    from .tasks import share

    Y = da.asarray(Y)
    T, h, w = Y.shape
    Y = Y.rechunk((Y.chunksize[0], h, w))
    A = sparse.csr_matrix(A.reshape(len(A), -1) if not sparse.issparse(A) else A, dtype=np.float32)
    model = share((A, np.asarray(C, np.float32), np.asarray(b, np.float32).reshape(len(b), h * w),
                   np.asarray(f, np.float32).reshape(len(b), T)))
    starts = np.r_[0, np.cumsum(Y.chunks[0])].astype(int)
    blocks = [da.from_delayed(dask.delayed(_residual_block)(block, model, int(starts[k]), int(starts[k + 1])),
                              (int(starts[k + 1] - starts[k]), h, w), np.float32)
              for k, block in enumerate(Y.to_delayed().ravel())]
    return da.concatenate(blocks, axis=0)


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
