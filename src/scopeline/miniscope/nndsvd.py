"""NNDSVD initialisation of a video (Boutsidis & Gallopoulos 2008), out of core.

The video (frames, pixels) is factorised by a randomized SVD with power iterations
(one pass over frame chunks per iteration, see ``randomized_svd``); each singular
pair is then split into its dominant non-negative part. Component 0 (the leading pair,
non-negative by Perron-Frobenius) is the background.
"""

from __future__ import annotations

import numpy as np


def _gram_block(block: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """Y_c^T (Y_c Z) for one chunk of frames Y_c (t, P) and Z (P, l), single-threaded."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        Y = np.asarray(block, Z.dtype)
        return Y.T @ (Y @ Z)


def _project_block(block: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, float]:
    """(Y_c Q, ||Y_c||^2) for one chunk of frames, single-threaded."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        Y = np.asarray(block, Q.dtype)
        return Y @ Q, float(np.square(Y, dtype=np.float64).sum())


def sample_blocks(n_blocks: int, block_frames: int, sample_frames: int | None) -> np.ndarray:
    """Indices of whole frame chunks spread evenly over the recording, holding about
    ``sample_frames`` frames (all chunks when None / 0 or the recording is shorter)."""
    if not sample_frames or n_blocks * block_frames <= sample_frames:
        return np.arange(n_blocks)
    n = max(1, int(np.ceil(sample_frames / block_frames)))
    return np.unique(np.linspace(0, n_blocks - 1, n).round().astype(int))


def randomized_svd(video2d, k: int, power_iterations: int = 5, seed: int = 0, oversample: int = 10,
                   return_energy: bool = False, sample_frames: int | None = None):
    """Leading ``k`` singular triplets of a dask (frames, pixels) array: u (T, k), s (k,), v (k, P)
    (and ||Y||^2 with ``return_energy``) -- of the sampled frames with ``sample_frames``.

    Randomized range finder on the pixel side (Halko et al. 2011): Z = (Y^T Y)^(q+1) Omega
    with ``q`` = ``power_iterations`` and orthonormalisation after every product, then the
    SVD of the small Y Q. Each product Y^T (Y Z) = sum over frame chunks of
    Y_c^T (Y_c Z) is one pass over the video, so the whole costs q + 2 passes (dask's
    ``svd_compressed`` needs 2q + 2). With ``sample_frames`` every pass reads only whole
    chunks spread evenly over the recording, holding about that many frames
    (``sample_blocks``): the spatial components of a long recording are found from a
    sample, at a cost independent of its length, and u covers the sampled frames
    (``sampled_frames`` gives their indices). Memory: a few (pixels, k + oversample)
    matrices."""
    import dask

    from .tasks import share, tree_reduce

    T, P = video2d.shape
    k = min(k, T, P)
    width = min(k + oversample, T, P)
    dtype = np.float64 if video2d.dtype == np.float64 else np.float32
    if len(video2d.chunks[1]) > 1:
        video2d = video2d.rechunk((video2d.chunks[0], -1))
    blocks = video2d.to_delayed().ravel()
    sampled = [blocks[i] for i in sample_blocks(len(blocks), max(video2d.chunks[0]), sample_frames)]
    Z = np.random.default_rng(seed).standard_normal((P, width)).astype(dtype)
    for _ in range(power_iterations + 1):
        shared = share(Z)
        Z = tree_reduce([dask.delayed(_gram_block)(b, shared) for b in sampled], np.add).compute()
        Z = orthonormal_basis(Z).astype(dtype)
    shared = share(Z)
    parts = dask.compute(*[dask.delayed(_project_block)(b, shared) for b in sampled])
    B = np.concatenate([p[0] for p in parts]).astype(np.float64)
    energy = float(sum(p[1] for p in parts))
    ub, s, vbt = np.linalg.svd(B, full_matrices=False)
    u, s, v = ub[:, :k], s[:k], (Z.astype(np.float64) @ vbt[:k].T).T
    return (u, s, v, energy) if return_energy else (u, s, v)


def sampled_frames(chunks: tuple[int, ...], sample_frames: int | None) -> np.ndarray:
    """Indices of the frames ``randomized_svd`` uses for chunks (frames per chunk)."""
    starts = np.cumsum((0,) + tuple(chunks))
    chosen = sample_blocks(len(chunks), max(chunks), sample_frames)
    return np.concatenate([np.arange(starts[i], starts[i + 1]) for i in chosen])


def orthonormal_basis(Z: np.ndarray) -> np.ndarray:
    """Orthonormal basis (float64) of the columns of a tall ``Z`` (pixels, l): Cholesky QR
    applied twice (two l x l Gram products instead of a Householder QR of the tall
    matrix: ~10x faster here), falling back to Householder QR when ``Z`` is too
    ill-conditioned for it (Cholesky fails or the result is not orthonormal to 1e-8)."""
    import scipy.linalg

    Q = np.asarray(Z, np.float64)
    try:
        for _ in range(2):
            R = scipy.linalg.cholesky(Q.T @ Q, lower=False, check_finite=False)
            Q = Q @ scipy.linalg.solve_triangular(R, np.eye(len(R)), lower=False, check_finite=False)
        if np.abs(Q.T @ Q - np.eye(Q.shape[1])).max() < 1e-8:
            return Q
    except np.linalg.LinAlgError:
        pass
    return scipy.linalg.qr(np.asarray(Z, np.float64), mode="economic", check_finite=False)[0]


def nndsvd(u: np.ndarray, s: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative factors W (T, k) and H (k, P) from an SVD (NNDSVD)."""
    k = len(s)
    W = np.zeros((u.shape[0], k), np.float32)
    H = np.zeros((k, v.shape[1]), np.float32)
    for j in range(k):
        x, y = u[:, j], v[j]
        if j == 0:
            W[:, 0], H[0] = np.sqrt(s[0]) * np.abs(x), np.sqrt(s[0]) * np.abs(y)
            continue
        xp, xn, yp, yn = np.maximum(x, 0), np.maximum(-x, 0), np.maximum(y, 0), np.maximum(-y, 0)
        norms = [np.linalg.norm(a) for a in (xp, yp, xn, yn)]
        mp, mn = norms[0] * norms[1], norms[2] * norms[3]
        if mp >= mn:
            a, b, sigma, na, nb = xp, yp, mp, norms[0], norms[1]
        else:
            a, b, sigma, na, nb = xn, yn, mn, norms[2], norms[3]
        if sigma > 0:
            scale = np.sqrt(s[j] * sigma)
            W[:, j], H[j] = scale * a / na, scale * b / nb
    return W, H


def regularize_components(H: np.ndarray, shape: tuple[int, int], sigma: float = 1.0,
                          sparsity: float = 0.05) -> np.ndarray:
    """Smooth each spatial component (gaussian ``sigma`` px) and zero values below
    ``sparsity`` x its max. Returns (k, h, w) float32."""
    from scipy.ndimage import gaussian_filter

    comps = H.reshape(len(H), *shape).astype(np.float32)
    out = np.empty_like(comps)
    for i, c in enumerate(comps):
        c = gaussian_filter(c, sigma) if sigma > 0 else c
        peak = c.max()
        out[i] = np.where(c >= sparsity * peak, c, 0) if peak > 0 else 0
    return out


def variance_explained(s: np.ndarray, total_energy: float) -> np.ndarray:
    """Cumulative fraction of ||Y||^2 captured by the first 1..k singular values."""
    return np.cumsum(np.asarray(s, np.float64) ** 2) / max(total_energy, 1e-30)
