"""Helpers shared by the CNMF steps (5-8): loading stored arrays, recording dropped units,
projecting the movie, running the temporal update, figures."""

from __future__ import annotations

import numpy as np
from scipy import ndimage, sparse

from ...errors import InputError
from ..cnmf import ring_background, temporal
from ..float16 import as_dtype
from .base import StepContext


def load_array(ctx: StepContext, name: str) -> np.ndarray:
    """A stored array in memory, read by zarr into one buffer in this process (through dask
    the chunks would be concatenated: a second copy of every footprint stack)."""
    import zarr

    array = zarr.open_array(str(ctx.store_path), path=ctx.array_path(name), mode="r")[...]
    return as_dtype(array, np.float32) if array.dtype == np.float16 else array


def read_movie(ctx: StepContext, frames_per_chunk: int | None = None):
    """The corrected movie ``Y`` as a dask array in its stored dtype (float16 kept): the CNMF
    kernels convert only the pixels they use, chunk by chunk, instead of whole frames
    (``ctx.read`` converts every frame to float32). ``frames_per_chunk``: read that many
    whole frames per task straight from the store (no rechunking, which would move the
    pieces between worker processes)."""
    import dask.array as da

    component = ctx.array_path("Y")
    Y = da.from_zarr(str(ctx.store_path), component=component)
    if frames_per_chunk:
        Y = da.from_zarr(str(ctx.store_path), component=component,
                         chunks=(min(frames_per_chunk, Y.shape[0]),) + Y.shape[1:])
    return Y


def field_mask(ctx: StepContext, shape: tuple[int, int]) -> np.ndarray:
    """The imaging field (crop mask), or every pixel when the crop step stored none."""
    return load_array(ctx, "crop_mask").astype(bool) if ctx.has("crop_mask") else np.ones(shape, bool)


def save_ring(ctx: StepContext, model: ring_background.RingModel) -> None:
    """Store a fitted ring background (weights, offsets and the ring) in the current step."""
    ctx.write("ring_weight", model.weight)
    ctx.write("ring_offset", model.offset)
    ctx.write_json("ring_background", {"radius": model.radius, "width": model.width, "doi": ring_background.DOI})


def load_ring(ctx: StepContext, step: str) -> ring_background.RingModel | None:
    """The ring background stored by ``step``, or None when that step fitted none."""
    if not (ctx.out_dir / "steps" / step / "ring_background.json").exists():  # (a re-run step is cleared first)
        return None
    ring = ctx.read_json(f"{step}/ring_background")
    return ring_background.RingModel(load_array(ctx, f"{step}/ring_weight"), load_array(ctx, f"{step}/ring_offset"),
                                     int(ring["radius"]), int(ring["width"]))


def require_units(ctx: StepContext, A: np.ndarray, name: str) -> None:
    if A.ndim != 3 or len(A) == 0:
        raise InputError(ctx.store_path, f"{name} holds no components (shape {A.shape})",
                         "lower the detection thresholds of steps 3-4 or check the video")


def write_units(ctx: StepContext, stage: str, ids: np.ndarray, reasons: list[str], earlier: list[dict] | None = None,
                **arrays: np.ndarray) -> np.ndarray:
    """Keep the units whose reason is empty: write the kept rows of every array and
    ``unit_ids``, record every dropped unit with its reason (``dropped_units.json``, after
    the ``earlier`` records of units this step dropped before), and fail clearly when none
    is left."""
    keep = np.array([not r for r in reasons], bool)
    dropped = list(earlier or []) + [{"unit_id": int(i), "stage": stage, "reason": r}
                                     for i, r in zip(ids, reasons) if r]
    ctx.write_json("dropped_units", dropped)
    if not keep.any():
        raise InputError(ctx.store_path, f"no components survive the {stage} ({len(ids)} in, all dropped; "
                         f"first reason: {dropped[0]['reason'] if dropped else 'none'})",
                         f"relax the {ctx.step} filter thresholds")
    ctx.write("unit_ids", np.asarray(ids)[keep].astype(np.int64))
    for name, array in arrays.items():
        ctx.write(name, np.ascontiguousarray(array if keep.all() else array[keep]))  # no copy when all kept
    return keep


def component_stats(A: np.ndarray, C: np.ndarray, ids: np.ndarray) -> list[dict]:
    """Per-unit size, peak, centroid and trace statistics."""
    stats = []
    yy, xx = np.mgrid[: A.shape[1], : A.shape[2]]
    for a, c, i in zip(A, C, ids):
        total = float(a.sum()) or 1.0
        stats.append({"unit_id": int(i), "size_px": int((a > 0).sum()), "peak": float(a.max()),
                      "centroid_yx": [float((a * yy).sum() / total), float((a * xx).sum() / total)],
                      "trace_mean": float(c.mean()), "trace_std": float(c.std())})
    return stats


def footprint_matrix(A) -> sparse.csr_matrix:
    """Footprints (units, h, w) as a float32 sparse matrix (units, pixels) (passed through
    when already sparse)."""
    if sparse.issparse(A):
        return sparse.csr_matrix(A, dtype=np.float32)
    return sparse.csr_matrix(A.reshape(len(A), -1), dtype=np.float32)


def initial_yra(Y, A, field: np.ndarray, n_background: int, max_pixels: int, frame_chunk: int,
                fix_nan: bool, float32: bool, check_rows: np.ndarray | None = None,
                check_frames: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Step 6a in one pass over the movie: the projection on the footprints ``P = A Y^T``
    and the time courses of up to ``max_pixels`` pixels of ``field`` at least 3 px from every
    footprint. The background time courses ``f`` are their leading components; the
    background maps ``b = Y f^T (f f^T)^-1`` are only needed through ``A b^T = P f^T (f f^T)^-1``
    (step 7 fits them pixel by pixel). The units' traces are the least-squares unmixing of
    the footprints given the background (YrA = C then; the initial traces' scale is not
    assumed). The same pass computes the step 6b reference ``A[check_rows] Y[check_frames]^T``
    (float64, dense). ``A``: (units, h, w) array or sparse (units, pixels).
    Returns (YrA, f (n, frames), P, reference)."""
    Af = footprint_matrix(A)
    dtype = np.float32 if float32 else np.float64
    footprints_any = np.asarray(Af.getnnz(axis=0) > 0).reshape(field.shape)
    covered = ndimage.binary_dilation(footprints_any, iterations=3) | ~field
    pixels = temporal.background_pixels(covered, max_pixels) if n_background else np.zeros(0, int)
    result = temporal.movie_pass(Y, Af, frame_chunk, fix_nan, dtype, pixels=pixels,
                                 check_rows=check_rows, check_frames=check_frames)
    P = result.projection.astype(np.float64)
    F = temporal.background_components(result.samples, n_background) if n_background else np.zeros((0, P.shape[1]))
    AAb = P @ F.T @ np.linalg.pinv(F @ F.T) if n_background else np.zeros((len(P), 0))  # A b^T
    AA = (Af @ Af.T).toarray().astype(np.float64)
    C = np.linalg.lstsq(AA, P - AAb @ F, rcond=None)[0]
    YrA = ((P - AA @ C - AAb @ F) / np.diag(AA)[:, None] + C).astype(np.float32)
    return YrA, F.astype(np.float32), P, result.reference


def final_yra(Y, A, C: np.ndarray, b: np.ndarray, frame_chunk: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Step 8a: one pass projecting the movie on the footprints (sparse) and the background
    maps (dense); the background time courses are re-fitted given C, then YrA by the CNMF
    formula. Returns (YrA, f)."""
    Af = footprint_matrix(A)
    bflat = b.reshape(len(b), -1).astype(np.float64)
    P = temporal.movie_pass(Y, Af, frame_chunk, dense=bflat).projection.astype(np.float64)
    f = temporal.refit_background_trace(P[Af.shape[0]:], bflat, Af, C)
    return temporal.yra(P[: Af.shape[0]], Af, C, bflat, f), f


def run_temporal_update(YrA: np.ndarray, settings: temporal.TemporalSettings, chunk: int, overlap: int,
                        max_iter: int, tol: float, fps: float, shared: bool, max_decay_time: float,
                        kernel_quantile: float = 0.75) -> dict[str, np.ndarray]:
    """Kernels per unit (and their decay times, kept for the filter), optionally replaced by
    the kernel shared by the units with plausible decay, then the deconvolution of all units.
    Decay times come from an AR(1) fit whatever the order: the decay root of an AR(2) fit
    to a sparsely firing unit is poorly determined (on the crowded-field simulator a third of
    the true cells got a decay of 10 s from AR(2) and 3 % from AR(1)). The shared kernel is
    that of the plausible units whose SNR reaches the ``kernel_quantile`` quantile of theirs."""
    p = settings.ar_order
    own = temporal.estimate_kernels(YrA, p)
    decay = temporal.decay_time(own if p == 1 else temporal.estimate_kernels(YrA, 1), fps)
    plausible = decay <= max_decay_time
    if shared and plausible.any():
        # the kernel of the most reliable units: the fits of noisy units (and of units the
        # final filter drops) blur it. Crowded-field simulator, 250 cells: median corr of
        # binned spikes 0.798 / 0.797 (seeds 0 / 2) from the units with at least the median
        # SNR, 0.822 / 0.816 from the upper quartile, 0.802 / 0.832 from the top 10 %;
        # earlier, with all plausible units 0.82-0.87 against 0.87-0.88 at 150 cells
        snr = temporal.peak_snr(YrA)
        reliable = plausible & (snr >= np.quantile(snr[plausible], kernel_quantile))
        kernels = np.repeat(temporal.shared_kernel(own[reliable])[None], len(YrA), axis=0)
    else:
        kernels = own
    units = temporal.update_traces(YrA, kernels, settings, chunk, overlap, max_iter, tol)
    return {
        "C": np.array([u.c for u in units], np.float32).reshape(len(units), -1),
        "S": np.array([u.s for u in units], np.float32).reshape(len(units), -1),
        "g": kernels.astype(np.float64),
        "decay_time": decay.astype(np.float32),
        "baseline": np.array([u.baseline for u in units], np.float32),
        "trace_noise": np.array([u.noise for u in units], np.float32),
        "converged": np.array([u.converged for u in units], bool),
    }


def traces_figure(ctx: StepContext, YrA: np.ndarray, C: np.ndarray, S: np.ndarray, ids: np.ndarray,
                  n: int, name: str, caption: str, fps: float) -> None:
    """Save the example traces figure (:func:`plot_traces`) in the step's report."""
    fig = plot_traces(YrA, C, S, ids, n, fps)
    if fig is not None:
        ctx.report_figure(fig, name, caption)


def plot_traces(YrA: np.ndarray, C: np.ndarray, S: np.ndarray, ids: np.ndarray, n: int, fps: float):
    """Example traces: YrA (grey), C (colour) and spikes (ticks) for up to ``n`` units, the
    brightest first (time in s); None when there is no unit."""
    from ...present.figures import new_figure

    n = min(n, len(C))
    if n == 0:
        return None
    order = np.argsort(-C.max(axis=1))[:n]
    t = np.arange(C.shape[1]) / fps
    fig, axes = new_figure(n, 1, figsize=(11, 1.3 * n + 0.5), sharex=True, squeeze=False)
    for ax, i in zip(axes[:, 0], order):
        ax.plot(t, YrA[i], color="0.7", lw=0.5)
        ax.plot(t, C[i], lw=0.8)
        spikes = np.flatnonzero(S[i] > 0)
        if len(spikes):
            ax.vlines(t[spikes], -0.15 * C[i].max(), -0.02 * C[i].max(), color="k", lw=0.6)
        ax.set_ylabel(f"unit {ids[i]}", fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    return fig


def outline_overlay(A: np.ndarray, level: float = 0.3, color=(1.0, 0.6, 0.0)) -> np.ndarray:
    """RGBA image (h, w, 4) with the outline of every footprint at ``level`` x its max
    (one pass over the units, no contour tracing: fast for hundreds of units)."""
    from ..cnmf.spatial import unit_box

    overlay = np.zeros(A.shape[1:] + (4,), np.float32)
    for a in A:
        peak = a.max()
        if peak <= 0:
            continue
        mask = a > level * peak
        box = unit_box(mask, 1)  # eroding the box (1 px margin) alone is exact
        if box is None:
            continue
        edge = mask[box] & ~ndimage.binary_erosion(mask[box])
        overlay[box][edge] = (*color, 1.0)
    return overlay
