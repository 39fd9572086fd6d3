"""Step 6 (guide 6a-6e): YrA, its validation, parameter suggestions, temporal update, filter."""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ..cnmf import temporal
from ..params_cnmf import TemporalParams
from .base import Step, StepContext
from .cnmf_common import (
    footprint_matrix,
    load_array,
    initial_yra,
    require_units,
    run_temporal_update,
    traces_figure,
    write_units,
)


class TemporalStep(Step):
    name = "cnmf_temporal"
    title = "CNMF temporal update"
    params_model = TemporalParams
    version = "1"

    def run(self, ctx: StepContext, params: TemporalParams) -> dict:
        Y = ctx.read("Y")
        A = load_array(ctx, "noise/A")
        ids = load_array(ctx, "noise/unit_ids")
        require_units(ctx, A, "A")
        field = load_array(ctx, "crop_mask").astype(bool) if ctx.has("crop_mask") else np.ones(A.shape[1:], bool)

        # 6a
        n_background = params.background_components if params.subtract_background else 0
        YrA, f, projection = initial_yra(Y, A, field, n_background, params.background_pixels, params.frame_chunk,
                             params.fix_nan, params.use_float32)
        if not np.isfinite(YrA).all():
            raise InputError(ctx.store_path, "YrA holds NaN/Inf values", "enable fix_nan or check the movie")
        # 6b: recompute a sample directly from the movie
        validation = _validate(Y, A, projection, params)
        ctx.write_json("yra_validation", validation)
        if not validation["ok"] or not np.isfinite(YrA).all():
            raise InputError(ctx.store_path, f"YrA check failed: {validation}", "report this as a bug")
        # 6c
        chosen = temporal.TemporalSettings(params.ar_order, params.sparse_penalty, params.zero_threshold)
        suggested, evidence = temporal.suggest_temporal(YrA, chosen)
        ctx.write_json("suggestions", {"suggested": suggested.__dict__, "evidence": evidence})
        settings = suggested if params.auto_suggest else chosen
        ctx.write_json("temporal_settings", {**settings.__dict__, "max_iterations": params.max_iterations,
                                             "tolerance": params.tolerance, "shared_kernel": params.shared_kernel,
                                             "max_decay_time": params.max_decay_time})
        # 6d
        result = run_temporal_update(YrA, settings, params.chunk_size, params.overlap, params.max_iterations,
                                     params.tolerance, ctx.fps, params.shared_kernel, params.max_decay_time)
        # 6e
        reasons = temporal.temporal_filter_reasons(result["C"], result["S"], footprint_matrix(A),
                                                   result["converged"], params.min_spike_sum,
                                                   params.min_calcium_variance, params.min_spatial_sum,
                                                   result["decay_time"], params.max_decay_time)
        keep = write_units(ctx, "temporal filter", ids, reasons, A=A, YrA=YrA,
                           **{k: v for k, v in result.items() if k != "converged"})
        ctx.write("f", f.astype(np.float32))
        traces_figure(ctx, YrA[keep], result["C"][keep], result["S"][keep], ids[keep], 6, "traces",
                      "YrA (grey), denoised calcium C and inferred spikes (ticks)", ctx.fps)
        return {"units_in": len(ids), "units_kept": int(keep.sum()), "ar_order": settings.ar_order,
                "sparse_penalty": settings.sparse_penalty, "zero_threshold": settings.zero_threshold,
                "not_converged": int((~result["converged"]).sum())}


def _validate(Y, A: np.ndarray, projection: np.ndarray, params: TemporalParams) -> dict:
    """Step 6b: recompute, straight from the movie, the projection YrA is built from for
    sampled units and frames."""
    n_units = min(params.validation_units, len(A))
    if n_units == 0:
        return {"ok": True, "skipped": "validation_units = 0"}
    units = np.sort(np.random.default_rng(0).choice(len(A), n_units, replace=False))
    frames = temporal.sample_frames(Y.shape[0], params.validation_n_frames, params.validation_frames)
    ys, xs = np.nonzero(A[units].any(axis=0))
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    movie = np.asarray(Y[frames, y0:y1, x0:x1].compute(), np.float64)
    movie = np.nan_to_num(movie) if params.fix_nan else movie
    local = A[units][:, y0:y1, x0:x1].reshape(n_units, -1).astype(np.float64)
    reference = local @ movie.reshape(len(frames), -1).T
    return {**temporal.validate_yra(projection[np.ix_(units, frames)], reference),
            "units": units.tolist(), "n_frames": int(len(frames)), "selection": params.validation_frames}


STEP = TemporalStep()
