"""Step 7 (guide 7a-7f): spatial refinement by a non-negative LASSO on local tiles."""

from __future__ import annotations

import numpy as np

from ..cnmf import spatial
from ..cnmf.ring_background import fit_ring_movie, subtract_ring_movie
from ..params import DetectParams
from ..params_cnmf import SpatialParams
from ..residual import new_units, orthogonal_background, residual_activity_images, residual_movie
from .base import Step, StepContext
from .cnmf_common import (
    field_mask,
    load_array,
    load_ring,
    outline_overlay,
    read_movie,
    require_units,
    save_ring,
    write_units,
)

#: frames each task of the statistics pass reads (straight from the store) and sums, 100 at
#: a time: every task returns frame-sized partial sums, so fewer tasks move less data
FRAMES_PER_TASK = 200


class SpatialStep(Step):
    name = "cnmf_spatial"
    title = "CNMF spatial refinement"
    params_model = SpatialParams
    version = "4"  # 2: float16 movie read in place, fused passes; 3: search of the residual; 4: near footprints

    def run(self, ctx: StepContext, params: SpatialParams) -> dict:
        Y = read_movie(ctx, FRAMES_PER_TASK)
        A = load_array(ctx, "cnmf_temporal/A")
        C = load_array(ctx, "cnmf_temporal/C").astype(np.float64)
        S = load_array(ctx, "cnmf_temporal/S")
        ids = load_array(ctx, "cnmf_temporal/unit_ids")
        f = load_array(ctx, "cnmf_temporal/f").astype(np.float64)
        noise_map = load_array(ctx, "noise/noise_map")
        require_units(ctx, A, "A")
        field = field_mask(ctx, A.shape[1:])
        ring = load_ring(ctx, "cnmf_temporal")
        movie = Y if ring is None else subtract_ring_movie(Y, A, C, ring, field)  # the updates fit Y - B
        before = outline_overlay(A)  # for the figure (the dense stacks are freed as soon as used)

        # 7d: settle the penalty range and min_std
        support = spatial.dilate_footprints(A, params.dilation_window, params.dilation_threshold)
        suggested = spatial.suggest_spatial(noise_map, support)
        del support
        ctx.write_json("suggestions", suggested)
        if params.auto_suggest:
            params = params.model_copy(update={k: suggested[k] for k in ("min_penalty", "max_penalty", "min_std")})
        # 7a-7c, 7e
        result = spatial.spatial_update(movie, A, C, f, noise_map, params, frames_per_task=FRAMES_PER_TASK)
        n_before = len(A)
        del A
        arrays, reasons = _refine(result, C, S, params)
        # 7g: units missed by the initialisation, from the residual, then one more spatial update
        searches, emptied = [], []
        for _ in range(params.residual_passes):
            found = _search_residual(ctx, Y, arrays["A"], arrays["C"], params)
            searches.append(found["counts"])
            if not len(found["A"]):
                break
            ok = np.array([not r for r in reasons], bool)
            emptied += [{"unit_id": int(i), "stage": "spatial update", "reason": r} for i, r in zip(ids, reasons) if r]
            arrays = {k: v[ok] for k, v in arrays.items()}
            ids = np.r_[ids[ok], ids.max(initial=-1) + 1 + np.arange(len(found["A"]))]
            A = np.concatenate([arrays["A"], found["A"]])
            C = np.concatenate([arrays["C"], found["C"]]).astype(np.float64)
            S = np.concatenate([arrays["S"], np.zeros_like(found["C"])])
            f = orthogonal_background(f, found["C"])
            del arrays
            result = spatial.spatial_update(movie, A, C, f, noise_map, params, frames_per_task=FRAMES_PER_TASK)
            del A
            arrays, reasons = _refine(result, C, S, params)
        ctx.write_json("residual_search", searches)
        ctx.write_json("clusters", [{"units": ids[c].tolist(), "box": [box.y0, box.y1, box.x0, box.x1]}
                                    for c, box in zip(result.clusters, result.boxes)])
        keep = write_units(ctx, "spatial update", ids, reasons, earlier=emptied, **arrays)
        ctx.write("b", result.b)
        ctx.write("f", f.astype(np.float32))
        ctx.write("pixel_std", result.pixel_std)
        if ring is not None:  # refitted given the updated units, for step 8
            rows = np.flatnonzero(keep)
            save_ring(ctx, fit_ring_movie(Y, arrays["A"][rows], arrays["C"][rows], ring.radius, ring.width, field))
        after = outline_overlay(arrays["A"] if keep.all() else arrays["A"][keep])
        _figure(ctx, load_array(ctx, "mean_frame"), (before, n_before), (after, int(keep.sum())))
        return {"units_in": n_before, "units_added": len(ids) - n_before, "units_kept": int(keep.sum()),
                "clusters": len(result.clusters), "min_penalty": params.min_penalty,
                "max_penalty": params.max_penalty, "min_std": params.min_std,
                "residual_search": searches}


def _refine(result: spatial.SpatialResult, C: np.ndarray, S: np.ndarray,
            params: SpatialParams) -> tuple[dict[str, np.ndarray], list[str]]:
    """7f: keep each footprint's main blob, validate, smooth, normalise (A C unchanged).
    Returns the arrays to store (A, C, S and optionally A_raw) and the drop reasons."""
    raw = spatial.peak_component(result.A)
    result.A = result.support = None  # free the dense stacks no longer needed
    smoothed = spatial.smooth_footprints(raw, params.smoothing_sigma) if params.smoothing else raw
    reasons = ["footprint empty after the spatial update" if not (a > 0).any() else "" for a in smoothed]
    A_norm, C_norm = spatial.normalise_footprints(smoothed, C)
    peak = smoothed.max(axis=(1, 2))
    scale = np.where(peak > 0, peak, 1.0)  # footprints divided, traces multiplied by it
    arrays = {"A": A_norm.astype(np.float32, copy=False), "C": C_norm.astype(np.float32),
              "S": (S * scale[:, None]).astype(np.float32)}
    if params.smoothing and params.save_both:
        arrays["A_raw"] = (raw / scale[:, None, None]).astype(np.float32, copy=False)
    return arrays, reasons


def _search_residual(ctx: StepContext, Y, A: np.ndarray, C: np.ndarray, params: SpatialParams) -> dict:
    """7g: seeds on the activity image of the residual ``Y - A C_ls`` (``C_ls``: each
    frame's least-squares traces; the background stays, see ``residual_movie``; computed
    only on the pixels near footprints, step 4's images of ``Y`` elsewhere; seeds
    reaching ``residual_min_corr`` and ``residual_min_pnr``; step 4's other seed
    settings), footprints grown from them on the residual, those that are
    a found unit again dropped (:func:`..residual.new_units`). Two passes over ``Y``
    (one when there is no seed). Returns the new units' footprints (n, h, w) and
    high-passed seed traces (n, frames) and counts for the summary."""
    from ..seed_init import find_seeds, merge_seeds, seed_footprints
    from ..summary_images import ActivityImages, activity_images, seed_score
    from .detect import highpass, smoothing_frames

    d = ctx.all_params.detect if ctx.all_params is not None else DetectParams()
    shape = A.shape[1:]
    width = smoothing_frames(d.activity_smoothing, ctx.fps)
    activity, computed = residual_activity_images(Y, A, width, d.activity_threshold)
    if not computed.all():  # elsewhere the residual is Y: step 4's images (computed here if absent)
        whole = (ActivityImages(*(load_array(ctx, n) for n in ("pnr_image", "correlation_image")), None)
                 if ctx.has("pnr_image") and ctx.has("correlation_image")
                 else activity_images(Y, width, d.activity_threshold))
        activity = ActivityImages(np.where(computed, activity.pnr, whole.pnr),
                                  np.where(computed, activity.correlation, whole.correlation), None)
    score, mask = seed_score(activity, params.residual_min_corr, params.residual_min_pnr)
    seeds = find_seeds(score, mask, d.seed_min_distance)
    empty = {"A": np.zeros((0,) + shape, np.float32), "C": np.zeros((0, C.shape[1]), np.float32)}
    if not len(seeds):
        return {**empty, "counts": {"seeds": 0, "new_units": 0}}
    R = residual_movie(Y, A)  # each frame's least-squares traces: whatever A explains is removed
    footprints, traces = seed_footprints(R, seeds, d.seed_patch_radius, d.seed_footprint_corr)
    window = smoothing_frames(d.seed_highpass, ctx.fps)
    traces = highpass(traces, window)
    sizes = np.diff(footprints.indptr)
    keep = merge_seeds(footprints, traces, d.seed_merge_overlap, d.seed_merge_corr)
    keep = keep[sizes[keep] >= d.min_component_size]
    fresh = keep[new_units(A.reshape(len(A), -1), highpass(C, window), footprints[keep], traces[keep],
                           d.seed_merge_overlap, d.seed_merge_corr)]
    counts = {"seeds": int(len(seeds)), "grown": int(len(keep)), "new_units": int(len(fresh)),
              "seeds_yx": seeds[fresh].tolist()}
    if not len(fresh):
        return {**empty, "counts": counts}
    return {"A": footprints[fresh].toarray().reshape((-1,) + shape).astype(np.float32),
            "C": traces[fresh].astype(np.float32), "counts": counts}


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
