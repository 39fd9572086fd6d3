"""Step 5 (guide 5a-5b): per-pixel noise map, validation and size filter of the components."""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ..cnmf.noise import adjust_noise_map, bright_threshold, movie_noise
from ..params_cnmf import NoiseParams
from .base import Step, StepContext
from .cnmf_common import component_stats, load_array, read_movie, require_units, write_units


class NoiseStep(Step):
    name = "noise"
    title = "CNMF preparation: noise estimation and validation"
    params_model = NoiseParams
    version = "2"  # float16 movie read in place, fused passes

    def run(self, ctx: StepContext, params: NoiseParams) -> dict:
        Y = read_movie(ctx, params.chunk_frames)
        if Y.shape[0] < 16:
            raise InputError(ctx.store_path, f"movie Y has {Y.shape[0]} frames; noise estimation needs at least 16",
                             "check the earlier steps (frames dropped by QC?)")
        mean_frame = load_array(ctx, "mean_frame")
        A = load_array(ctx, "A_init")
        C = load_array(ctx, "C_init")
        ids = load_array(ctx, "unit_ids")
        require_units(ctx, A, "A_init")

        # 5a noise map
        sn_raw = movie_noise(Y, params.chunk_frames, params.frequency_range, max_segments=params.max_segments)
        threshold = bright_threshold(mean_frame, params.background_threshold, params.custom_threshold)
        sn = adjust_noise_map(sn_raw, mean_frame, params.noise_scaling, threshold, params.smoothing_sigma)
        ctx.write("noise_raw", sn_raw)
        ctx.write("noise_map", sn)

        # 5b validation
        if params.check_nan:
            for name, array in (("A_init", A), ("C_init", C), ("noise_map", sn)):
                bad = int((~np.isfinite(array)).sum())
                if bad:
                    raise InputError(ctx.store_path, f"{name} holds {bad} NaN/Inf values",
                                     "re-run the earlier steps; check the input videos for corrupt frames")
        sizes = (A > 0).reshape(len(A), -1).sum(axis=1)
        reasons = [
            f"size {s} px < {params.min_size}" if s < params.min_size
            else f"size {s} px > {params.max_size}" if s > params.max_size else ""
            for s in sizes
        ]
        keep = write_units(ctx, "size filter", ids, reasons, A=A, C=C)
        summary = {"noise_median": float(np.median(sn_raw[sn_raw > 0])) if (sn_raw > 0).any() else 0.0,
                   "bright_threshold": threshold, "units_in": len(A), "units_kept": int(keep.sum())}
        if params.full_stats:
            ctx.write_json("component_stats", component_stats(A[keep], C[keep], ids[keep]))
        ctx.write_json("noise_summary", summary)
        _figure(ctx, sn_raw, sn)
        return summary


def noise_figure(sn_raw: np.ndarray, sn: np.ndarray):
    """The per-pixel noise map, raw and scaled/smoothed, side by side."""
    from ...present.figures import new_figure

    fig, axes = new_figure(1, 2, figsize=(10, 4.5))
    for ax, image, title in zip(axes, (sn_raw, sn), ("noise std (spectrum)", "scaled and smoothed")):
        shown = ax.imshow(image, cmap="magma")
        ax.set_title(title)
        ax.axis("off")
        fig.colorbar(shown, ax=ax, shrink=0.8)
    return fig


def _figure(ctx: StepContext, sn_raw: np.ndarray, sn: np.ndarray) -> None:
    ctx.report_figure(noise_figure(sn_raw, sn), "noise_map", "Per-pixel noise from the power spectrum above fs/4 (left), "
                      "after bright-region scaling and smoothing (right)")


STEP = NoiseStep()
