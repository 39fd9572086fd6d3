"""Step 4 -- candidate units: watershed parameter search (4a) and segmentation (4b),
spatial merge (4c), trace extraction (4d), A/C initialisation (4e), removal of NaN /
empty / flat units (4f) and temporal merge (4g).

Writes ``A_init`` (units, h, w), ``C_init`` (units, frames), ``unit_ids`` (units,);
JSON ``watershed_search``, ``units`` and ``dropped_units``.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from .. import report
from ..params import DetectParams
from ..segmentation import footprint_stats, merge_spatial, search_watershed, segment_images
from ..units import bad_units, extract_traces, merge_temporal, normalize_units
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

    def run(self, ctx: StepContext, p: DetectParams) -> dict:
        components = np.asarray(ctx.read("nndsvd_spatial"))
        mean_frame = np.asarray(ctx.read("mean_frame"))
        max_frame = np.asarray(ctx.read("max_frame"))
        images = source_images(components, mean_frame, max_frame, p.use_summary_image)
        sample = images[: p.sample_size] + (images[-2:] if p.use_summary_image and len(images) > p.sample_size else [])
        best, table = search_watershed(sample, p.min_distances, p.threshold_rels, p.sigmas,
                                       p.min_region_size, p.max_region_size)
        ctx.write_json("watershed_search", {"best": best, "table": table})

        shape = mean_frame.shape
        candidates = segment_images(images, best["min_distance"], best["threshold_rel"], best["sigma"],
                                    p.min_region_size)
        if candidates is None:
            candidates = sparse.csr_matrix((0, mean_frame.size), dtype=np.float32)
        footprints, _ = merge_spatial(candidates, p.merge_distance, p.merge_size_ratio, p.merge_min_overlap,
                                      p.min_component_size, shape)
        if p.component_limit is not None:
            footprints = footprints[: p.component_limit]

        Y = ctx.read("Y")
        C = extract_traces(Y, footprints, p.batch_size, p.frame_chunk)
        A, C = normalize_units(footprints, C, p.normalize)
        bad = bad_units(A, C, p.flat_tolerance)
        keep = np.array([i for i in range(A.shape[0]) if i not in bad], dtype=int)
        A, C = A[keep], C[keep]
        A, C, groups = merge_temporal(A, C, p.temporal_corr_threshold, p.spatial_overlap_threshold)
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
        return {"watershed_best": {k: best[k] for k in ("min_distance", "threshold_rel", "sigma")},
                "candidates": int(candidates.shape[0]), "after_spatial_merge": int(footprints.shape[0]),
                "dropped": len(bad), "units": int(A.shape[0]),
                "temporal_merges": int(sum(len(g) > 1 for g in groups))}


STEP = DetectStep()
