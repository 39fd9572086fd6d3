"""Step 7 (guide 7a-7f): spatial refinement by a non-negative LASSO on local tiles."""

from __future__ import annotations

import numpy as np

from ..cnmf import spatial
from ..params_cnmf import SpatialParams
from .base import Step, StepContext
from .cnmf_common import load_array, outline_overlay, read_movie, require_units, write_units


#: frames each task of the statistics pass reads (straight from the store) and sums, 100 at
#: a time: every task returns frame-sized partial sums, so fewer tasks move less data
FRAMES_PER_TASK = 200


class SpatialStep(Step):
    name = "cnmf_spatial"
    title = "CNMF spatial refinement"
    params_model = SpatialParams
    version = "2"  # float16 movie read in place, fused passes

    def run(self, ctx: StepContext, params: SpatialParams) -> dict:
        Y = read_movie(ctx, FRAMES_PER_TASK)
        A = load_array(ctx, "cnmf_temporal/A")
        C = load_array(ctx, "cnmf_temporal/C").astype(np.float64)
        S = load_array(ctx, "cnmf_temporal/S")
        ids = load_array(ctx, "cnmf_temporal/unit_ids")
        f = load_array(ctx, "cnmf_temporal/f").astype(np.float64)
        noise_map = load_array(ctx, "noise/noise_map")
        require_units(ctx, A, "A")
        before = outline_overlay(A)  # for the figure (the dense stacks are freed as soon as used)

        # 7d: settle the penalty range and min_std
        support = spatial.dilate_footprints(A, params.dilation_window, params.dilation_threshold)
        suggested = spatial.suggest_spatial(noise_map, support)
        del support
        ctx.write_json("suggestions", suggested)
        if params.auto_suggest:
            params = params.model_copy(update={k: suggested[k] for k in ("min_penalty", "max_penalty", "min_std")})
        # 7a-7c, 7e
        result = spatial.spatial_update(Y, A, C, f, noise_map, params, frames_per_task=FRAMES_PER_TASK)
        n_before = len(A)
        del A
        ctx.write_json("clusters", [{"units": ids[c].tolist(), "box": [box.y0, box.y1, box.x0, box.x1]}
                                    for c, box in zip(result.clusters, result.boxes)])
        # 7f: keep each footprint's main blob, validate, smooth, normalise (A C unchanged)
        raw = spatial.peak_component(result.A)
        result.A = result.support = None  # free the dense stacks no longer needed
        smoothed = spatial.smooth_footprints(raw, params.smoothing_sigma) if params.smoothing else raw
        reasons = ["footprint empty after the spatial update" if not (a > 0).any() else ""
                   for a in smoothed]
        A_norm, C_norm = spatial.normalise_footprints(smoothed, C)
        peak = smoothed.max(axis=(1, 2))
        scale = np.where(peak > 0, peak, 1.0)  # footprints divided, traces multiplied by it
        arrays = {"A": A_norm.astype(np.float32, copy=False), "C": C_norm.astype(np.float32),
                  "S": (S * scale[:, None]).astype(np.float32)}
        if params.smoothing and params.save_both:
            arrays["A_raw"] = (raw / scale[:, None, None]).astype(np.float32, copy=False)
        del raw, smoothed
        keep = write_units(ctx, "spatial update", ids, reasons, **arrays)
        ctx.write("b", result.b)
        ctx.write("f", f.astype(np.float32))
        ctx.write("pixel_std", result.pixel_std)
        after = outline_overlay(arrays["A"] if keep.all() else arrays["A"][keep])
        _figure(ctx, load_array(ctx, "mean_frame"), (before, n_before), (after, int(keep.sum())))
        return {"units_in": len(ids), "units_kept": int(keep.sum()), "clusters": len(result.clusters),
                "min_penalty": params.min_penalty, "max_penalty": params.max_penalty, "min_std": params.min_std}


def footprints_figure(mean_frame: np.ndarray, before: tuple[np.ndarray, int], after: tuple[np.ndarray, int]):
    """Outline overlays (and unit counts) before and after the update over the mean frame."""
    from ...present.figures import new_figure

    fig, axes = new_figure(1, 2, figsize=(11, 5))
    for ax, (overlay, n), title in zip(axes, (before, after), ("before (step 6)", "after the spatial update")):
        ax.imshow(mean_frame, cmap="gray")
        ax.imshow(overlay)
        ax.set_title(f"{title}: {n} units")
        ax.axis("off")
    return fig


def _figure(ctx: StepContext, mean_frame: np.ndarray, before: tuple[np.ndarray, int],
            after: tuple[np.ndarray, int]) -> None:
    ctx.report_figure(footprints_figure(mean_frame, before, after), "footprints",
                      "Footprint contours (30% of max) over the mean frame")


STEP = SpatialStep()
