"""Units from footprints: trace extraction, A/C normalisation, cleaning, temporal merge.

Footprints are dense (units, h, w) arrays or sparse CSR (units, h*w) matrices; every
function returns them in the form it was given.
"""

from __future__ import annotations

import numpy as np

from .segmentation import as_sparse, leader_groups, like_input, overlap_fraction


def _project_block(frames: np.ndarray, A, batch_size: int) -> np.ndarray:
    """(t, n) projections of a block of frames onto sparse footprints A (n, P): for each
    batch of ``batch_size`` units, the frames' values at the units' pixels, weighted and
    summed per unit (no copy of the block, no dense footprint)."""
    Y = frames.reshape(len(frames), -1)
    out = np.zeros((len(frames), A.shape[0]), np.float32)
    for start in range(0, A.shape[0], batch_size):
        batch = A[start : start + batch_size]
        if batch.nnz == 0:
            continue
        weighted = Y[:, batch.indices].astype(np.float32, copy=False) * batch.data
        sums = np.add.reduceat(weighted, np.minimum(batch.indptr[:-1], batch.nnz - 1), axis=1)
        sums[:, np.diff(batch.indptr) == 0] = 0  # units without pixels
        out[:, start : start + batch.shape[0]] = sums
    return out


def extract_traces(video, footprints, batch_size: int = 10, frame_chunk: int = 10000) -> np.ndarray:
    """Least-squares trace of each footprint alone: c_i(t) = <a_i, y_t> / ||a_i||^2.

    ``video`` is a dask (frames, h, w) array read at most ``frame_chunk`` frames at a time;
    the footprints travel to the workers in sparse form (only their pixels).
    Returns (units, frames) float32."""
    A, _ = as_sparse(footprints)
    n = A.shape[0]
    if n == 0:
        return np.zeros((0, video.shape[0]), np.float32)
    # never coarser than the stored chunks: memory stays at one stored chunk per worker
    chunks = video.rechunk((max(1, min(frame_chunk, video.chunksize[0])), -1, -1))
    proj = chunks.map_blocks(_project_block, A, batch_size, drop_axis=(2,), chunks=(chunks.chunks[0], (n,)),
                             dtype=np.float32).compute()
    norms = np.asarray(A.multiply(A).sum(axis=1)).ravel()
    return (proj / np.maximum(norms, 1e-30)).T.astype(np.float32)


def normalize_units(A, C: np.ndarray, method: str = "max") -> tuple[np.ndarray, np.ndarray]:
    """Scale each footprint to max 1 / unit l1 / unit l2 (or not) and its trace inversely,
    so every product a_i c_i is unchanged."""
    from scipy import sparse

    if method == "none" or A.shape[0] == 0:
        return A, C
    flat, shape = as_sparse(A)
    magnitude = abs(flat)
    scale = {"max": lambda: magnitude.max(axis=1).toarray().ravel(),
             "l1": lambda: np.asarray(magnitude.sum(axis=1)).ravel(),
             "l2": lambda: np.sqrt(np.asarray(flat.multiply(flat).sum(axis=1)).ravel())}[method]()
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return like_input(sparse.diags(1 / scale) @ flat, A, shape), C * scale[:, None]


def bad_units(A, C: np.ndarray, flat_tolerance: float = 1e-6) -> dict[int, str]:
    """Units to drop and why: NaN in A or C, empty footprint, flat trace."""
    flat, _ = as_sparse(A)
    reasons = {}
    for i in range(flat.shape[0]):
        values = flat.data[flat.indptr[i] : flat.indptr[i + 1]]
        if not (np.isfinite(values).all() and np.isfinite(C[i]).all()):
            reasons[i] = "NaN"
        elif not (values > 0).any():
            reasons[i] = "empty"
        elif C[i].std() <= flat_tolerance * max(1.0, float(np.abs(C[i]).max())):
            reasons[i] = "flat"
    return reasons


def merge_temporal(A, C: np.ndarray, corr_threshold: float = 0.75,
                   overlap_threshold: float = 0.3) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Merge units whose traces correlate >= ``corr_threshold`` and whose supports overlap
    >= ``overlap_threshold`` (of the smaller), largest first, without chaining (see
    ``leader_groups``). A merged unit is the rank-1 approximation
    of the sum of its members' a_i c_i (power iteration on the small factors)."""
    from scipy import sparse

    n = A.shape[0]
    if n < 2:
        return A, C, [[i] for i in range(n)]
    flat, shape = as_sparse(A)
    support = flat > 0
    corr = np.nan_to_num(np.corrcoef(C.astype(np.float64)))
    overlap = overlap_fraction(support)
    similar = (corr >= corr_threshold) & (overlap >= overlap_threshold)
    sizes = np.asarray(support.sum(axis=1)).ravel()
    groups = leader_groups(similar, order=np.argsort(-sizes, kind="stable"))
    new_A, new_C = [], []
    for group in groups:
        if len(group) == 1:
            new_A.append(flat[group[0]])
            new_C.append(C[group[0]].astype(np.float64))
            continue
        members = flat[group]
        pixels = np.unique(members.indices)  # the merged unit lives on the members' pixels
        Ag, Cg = members[:, pixels].toarray().astype(np.float64).T, C[group].astype(np.float64)  # (p, g), (g, T)
        a = Ag.sum(axis=1)
        for _ in range(30):
            c = (a @ Ag) @ Cg / max(a @ a, 1e-30)
            a = Ag @ (Cg @ c) / max(c @ c, 1e-30)
        c = (a @ Ag) @ Cg / max(a @ a, 1e-30)
        row = np.zeros(flat.shape[1], np.float32)
        row[pixels] = np.maximum(a, 0)
        new_A.append(sparse.csr_matrix(row))
        new_C.append(c)
    merged = sparse.vstack(new_A).tocsr().astype(np.float32)
    merged.eliminate_zeros()
    return like_input(merged, A, shape), np.stack(new_C).astype(np.float32), groups


def merge_temporal_repeated(A, C: np.ndarray, corr_threshold: float = 0.75, overlap_threshold: float = 0.3,
                            max_rounds: int = 10) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """``merge_temporal`` applied again to its result until no units merge (at most
    ``max_rounds`` rounds): a merged unit's trace averages its members' noise and mixing,
    so it may now match a unit none of its members matched. Returns A, C and the number
    of merges in each round."""
    merges: list[int] = []
    while len(merges) < max_rounds:
        A, C, groups = merge_temporal(A, C, corr_threshold, overlap_threshold)
        merges.append(sum(len(g) > 1 for g in groups))
        if not merges[-1]:
            break
    return A, C, merges
