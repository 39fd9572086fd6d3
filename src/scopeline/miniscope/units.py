"""Units from footprints: trace extraction, A/C normalisation, cleaning, temporal merge."""

from __future__ import annotations

import numpy as np

from .segmentation import leader_groups, overlap_fraction


def _project_block(frames: np.ndarray, A: np.ndarray, batch_size: int) -> np.ndarray:
    """(t, n) projections of a block of frames onto footprints, ``batch_size`` units at a time."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _project(frames, A, batch_size)


def _project(frames: np.ndarray, A: np.ndarray, batch_size: int) -> np.ndarray:
    Y = frames.reshape(len(frames), -1).astype(np.float32, copy=False)
    out = np.empty((len(frames), len(A)), np.float32)
    for start in range(0, len(A), batch_size):
        out[:, start : start + batch_size] = Y @ A[start : start + batch_size].T
    return out


def extract_traces(video, footprints: np.ndarray, batch_size: int = 10, frame_chunk: int = 10000) -> np.ndarray:
    """Least-squares trace of each footprint alone: c_i(t) = <a_i, y_t> / ||a_i||^2.

    ``video`` is a dask (frames, h, w) array read at most ``frame_chunk`` frames at a time.
    Returns (units, frames) float32."""
    n = len(footprints)
    A = footprints.reshape(n, -1).astype(np.float32)
    if n == 0:
        return np.zeros((0, video.shape[0]), np.float32)
    # never coarser than the stored chunks: memory stays at one stored chunk per worker
    chunks = video.rechunk((max(1, min(frame_chunk, video.chunksize[0])), -1, -1))
    proj = chunks.map_blocks(_project_block, A, batch_size, drop_axis=(2,), chunks=(chunks.chunks[0], (n,)),
                             dtype=np.float32).compute()
    norms = (A * A).sum(axis=1)
    return (proj / np.maximum(norms, 1e-30)).T.astype(np.float32)


def normalize_units(A: np.ndarray, C: np.ndarray, method: str = "max") -> tuple[np.ndarray, np.ndarray]:
    """Scale each footprint to max 1 / unit l1 / unit l2 (or not) and its trace inversely,
    so every product a_i c_i is unchanged."""
    flat = A.reshape(len(A), -1)
    if method == "none" or len(A) == 0:
        return A, C
    scale = {"max": lambda: np.abs(flat).max(axis=1), "l1": lambda: np.abs(flat).sum(axis=1),
             "l2": lambda: np.sqrt((flat * flat).sum(axis=1))}[method]()
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return A / scale[:, None, None], C * scale[:, None]


def bad_units(A: np.ndarray, C: np.ndarray, flat_tolerance: float = 1e-6) -> dict[int, str]:
    """Units to drop and why: NaN in A or C, empty footprint, flat trace."""
    reasons = {}
    for i in range(len(A)):
        if not (np.isfinite(A[i]).all() and np.isfinite(C[i]).all()):
            reasons[i] = "NaN"
        elif not (A[i] > 0).any():
            reasons[i] = "empty"
        elif C[i].std() <= flat_tolerance * max(1.0, float(np.abs(C[i]).max())):
            reasons[i] = "flat"
    return reasons


def merge_temporal(A: np.ndarray, C: np.ndarray, corr_threshold: float = 0.75,
                   overlap_threshold: float = 0.3) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Merge units whose traces correlate >= ``corr_threshold`` and whose supports overlap
    >= ``overlap_threshold`` (of the smaller), largest first, without chaining (see
    ``leader_groups``). A merged unit is the rank-1 approximation
    of the sum of its members' a_i c_i (power iteration on the small factors)."""
    n = len(A)
    if n < 2:
        return A, C, [[i] for i in range(n)]
    corr = np.nan_to_num(np.corrcoef(C.astype(np.float64)))
    overlap = overlap_fraction(A.reshape(n, -1) > 0)
    similar = (corr >= corr_threshold) & (overlap >= overlap_threshold)
    groups = leader_groups(similar, order=np.argsort(-(A.reshape(n, -1) > 0).sum(axis=1), kind="stable"))
    flat = A.reshape(n, -1).astype(np.float64)
    new_A, new_C = [], []
    for group in groups:
        if len(group) == 1:
            new_A.append(flat[group[0]])
            new_C.append(C[group[0]].astype(np.float64))
            continue
        Ag, Cg = flat[group].T, C[group].astype(np.float64)  # (P, g), (g, T)
        a = Ag.sum(axis=1)
        for _ in range(30):
            c = (a @ Ag) @ Cg / max(a @ a, 1e-30)
            a = Ag @ (Cg @ c) / max(c @ c, 1e-30)
        c = (a @ Ag) @ Cg / max(a @ a, 1e-30)
        new_A.append(np.maximum(a, 0))
        new_C.append(c)
    A_out = np.stack(new_A).reshape(len(groups), *A.shape[1:]).astype(np.float32)
    return A_out, np.stack(new_C).astype(np.float32), groups
