"""Sparse non-negative deconvolution of calcium traces under an AR(p) model.

For a trace ``y`` (baseline removed), find the calcium ``c`` and spikes ``s`` solving

    minimise 1/2 ||c - y||^2 + lam * sum(s)   subject to   s = G c >= 0,

where ``G`` is the AR(p) operator ``s_t = c_t - g_1 c_{t-1} - ... - g_p c_{t-p}`` (values
before the start are 0, so ``c >= 0`` follows). Because ``sum(G c) = (G^T 1)^T c`` the
problem is the projection of ``z = y - lam G^T 1`` onto the cone ``{c : G c >= 0}``.

* AR(1): OASIS (Friedrich, Zhou & Paninski 2017), exact, O(T), numba-compiled.
* AR(1) or AR(2): projected Newton on the dual ``min_{mu >= 0} 1/2 ||G^T mu||^2 + mu^T G z``,
  whose Hessian ``G G^T`` is banded, so every Newton step is one banded Cholesky solve,
  O(T). The primal solution is ``c = z + G^T mu``. Exact up to the KKT tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from scipy import linalg, signal


@dataclass
class Deconvolution:
    c: np.ndarray  # calcium (T,)
    s: np.ndarray  # spikes (T,)
    converged: bool
    iterations: int


# ---------------------------------------------------------------------------- AR model
def ar_operator_sums(g: np.ndarray, n: int) -> np.ndarray:
    """``G^T 1``: column sums of the AR operator (1 - sum(g) except near the end)."""
    g = np.asarray(g, dtype=np.float64)
    out = np.full(n, 1.0 - g.sum())
    for j in range(1, len(g) + 1):
        # column n-j misses the terms g_j.. g_p that would fall after the end
        out[n - j :] += g[j - 1] if n - j >= 0 else 0.0
    return out


def apply_ar(c: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Spikes ``s = G c``."""
    return signal.lfilter(np.r_[1.0, -np.asarray(g, float)], [1.0], c)


def calcium_from_spikes(s: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Calcium ``c = G^{-1} s`` (AR recursion from zero initial state)."""
    return signal.lfilter([1.0], np.r_[1.0, -np.asarray(g, float)], s)


def ar_from_roots(roots: np.ndarray) -> np.ndarray:
    """AR coefficients of a kernel with the given decay factors per frame."""
    roots = np.asarray(roots, float)
    if len(roots) == 1:
        return roots.copy()
    return np.array([roots[0] + roots[1], -roots[0] * roots[1]])


def estimate_ar(y: np.ndarray, p: int, lags: int = 3, max_root: float = 0.995) -> np.ndarray:
    """AR(p) coefficients from the autocovariance: the Yule-Walker equations
    ``r_k = sum_j g_j r_{k-j}`` for ``k = p+1 .. p+lags`` only involve lags >= 1, which white
    noise does not touch, so no noise estimate is needed (least squares over the equations).
    Few lags: long lags are dominated by slow background residue in real traces, which
    drags the fitted rise towards the decay.
    The kernel is forced to be a sum of decaying exponentials: real roots in [0, max_root]."""
    y = np.asarray(y, float) - np.mean(y)
    n = len(y)
    top = int(min(p + lags, n - 1))
    spectrum = np.fft.rfft(y, 2 * n)
    r = np.fft.irfft(spectrum * np.conj(spectrum))[: top + 1] / n
    ks = np.arange(p + 1, top + 1)
    design = np.stack([r[ks - j] for j in range(1, p + 1)], axis=1)
    g = np.linalg.lstsq(design, r[ks], rcond=None)[0]
    roots = np.roots(np.r_[1.0, -g])
    if np.iscomplexobj(roots) and np.any(np.abs(roots.imag) > 1e-12):
        roots = np.full(p, np.abs(roots[0]))
    roots = np.clip(np.sort(roots.real)[::-1], 0.0, max_root)
    return ar_from_roots(roots)


# ------------------------------------------------------------------------------ OASIS
@numba.njit(cache=True)
def _oasis_ar1(z: np.ndarray, g: float) -> np.ndarray:
    n = z.shape[0]
    v = np.empty(n)  # pool values
    w = np.empty(n)  # pool weights
    t = np.empty(n, np.int64)  # pool starts
    ln = np.empty(n, np.int64)  # pool lengths
    clamped = False  # the first pool is held at 0 by c_0 >= 0
    k = -1
    for i in range(n):
        k += 1
        v[k] = z[i]
        w[k] = 1.0
        t[k] = i
        ln[k] = 1
        while True:
            if k == 0:
                if clamped or v[0] < 0.0:
                    v[0] = 0.0
                    clamped = True
                break
            decay = g ** ln[k - 1]
            if v[k] >= decay * v[k - 1] and not (k - 1 == 0 and clamped and v[k] < 0.0):
                break
            if k - 1 == 0 and clamped:
                v[0] = 0.0
            else:
                v[k - 1] = (w[k - 1] * v[k - 1] + decay * w[k] * v[k]) / (w[k - 1] + decay * decay * w[k])
                w[k - 1] = w[k - 1] + decay * decay * w[k]
            ln[k - 1] += ln[k]
            k -= 1
    c = np.empty(n)
    for j in range(k + 1):
        value = v[j]
        for i in range(ln[j]):
            c[t[j] + i] = value
            value *= g
    return c


def oasis_ar1(y: np.ndarray, g: float, lam: float = 0.0) -> Deconvolution:
    """Exact AR(1) solution by OASIS."""
    y = np.asarray(y, np.float64)
    z = y - lam * ar_operator_sums(np.array([g]), len(y))
    c = _oasis_ar1(z, float(g))
    s = np.maximum(apply_ar(c, [g]), 0.0)
    return Deconvolution(c, s, True, 1)


# -------------------------------------------------------------- banded projected Newton
def _gram_band(g: np.ndarray, n: int) -> np.ndarray:
    """Lower banded storage of ``H = G G^T`` for scipy.linalg.cholesky_banded(lower=True)."""
    p = len(g)
    kernel = np.r_[1.0, -g]
    band = np.zeros((p + 1, n))
    for d in range(p + 1):  # H[i+d, i] = sum_k a_k a_{k+d} over k <= i (rows start at 0)
        full = sum(kernel[k] * kernel[k + d] for k in range(p + 1 - d))
        band[d, : n - d] = full
        # row i of G has only i+1 terms: H[i+d, i] = sum_{k<=i} a_k a_{k+d}
        for i in range(min(p, n - d)):
            band[d, i] = sum(kernel[k] * kernel[k + d] for k in range(min(i, p - d) + 1))
    return band


def _restrict_band(band: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Banded storage of H[free][:, free] (a principal submatrix of a banded matrix keeps
    its bandwidth in the compressed indexing)."""
    p = band.shape[0] - 1
    index = np.flatnonzero(free)
    m = len(index)
    out = np.zeros((p + 1, m))
    out[0] = band[0, index]
    for d in range(1, p + 1):
        if m <= d:
            break
        lo, hi = index[:-d], index[d:]
        gap = hi - lo
        ok = gap <= p
        vals = np.zeros(m - d)
        vals[ok] = band[gap[ok], lo[ok]]
        out[d, : m - d] = vals
    return out


def deconvolve_dual(
    y: np.ndarray, g: np.ndarray, lam: float = 0.0, max_iter: int = 500, tol: float = 1e-7
) -> Deconvolution:
    """Exact AR(p) deconvolution (any p) by projected Newton on the banded dual."""
    y = np.asarray(y, np.float64)
    g = np.asarray(g, np.float64)
    n = len(y)
    z = y - lam * ar_operator_sums(g, n)
    band = _gram_band(g, n)
    Gz = apply_ar(z, g)
    scale = max(np.abs(z).max(), 1e-12)

    def dual(mu):
        c = z + calcium_gt(mu)
        return 0.5 * np.dot(c - z, c - z) + np.dot(mu, Gz), c

    def calcium_gt(mu):  # G^T mu: the AR filter run backwards
        return apply_ar(mu[::-1], g)[::-1]

    mu = np.zeros(n)
    value, c = dual(mu)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is returned)
        grad = apply_ar(c, g)  # gradient of the dual = G c = s
        step = mu - np.maximum(mu - grad, 0.0)
        if np.abs(step).max() <= tol * scale:
            converged = True
            break
        eps = min(1e-3 * scale, np.linalg.norm(step))
        held = (mu <= eps) & (grad > 0)
        free = ~held
        d = np.zeros(n)
        d[held] = -grad[held] / band[0, held]
        if free.any():
            sub = _restrict_band(band, free)
            try:
                d[free] = -linalg.solveh_banded(sub, grad[free], lower=True, check_finite=False)
            except linalg.LinAlgError:
                d[free] = -grad[free] / band[0, free]
        alpha = 1.0
        while True:
            trial = np.maximum(mu + alpha * d, 0.0)
            new_value, new_c = dual(trial)
            decrease = -alpha * np.dot(grad[free], d[free]) + np.dot(grad[held], mu[held] - trial[held])
            if value - new_value >= 1e-4 * decrease or alpha < 1e-12:
                break
            alpha *= 0.5
        mu, value, c = trial, new_value, new_c
    s = np.maximum(apply_ar(c, g), 0.0)
    return Deconvolution(c, s, converged, it)


def deconvolve(y: np.ndarray, g: np.ndarray, lam: float = 0.0, max_iter: int = 500, tol: float = 1e-7) -> Deconvolution:
    """Dispatch: OASIS for AR(1), the banded dual solver for AR(2)."""
    g = np.atleast_1d(np.asarray(g, np.float64))
    if len(g) == 1:
        return oasis_ar1(y, float(g[0]), lam)
    return deconvolve_dual(y, g, lam, max_iter, tol)
