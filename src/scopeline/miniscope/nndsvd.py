"""NNDSVD initialisation of a video (Boutsidis & Gallopoulos 2008), out of core.

The video (frames, pixels) is factorised by a randomized SVD with power iterations
(``dask.array.linalg.svd_compressed``: a few passes over frame chunks); each singular
pair is then split into its dominant non-negative part. Component 0 (the leading pair,
non-negative by Perron-Frobenius) is the background.
"""

from __future__ import annotations

import numpy as np


def randomized_svd(video2d, k: int, power_iterations: int = 5, seed: int = 0):
    """Leading ``k`` singular triplets of a dask (frames, pixels) array: u (T, k), s (k,), v (k, P)."""
    import dask
    import dask.array as da

    k = min(k, *video2d.shape)
    u, s, v = da.linalg.svd_compressed(video2d, k, n_power_iter=power_iterations, seed=seed,
                                     iterator="QR", compute=False)
    u, s, v = dask.compute(u, s, v)
    return np.asarray(u), np.asarray(s), np.asarray(v)


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
