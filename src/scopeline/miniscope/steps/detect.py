"""Step 4 -- candidate units: watershed parameter search (4a) and segmentation (4b) of
the NNDSVD components, the summary images and the activity image (peak-to-noise ratio x
local correlation, one pass over Y: finds cells that fire rarely), spatial merge (4c),
trace extraction (4d), A/C initialisation (4e), removal of NaN / empty / flat units (4f)
and temporal merge, repeated until stable (4g).

Writes ``A_init`` (units, h, w), ``C_init`` (units, frames), ``unit_ids`` (units,),
``pnr_image`` and ``correlation_image`` (h, w); JSON ``watershed_search``, ``units`` and
``dropped_units``.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from .. import report
from ..params import DetectParams
from ..seed_init import find_seeds, merge_seeds, seed_footprints
from ..segmentation import footprint_stats, merge_spatial, search_watershed, segment_images, segment_masked
from ..summary_images import activity_images, seed_score
from ..units import bad_units, extract_traces, merge_temporal_repeated, normalize_units
from .base import Step, StepContext


def source_images(components: np.ndarray, mean_frame: np.ndarray, max_frame: np.ndarray,
                  use_summary: bool) -> list[np.ndarray]:
    """Images segmented: NNDSVD components 1+ (0 is background) and optionally the
    mean frame (cells with baseline fluorescence) and the max-minus-mean projection
    (every cell that fires at least once)."""
    images = [c for c in components[1:] if c.max() > 0]
    if use_summary:
        images += [np.maximum(mean_frame, 0).astype(np.float32),
                   np.maximum(max_frame - mean_frame, 0).astype(np.float32)]
    return images


def _write_footprints(ctx: StepContext, name: str, A, shape: tuple[int, int], block: int = 32) -> None:
    """Store sparse footprints (units, h*w) as the dense (units, h, w) float32 array
    ``name``, ``block`` units at a time (memory: one block)."""
    import zarr

    path = ctx.create(name, (A.shape[0],) + tuple(shape), np.float32, (block,) + tuple(shape))
    target = zarr.open_array(str(ctx.store_path), path=path, mode="r+")
    for start in range(0, A.shape[0], block):
        target[start : start + block] = A[start : start + block].toarray().reshape((-1,) + tuple(shape))


def smoothing_frames(seconds: float, fps: float) -> int:
    """Frames of a running mean lasting ``seconds`` (at least 1)."""
    return max(1, int(round(seconds * fps)))


def _activity(ctx: StepContext, p: DetectParams, Y):
    """The activity images (one pass over ``Y``), stored and drawn."""
    activity = activity_images(Y, smoothing_frames(p.activity_smoothing, ctx.fps), p.activity_threshold)
    ctx.write("pnr_image", activity.pnr)
    ctx.write("correlation_image", activity.correlation)
    ctx.report_figure(report.frames_figure(activity.pnr, activity.correlation,
                                           ("peak-to-noise ratio", "local correlation")),
                      "activity", "Activity images: cells that fire rarely show here")
    return activity


def activity_candidates(ctx: StepContext, p: DetectParams, Y, sigma: float):
    """Candidates from the activity image (PNR x local correlation of the traces, one
    pass over ``Y``): watershed regions around its peaks where both reach their minimum.
    Stores the PNR and correlation images."""
    score, mask = seed_score(_activity(ctx, p, Y), p.min_corr, p.min_pnr)
    return segment_masked(score, mask, p.activity_min_distance, sigma, p.min_region_size)


def highpass(traces: np.ndarray, frames: int) -> np.ndarray:
    """Traces minus their running mean over ``frames`` frames (slow background removed)."""
    from scipy.ndimage import uniform_filter1d

    traces = np.asarray(traces, np.float32)
    return traces - uniform_filter1d(traces, max(1, frames), axis=-1, mode="nearest")


def seed_candidates(ctx: StepContext, p: DetectParams, Y):
    """Units grown from seeds (``method = "seeds"``, see ``seed_init``): seeds at the peaks
    of PNR x local correlation (two passes over ``Y`` in all); returns sparse
    (units, h*w) footprints and counts for the step summary."""
    score, mask = seed_score(_activity(ctx, p, Y), p.min_corr, p.min_pnr)
    seeds = find_seeds(score, mask, p.seed_min_distance)
    A, traces = seed_footprints(Y, seeds, p.seed_patch_radius, p.seed_footprint_corr)
    sizes = np.diff(A.indptr)
    keep = merge_seeds(A, highpass(traces, smoothing_frames(p.seed_highpass, ctx.fps)), p.seed_merge_overlap,
                       p.seed_merge_corr)
    keep = keep[sizes[keep] >= p.min_component_size]
    return A[keep], {"seeds": int(len(seeds)), "empty_seeds": int((sizes == 0).sum()),
                     "seeds_kept": int(len(keep))}


def find_candidates(ctx: StepContext, p: DetectParams, Y, mean_frame: np.ndarray):
    """Watershed parameter search (4a) and candidates (4b) from the NNDSVD components,
    the summary images and the activity image, without regions too large to be a cell;
    returns sparse (candidates, h*w) footprints and counts for the step summary."""
    components = np.asarray(ctx.read("nndsvd_spatial"))
    max_frame = np.asarray(ctx.read("max_frame"))
    images = source_images(components, mean_frame, max_frame, p.use_summary_image)
    sample = images[: p.sample_size] + (images[-2:] if p.use_summary_image and len(images) > p.sample_size else [])
    best, table = search_watershed(sample, p.min_distances, p.threshold_rels, p.sigmas,
                                   p.min_region_size, p.max_region_size)
    ctx.write_json("watershed_search", {"best": best, "table": table})
    candidates = segment_images(images, best["min_distance"], best["threshold_rel"], best["sigma"],
                                p.min_region_size)
    parts = [sparse.csr_matrix((0, mean_frame.size), dtype=np.float32) if candidates is None else candidates]
    if p.use_activity_image:
        parts.append(activity_candidates(ctx, p, Y, best["sigma"]))
    candidates = sparse.vstack(parts).tocsr()
    # regions larger than any plausible cell (the faint skirts of bright areas) would
    # spread every unit they merge with beyond the size filters of later steps
    too_large = np.diff(candidates.indptr) > p.max_region_size
    counts = {"watershed_best": {k: best[k] for k in ("min_distance", "threshold_rel", "sigma")},
              "candidates": int(candidates.shape[0]),
              "activity_candidates": int(parts[1].shape[0]) if p.use_activity_image else 0,
              "too_large": int(too_large.sum())}
    return candidates[~too_large], counts


class _DenseRows:
    """Sequence view of sparse footprints as dense (h, w) images, one at a time."""

    def __init__(self, A, shape: tuple[int, int]):
        self.A, self.shape = A, shape

    def __len__(self) -> int:
        return self.A.shape[0]

    def __iter__(self):
        for i in range(self.A.shape[0]):
            yield self.A[i].toarray().reshape(self.shape)


class DetectStep(Step):
    name = "detect"
    title = "4. Component detection"
    params_model = DetectParams
    version = "3"  # seeds method (crowded fields)

    def run(self, ctx: StepContext, p: DetectParams) -> dict:
        mean_frame = np.asarray(ctx.read("mean_frame"))
        shape = mean_frame.shape
        Y = ctx.read("Y")
        if p.method == "seeds":
            footprints, counts = seed_candidates(ctx, p, Y)
        else:
            candidates, counts = find_candidates(ctx, p, Y, mean_frame)
            footprints, _ = merge_spatial(candidates, p.merge_distance, p.merge_size_ratio, p.merge_min_overlap,
                                          p.min_component_size, shape)
        if p.component_limit is not None:
            footprints = footprints[: p.component_limit]

        C = extract_traces(Y, footprints, p.batch_size, p.frame_chunk)
        A, C = normalize_units(footprints, C, p.normalize)
        bad = bad_units(A, C, p.flat_tolerance)
        keep = np.array([i for i in range(A.shape[0]) if i not in bad], dtype=int)
        A, C = A[keep], C[keep]
        merges: list[int] = []
        if p.method == "watershed":  # seeds were merged on their high-passed traces already
            A, C, merges = merge_temporal_repeated(A, C, p.temporal_corr_threshold, p.spatial_overlap_threshold,
                                                   p.temporal_merge_rounds)
        A, C = normalize_units(A, C, p.normalize)
        ids = np.arange(A.shape[0], dtype=np.int64)
        _write_footprints(ctx, "A_init", A, shape)
        ctx.write("C_init", C.astype(np.float32))
        ctx.write("unit_ids", ids)
        centroids, sizes = footprint_stats(A, shape)
        ctx.write_json("units", [{"unit_id": int(i), "centroid": c.round(2).tolist(), "size": int(s)}
                                 for i, c, s in zip(ids, centroids, sizes)])
        ctx.write_json("dropped_units", [{"candidate": int(i), "reason": r} for i, r in bad.items()])
        ctx.report_figure(report.components_figure(mean_frame, _DenseRows(A, shape), "initial units"), "units",
                          "Detected units (contour at 30 % of max) over the mean frame")
        return {**counts, "method": p.method, "after_spatial_merge": int(footprints.shape[0]),
                "dropped": len(bad), "units": int(A.shape[0]),
                "temporal_merges": sum(merges), "temporal_merge_rounds": len(merges)}


STEP = DetectStep()
