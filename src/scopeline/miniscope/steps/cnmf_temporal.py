"""Step 6 (guide 6a-6e): YrA, its validation, parameter suggestions, temporal update, filter."""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ..cnmf import ring_background, temporal
from ..params_cnmf import TemporalParams
from .base import Step, StepContext
from .cnmf_common import (
    field_mask,
    footprint_matrix,
    initial_yra,
    load_array,
    read_movie,
    require_units,
    run_temporal_update,
    save_ring,
    traces_figure,
    write_units,
)


class TemporalStep(Step):
    name = "cnmf_temporal"
    title = "CNMF temporal update"
    params_model = TemporalParams
    version = "2"  # float16 movie read in place, fused passes

    def run(self, ctx: StepContext, params: TemporalParams) -> dict:
        Y = read_movie(ctx)
        A = load_array(ctx, "noise/A")
        ids = load_array(ctx, "noise/unit_ids")
        require_units(ctx, A, "A")
        Af = footprint_matrix(A)
        field = field_mask(ctx, A.shape[1:])

        # 6a (with the 6b reference for sampled units and frames computed in the same pass)
        n_background = params.background_components if params.subtract_background else 0
        units, frames = _validation_sample(len(A), Y.shape[0], params)
        YrA, f, projection, reference = initial_yra(Y, Af, field, n_background, params.background_pixels,
                                                    params.frame_chunk, params.fix_nan, params.use_float32,
                                                    check_rows=units, check_frames=frames)
        if not np.isfinite(YrA).all():
            raise InputError(ctx.store_path, "YrA holds NaN/Inf values", "enable fix_nan or check the movie")
        # 6b: compare with the sample recomputed straight from the movie
        validation = ({"ok": True, "skipped": "validation_units = 0"} if len(units) == 0 else
                      {**temporal.validate_yra(projection[np.ix_(units, frames)], reference),
                       "units": units.tolist(), "n_frames": int(len(frames)), "selection": params.validation_frames})
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
                                             "max_decay_time": params.max_decay_time,
                                             "kernel_snr_quantile": params.kernel_snr_quantile})
        # 6d
        result = run_temporal_update(YrA, settings, params.chunk_size, params.overlap, params.max_iterations,
                                     params.tolerance, ctx.fps, params.shared_kernel, params.max_decay_time,
                                     params.kernel_snr_quantile)
        # 6e
        reasons = temporal.temporal_filter_reasons(result["C"], result["S"], Af,
                                                   result["converged"], params.min_spike_sum,
                                                   params.min_calcium_variance, params.min_spatial_sum,
                                                   result["decay_time"], params.max_decay_time)
        keep = write_units(ctx, "temporal filter", ids, reasons, A=A, YrA=YrA,
                           **{k: v for k, v in result.items() if k != "converged"})
        ctx.write("f", f.astype(np.float32))
        if params.background_model == "ring":  # fitted given the kept units (one more pass over Y)
            kept = Af[np.flatnonzero(keep)]
            radius = params.ring_radius or ring_background.ring_radius_for(kept)
            save_ring(ctx, ring_background.fit_ring_movie(Y, kept, result["C"][keep], radius, params.ring_width, field))
        traces_figure(ctx, YrA[keep], result["C"][keep], result["S"][keep], ids[keep], 6, "traces",
                      "YrA (grey), denoised calcium C and inferred spikes (ticks)", ctx.fps)
        return {"units_in": len(ids), "units_kept": int(keep.sum()), "ar_order": settings.ar_order,
                "sparse_penalty": settings.sparse_penalty, "zero_threshold": settings.zero_threshold,
                "not_converged": int((~result["converged"]).sum())}


def _validation_sample(n_units: int, n_frames: int, params: TemporalParams) -> tuple[np.ndarray, np.ndarray]:
    """Step 6b sample: units (seeded random) and frames whose projection is recomputed."""
    n = min(params.validation_units, n_units)
    if n == 0:
        return np.zeros(0, int), np.zeros(0, int)
    units = np.sort(np.random.default_rng(0).choice(n_units, n, replace=False))
    return units, temporal.sample_frames(n_frames, params.validation_n_frames, params.validation_frames)


STEP = TemporalStep()
