"""Steps 2e + 3a -- apply the motion correction, validate, and crop to the imaging field.

Writes ``Y`` (frames, h, w) float32 chunked by frames, ``crop_mask``, ``mean_frame``,
``max_frame``; JSON ``crop`` (box in original-frame pixels) and ``validation``.
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from .. import report
from ..fieldcrop import correct_and_crop, crop_region
from ..params import CropParams
from ..registration import apply_shifts
from ..tasks import share, tree_reduce
from .base import Step, StepContext


def correct_chunk(store: str, source: str, target: str, positions: np.ndarray, shifts: np.ndarray, region,
                  mask: np.ndarray, fill: float, mesh, template, first: int) -> dict:
    """Correct and crop frames ``positions`` of ``source``, write them as one chunk of
    ``target`` at ``first``; return the counts of non-finite values and empty frames and
    the chunk's sum and max frames. Only this chunk is in memory."""
    import zarr

    frames = zarr.open_array(store, path=source, mode="r").oindex[np.asarray(positions), :, :]
    out = correct_and_crop(frames, shifts, region, mask, fill, mesh, template)
    zarr.open_array(store, path=target, mode="r+")[first : first + len(out)] = out
    return {"bad": int((~np.isfinite(out)).sum()), "empty": int((out.reshape(len(out), -1).max(axis=1) <= 0).sum()),
            "sum": out.sum(axis=0, dtype=np.float64), "max": out.max(axis=0)}


def combine_stats(a: dict, b: dict) -> dict:
    return {"bad": a["bad"] + b["bad"], "empty": a["empty"] + b["empty"], "sum": a["sum"] + b["sum"],
            "max": np.maximum(a["max"], b["max"])}


class CropStep(Step):
    name = "crop"
    title = "2e, 3a. Corrected video, validation and crop"
    params_model = CropParams

    def run(self, ctx: StepContext, p: CropParams) -> dict:
        import dask

        pre = ctx.read("pre")
        keep = np.asarray(ctx.read("keep"))
        shifts = np.asarray(ctx.read("shifts"))
        motion = ctx.read_json("motion_settings")
        fill, mesh = motion["fill_value"], motion["mesh"]
        raw_mean = np.asarray(ctx.read("raw_mean"))
        try:
            region, mask = crop_region(pre.shape[1:], p, raw_mean)
        except ValueError as exc:
            raise InputError(ctx.store_path, str(exc), "check crop.rectangle / crop.radius") from None
        template = None
        if mesh is not None:  # non-rigid reference: mean of the first rigidly corrected frames
            mesh = tuple(mesh)
            sample = np.asarray(pre[keep[:200]])
            template = apply_shifts(sample, shifts[: len(sample)], fill).mean(axis=0)
        target = ctx.create("Y", (len(keep),) + mask.shape, np.float32, (p.chunk_frames,) + mask.shape)
        source = "preprocess/pre"
        shared_mask = share(mask)  # one copy per worker, not one per task
        shared_template = None if template is None else share(template)
        tasks = [dask.delayed(correct_chunk)(str(ctx.store_path), source, target, keep[a : a + p.chunk_frames],
                                             shifts[a : a + p.chunk_frames], region, shared_mask, fill, mesh,
                                             shared_template, a)
                 for a in range(0, len(keep), p.chunk_frames)]
        stats = tree_reduce(tasks, combine_stats).compute() if tasks else {
            "bad": 0, "empty": 0, "sum": np.zeros(mask.shape), "max": np.zeros(mask.shape)}
        bad, empty = stats["bad"], stats["empty"]
        mean, peak = stats["sum"] / max(len(keep), 1), stats["max"]
        Y = ctx.read("Y")
        validation = {"frames": int(len(Y)), "non_finite": int(bad), "empty_frames": int(empty)}
        ctx.write_json("validation", validation)
        if bad:
            raise InputError(ctx.store_path, f"corrected video holds {bad} non-finite values after filling")
        ctx.write("mean_frame", mean.astype(np.float32))
        ctx.write("max_frame", peak.astype(np.float32))
        ctx.write("crop_mask", mask)
        ctx.write_json("crop", region.as_dict())
        ctx.report_figure(report.frames_figure(np.asarray(pre[keep[:500]].mean(axis=0)), mean,
                                               ("before correction (first 500 frames)", "after correction and crop")),
                          "mean", "Mean frame before and after motion correction and cropping")
        return {**validation, "crop": region.as_dict(), "non_rigid_mesh": mesh}


STEP = CropStep()
