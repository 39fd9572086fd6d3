"""CNMF temporal side: YrA, the chunked temporal update, its parameter suggestions, filters.

Shapes: ``Y`` (frames, h, w); footprints ``A`` as a sparse matrix (units, pixels);
traces ``C`` (units, frames); background ``b`` (components, pixels) and ``f`` (components,
frames): a few spatially extended components with their own time courses (the 1-photon
background and neuropil), ``Y ~ A^T C + b^T f``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ..float16 import as_dtype
from .deconvolution import ar_from_roots, calcium_from_spikes, deconvolve, estimate_ar
from .noise import trace_noise


# ------------------------------------------------------------------------ projections
def movie_as_matrix(Y, frame_chunk: int):
    """Dask view of a (frames, h, w) movie as (frames, pixels), chunked by frames only."""
    import dask.array as da

    Y = da.asarray(Y)
    n, h, w = Y.shape
    Y = Y.rechunk((min(frame_chunk, n), h, w))
    return Y.reshape(n, h * w)


def finite_block(y: np.ndarray, fix_nan: bool) -> np.ndarray:
    """``y`` with NaN/Inf replaced by 0 when ``fix_nan`` (a cheap sum test first: the crop
    step already guarantees a finite movie, so the replacement almost never runs)."""
    if fix_nan and not np.isfinite(y.sum()):
        return np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    return y


def column_slabs(y2: np.ndarray, dtype=np.float32, fix_nan: bool = True, max_elements: int = 1 << 20):
    """Yield ``(columns, block)``: ``y2`` (frames, pixels) in slabs of pixel columns, each
    converted to ``dtype`` (and made finite). Small slabs keep the converted copies in
    cache and out of fresh memory pages (a float16 store is converted piece by piece)."""
    step = max(1, max_elements // max(1, y2.shape[0]))
    for start in range(0, y2.shape[1], step):
        columns = slice(start, min(start + step, y2.shape[1]))
        yield columns, finite_block(as_dtype(y2[:, columns], dtype), fix_nan)


@dataclass
class PassPlan:
    """What one pass over the movie computes per frame chunk (see :func:`movie_pass`)."""

    weights: sparse.csr_matrix  # (rows, used columns): sparse rows, restricted to ``columns``
    columns: np.ndarray  # pixels where some sparse row is non-zero
    dense: np.ndarray | None  # (k, pixels) dense rows over the whole frame, or None
    pixels: np.ndarray  # pixels whose time courses are returned
    check_weights: np.ndarray  # (n check rows, check columns) float64, dense
    check_columns: np.ndarray
    check_frames: np.ndarray  # sorted frame indices of the reference product
    fix_nan: bool
    dtype: type


def _pass_chunk(y: np.ndarray, start: int, plan: PassPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame chunk: (projection (rows, n), pixel samples (n, pixels), reference (checks, n_in_chunk))."""
    n = y.shape[0]
    y2 = np.asarray(y).reshape(n, -1)
    used = finite_block(as_dtype(y2[:, plan.columns], plan.dtype).T, plan.fix_nan)  # (columns, n)
    proj = np.asarray(plan.weights @ np.ascontiguousarray(used), plan.dtype)
    if plan.dense is not None:
        dense = np.zeros((n, len(plan.dense)), np.float64)
        for columns, part in column_slabs(y2, plan.dtype, plan.fix_nan):
            dense += part @ plan.dense[:, columns].T  # (this order stays on the BLAS path)
        proj = np.vstack([proj, dense.T.astype(plan.dtype)])
    sample = finite_block(as_dtype(y2[:, plan.pixels], plan.dtype), plan.fix_nan)
    local = plan.check_frames[(plan.check_frames >= start) & (plan.check_frames < start + n)] - start
    frames = finite_block(np.asarray(y2[np.ix_(local, plan.check_columns)], np.float64), plan.fix_nan)
    return proj, sample, plan.check_weights @ frames.T


@dataclass
class MoviePass:
    """Results of :func:`movie_pass`."""

    projection: np.ndarray  # (rows, frames): sparse rows, then dense rows
    samples: np.ndarray  # (frames, len(pixels))
    reference: np.ndarray  # (len(check_rows), len(check_frames)) float64, straight from the movie


def movie_pass(Y, weights: sparse.spmatrix, frame_chunk: int = 100, fix_nan: bool = True, dtype=np.float32,
               dense: np.ndarray | None = None, pixels: np.ndarray | None = None,
               check_rows: np.ndarray | None = None, check_frames: np.ndarray | None = None) -> MoviePass:
    """One chunked pass over a (frames, h, w) movie (numpy or dask) computing together:

    * ``weights @ Y^T`` for sparse ``weights`` (rows, pixels), touching only the pixels
      where some row is non-zero, and ``dense @ Y^T`` for dense rows over the whole frame;
    * the time courses of ``pixels``;
    * a float64 dense reference ``weights[check_rows] @ Y[check_frames]^T``, computed
      independently of the sparse product (the YrA check of step 6b).

    Memory: one frame chunk plus the results (rows x frames)."""
    import dask

    Y2 = movie_as_matrix(Y, frame_chunk)
    weights = sparse.csr_matrix(weights)
    columns = np.flatnonzero(np.asarray(abs(weights).sum(axis=0)).ravel() > 0)
    check_rows = np.zeros(0, int) if check_rows is None else np.asarray(check_rows, int)
    check = weights[check_rows]
    check_columns = np.flatnonzero(np.asarray(abs(check).sum(axis=0)).ravel() > 0)
    plan = PassPlan(
        weights=sparse.csr_matrix(weights[:, columns], dtype=dtype), columns=columns,
        dense=None if dense is None or len(dense) == 0 else np.ascontiguousarray(dense, dtype),
        pixels=np.zeros(0, int) if pixels is None else np.asarray(pixels, int),
        check_weights=check[:, check_columns].toarray().astype(np.float64), check_columns=check_columns,
        check_frames=np.zeros(0, int) if check_frames is None else np.sort(np.asarray(check_frames, int)),
        fix_nan=fix_nan, dtype=dtype)
    starts = np.r_[0, np.cumsum(Y2.chunks[0])[:-1]]
    plan_key = dask.delayed(plan, pure=True)
    tasks = [dask.delayed(_pass_chunk, pure=True)(block, int(s), plan_key)
             for block, s in zip(Y2.to_delayed().ravel(), starts)]
    parts = dask.compute(*tasks)
    rows = weights.shape[0] + (0 if plan.dense is None else len(plan.dense))
    return MoviePass(
        projection=np.hstack([p[0] for p in parts]) if parts else np.zeros((rows, 0), dtype),
        samples=np.vstack([p[1] for p in parts]) if parts else np.zeros((0, len(plan.pixels)), dtype),
        reference=np.hstack([p[2] for p in parts]) if parts else np.zeros((len(check_rows), 0)),
    )


def project_movie(Y, weights: sparse.csr_matrix, frame_chunk: int = 100, fix_nan: bool = True,
                  dtype=np.float32) -> np.ndarray:
    """``weights @ Y^T`` -> (rows, frames): each row of ``weights`` (rows, pixels) projected on
    every frame, computed frame chunk by frame chunk (memory: one chunk)."""
    return movie_pass(Y, weights, frame_chunk, fix_nan, dtype).projection


def project_and_sample(Y, weights: sparse.csr_matrix, pixels: np.ndarray, frame_chunk: int = 100,
                       fix_nan: bool = True, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """One chunked pass giving ``weights @ Y^T`` (rows, frames) and the time courses of the
    sampled ``pixels`` (frames, len(pixels))."""
    result = movie_pass(Y, weights, frame_chunk, fix_nan, dtype, pixels=pixels)
    return result.projection, result.samples


def background_components(X: np.ndarray, n: int) -> np.ndarray:
    """Time courses (n, frames) of the ``n`` strongest components of the pixels ``X``
    (frames, pixels) outside every neuron: leading singular vectors, unit RMS, sign so that
    each has a positive mean."""
    X = np.asarray(X, np.float32)
    # randomized range finder with power iterations (Halko et al. 2011), seeded: O(T m n)
    sketch = X @ np.random.default_rng(0).standard_normal((X.shape[1], n + 10))
    for _ in range(4):
        sketch = X @ (X.T @ np.linalg.qr(sketch)[0])
    basis = np.linalg.qr(sketch)[0]
    u, _, _ = np.linalg.svd(basis.T @ X, full_matrices=False)
    F = (basis @ u[:, :n]).T
    F = F.astype(np.float64)
    F /= np.maximum(np.sqrt((F**2).mean(axis=1, keepdims=True)), 1e-30)
    F *= np.where(F.mean(axis=1, keepdims=True) < 0, -1.0, 1.0)
    return F


def background_pixels(covered: np.ndarray, max_pixels: int, seed: int = 0) -> np.ndarray:
    """Flat indices of up to ``max_pixels`` pixels (random, sorted) where ``covered`` is False."""
    free = np.flatnonzero(~np.asarray(covered).ravel())
    if len(free) > max_pixels:
        free = np.sort(np.random.default_rng(seed).choice(free, max_pixels, replace=False))
    return free


def refit_background_trace(projection_b: np.ndarray, b: np.ndarray, A: sparse.csr_matrix, C: np.ndarray) -> np.ndarray:
    """Least-squares background traces ``f = (b b^T)^-1 b (Y - A^T C)`` from ``b Y^T``."""
    bb = b @ b.T
    if len(b) == 0:
        return np.zeros((0, projection_b.shape[-1]), np.float32)
    return np.linalg.lstsq(bb, projection_b - (A @ b.T).T @ C, rcond=None)[0].astype(np.float32)


def yra(AtY: np.ndarray, A: sparse.csr_matrix, C: np.ndarray, b: np.ndarray | None = None,
        f: np.ndarray | None = None) -> np.ndarray:
    """``YrA = (A (Y - b^T f)^T - (A A^T) C) / diag(A A^T) + C`` from ``AtY = A Y^T``:
    each unit's trace with the other units' (and the background's) contribution removed."""
    AA = (A @ A.T).toarray()
    norms = np.diag(AA).copy()
    if np.any(norms <= 0):
        raise ValueError("empty footprint in YrA")
    residual = AtY - AA @ C
    if b is not None and f is not None and len(b):
        residual = residual - np.asarray(A @ b.T) @ f
    return (residual / norms[:, None] + C).astype(np.float32)


def validate_yra(YrA_sample: np.ndarray, reference: np.ndarray) -> dict:
    """Step 6b: compare YrA on sampled units/frames with a direct recomputation."""
    finite = bool(np.isfinite(YrA_sample).all())
    scale = max(float(np.abs(reference).max()), 1e-12)
    error = float(np.abs(YrA_sample - reference).max()) / scale
    return {"finite": finite, "max_relative_error": error, "ok": finite and error < 1e-3}


def sample_frames(n_frames: int, n: int, how: str, seed: int = 0) -> np.ndarray:
    """Frame indices for the YrA check: random, start, middle or end."""
    n = min(n, n_frames)
    if how == "random":
        return np.sort(np.random.default_rng(seed).choice(n_frames, n, replace=False))
    start = {"start": 0, "middle": (n_frames - n) // 2, "end": n_frames - n}[how]
    return np.arange(start, start + n)


# ------------------------------------------------------------------------ suggestions
@dataclass
class TemporalSettings:
    """What the temporal update uses for every unit."""

    ar_order: int
    sparse_penalty: float
    zero_threshold: float


def peak_snr(YrA: np.ndarray) -> np.ndarray:
    """(99th percentile - median) / noise std of each trace (units,)."""
    YrA = np.atleast_2d(YrA)
    if YrA.shape[0] == 0:
        return np.zeros(0)
    sn = trace_noise(YrA)
    return (np.percentile(YrA, 99, axis=1) - np.median(YrA, axis=1)) / np.maximum(sn, 1e-12)


def suggest_temporal(YrA: np.ndarray, default: TemporalSettings) -> tuple[TemporalSettings, dict]:
    """Step 6c: AR order, sparse penalty and zero threshold from the traces.

    * AR order 2 when the median fitted AR(2) kernel of the units with at least the median
      SNR (:func:`peak_snr`; the fits of low-SNR units are too noisy) rises over more than 0.5 frames (its
      second root above exp(-1/0.5) = 0.14): the rise is then resolved; else 1. (Tuned on
      the crowded-field simulator, whose GCaMP-like kernels are not AR processes: with a
      rise of 40-150 ms at 20 Hz the fitted second root is 0.2-0.6, and AR(2) gave a
      median correlation of binned spikes of 0.81-0.88 against 0.75-0.79 for AR(1) on
      all five crowded recordings tried, and 0.93 against 0.92 on a sparse one.)
    * Sparse penalty: the noise std (in units of which the penalty is expressed) is the
      natural scale; lower traces' SNR calls for a larger penalty: ``clip(3 / median SNR, 0.5, 2)``.
    * Zero threshold: half a noise std, removing spikes too small to tell from noise.
    """
    snr = peak_snr(YrA)
    reliable = snr >= np.median(snr) if len(snr) else np.zeros(0, bool)  # the better half: fits are noisy
    second_roots = []
    for trace in YrA[reliable]:
        g = estimate_ar(trace, 2)
        roots = np.sort(np.abs(np.roots(np.r_[1.0, -g])))
        second_roots.append(float(roots[0]))
    second = float(np.median(second_roots)) if second_roots else 0.0
    median_snr = float(np.median(snr)) if len(snr) else 0.0
    settings = TemporalSettings(
        ar_order=2 if second > np.exp(-1 / 0.5) else 1,
        sparse_penalty=float(np.clip(3.0 / max(median_snr, 1e-6), 0.5, 2.0)),
        zero_threshold=0.5,
    )
    evidence = {"median_snr": median_snr, "median_second_root": second, "units": len(snr),
                "default": default.__dict__}
    return settings, evidence


# ------------------------------------------------------------------------ update
@dataclass
class UnitTrace:
    c: np.ndarray
    s: np.ndarray
    g: np.ndarray
    baseline: float
    noise: float
    converged: bool


def chunk_bounds(n: int, chunk: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Overlapping windows ``(start, stop, keep_from, keep_to)`` covering ``range(n)``: each
    window is solved alone and supplies ``[keep_from, keep_to)``; neighbours hand over in the
    middle of their overlap."""
    if n <= chunk:
        return [(0, n, 0, n)]
    step = chunk - overlap
    starts = list(range(0, n - chunk, step)) + [n - chunk]
    starts = sorted(set(starts))
    windows = []
    for i, start in enumerate(starts):
        stop = start + chunk
        keep_from = 0 if i == 0 else (start + windows[-1][1]) // 2
        windows.append((start, stop, keep_from, n))
        if i:
            prev = windows[-2]
            windows[-2] = (prev[0], prev[1], prev[2], keep_from)
    return windows


def estimate_kernels(YrA: np.ndarray, p: int) -> np.ndarray:
    """AR(p) coefficients of every unit's trace, (units, p)."""
    return np.array([estimate_ar(y, p) for y in YrA]).reshape(len(YrA), p)


def decay_time(g: np.ndarray, fps: float) -> np.ndarray:
    """Decay time constant (s) of each AR kernel (rows of ``g``): from its largest root."""
    roots = np.array([np.abs(np.roots(np.r_[1.0, -row])).max() if np.any(row) else 0.0 for row in np.atleast_2d(g)])
    with np.errstate(divide="ignore"):
        return np.where(roots > 0, -1.0 / (fps * np.log(np.clip(roots, 1e-12, 1 - 1e-12))), 0.0)


def shared_kernel(g: np.ndarray) -> np.ndarray:
    """One kernel for all units (same indicator): the median of each root over units."""
    roots = np.array([np.sort(np.abs(np.roots(np.r_[1.0, -row])))[::-1] for row in g])
    return ar_from_roots(np.median(roots, axis=0))


def estimate_baseline(y: np.ndarray, sn: float) -> float:
    """Baseline of a calcium trace: its 1st percentile lies in the noise around the lowest
    calcium, where it equals baseline - 2.326 sn (normal quantile). A free baseline fitted
    jointly with an AR(2) calcium trace is not identifiable (slow calcium can stand in for
    it), so it is fixed beforehand, per temporal window. Erring low is harmless (c carries
    the offset), erring high clips c at zero, hence a low percentile."""
    return float(np.percentile(y, 1) + 2.326 * sn)


def update_trace(y: np.ndarray, g: np.ndarray, settings: TemporalSettings, chunk: int, overlap: int,
                 max_iter: int = 500, tol: float = 1e-7) -> UnitTrace:
    """Deconvolve one unit's YrA with AR coefficients ``g``: the exact sparse deconvolution
    window by window (baseline from :func:`estimate_baseline`), stitched at the middle of
    overlaps, then the zero threshold."""
    y = np.asarray(y, np.float64)
    g = np.asarray(g, np.float64)
    sn = float(trace_noise(y))
    lam = settings.sparse_penalty * sn
    s = np.zeros_like(y)
    converged = True
    for start, stop, keep_from, keep_to in chunk_bounds(len(y), chunk, overlap):
        part = y[start:stop]
        result = deconvolve(part - estimate_baseline(part, sn), g, lam, max_iter, tol)
        converged &= result.converged
        s[keep_from:keep_to] = result.s[keep_from - start : keep_to - start]
    s[s < settings.zero_threshold * sn] = 0.0
    c = calcium_from_spikes(s, g)
    baseline = float(np.mean(y - c))
    return UnitTrace(c.astype(np.float32), s.astype(np.float32), g, baseline, sn, bool(converged))


def update_traces(YrA: np.ndarray, G: np.ndarray, settings: TemporalSettings, chunk: int, overlap: int,
                  max_iter: int = 500, tol: float = 1e-7, batch: int = 16) -> list[UnitTrace]:
    """Update every unit (row ``i`` with kernel ``G[i]``); batches of units run as dask
    tasks on the current scheduler (local or distributed)."""
    import dask

    def run(rows: np.ndarray, kernels: np.ndarray) -> list[UnitTrace]:
        return [update_trace(row, g, settings, chunk, overlap, max_iter, tol) for row, g in zip(rows, kernels)]

    tasks = [dask.delayed(run)(YrA[i : i + batch], G[i : i + batch]) for i in range(0, len(YrA), batch)]
    results = dask.compute(*tasks)
    return [unit for part in results for unit in part]


# ------------------------------------------------------------------------ filters
def temporal_filter_reasons(C: np.ndarray, S: np.ndarray, A: sparse.csr_matrix, converged: np.ndarray,
                            min_spike_sum: float, min_calcium_variance: float, min_spatial_sum: float,
                            decay_s: np.ndarray | None = None, max_decay_time: float = np.inf) -> list[str]:
    """Step 6e: why each unit should be dropped ("" = keep). ``decay_s``: each unit's own
    fitted decay time; slower than ``max_decay_time`` means drift or background, not
    calcium transients."""
    spike_sum = S.sum(axis=1)
    variance = C.var(axis=1)
    spatial_sum = np.asarray(A.sum(axis=1)).ravel()
    reasons = []
    for i in range(len(C)):
        why = []
        if not converged[i]:
            why.append("deconvolution did not converge")
        if not spike_sum[i] >= min_spike_sum:
            why.append(f"spike sum {spike_sum[i]:.3g} < {min_spike_sum:g}")
        if not variance[i] >= min_calcium_variance:
            why.append(f"calcium variance {variance[i]:.3g} < {min_calcium_variance:g}")
        if not spatial_sum[i] >= min_spatial_sum:
            why.append(f"spatial sum {spatial_sum[i]:.3g} < {min_spatial_sum:g}")
        if decay_s is not None and not decay_s[i] <= max_decay_time:
            why.append(f"decay time {decay_s[i]:.2g} s > {max_decay_time:g} s (slow drift, not transients)")
        reasons.append("; ".join(why))
    return reasons


def trace_snr(C: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Peak calcium over the trace noise std."""
    return C.max(axis=1) / np.maximum(noise, 1e-12)


def correlation_rows(X: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching rows (0 where a row is constant)."""
    X = X - X.mean(axis=1, keepdims=True)
    Z = Z - Z.mean(axis=1, keepdims=True)
    den = np.sqrt((X * X).sum(axis=1) * (Z * Z).sum(axis=1))
    return np.where(den > 0, (X * Z).sum(axis=1) / np.where(den > 0, den, 1), 0.0)
