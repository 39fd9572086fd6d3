"""Steps 2e + 3a -- apply the motion correction, validate, and crop to the imaging field.

One pass over the preprocessed frames: each is shifted straight into the crop window
(bilinear; non-rigid mesh correction when ``motion.mesh`` is set), the frames of each
temporal-downsampling group are averaged, and the result is stored. Writes ``Y``
(frames, h, w) chunked by frames, float16 on disk (read as float32), ``crop_mask``,
``mean_frame``, ``max_frame``; JSON ``crop`` (box in original-frame pixels) and
``validation``.
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from .. import report
from ..fieldcrop import correct_and_crop, crop_region
from ..float16 import to_float16
from ..params import CropParams
from ..registration import apply_shifts
from ..tasks import share, tree_reduce
from .base import Step, StepContext, open_for_writing


def correct_chunk(store: str, source: str, target: str, groups: np.ndarray, shifts: np.ndarray, region,
                  mask: np.ndarray, fill: float, mesh, template, first: int, replace: np.ndarray | None = None) -> dict:
    """Correct and crop the frames ``groups`` (n, k) of ``source`` (shifts (n, k, 2)),
    replace the broken frames listed in ``replace`` (rows: frame, good frame before, good
    frame after, weight of the one before, then the two good frames' shifts) by the
    weighted mean of their corrected neighbours, average each group, write the n frames
    as one chunk of ``target`` at ``first``; return the counts of non-finite values and
    empty frames and the chunk's sum and max frames. Only this chunk is in memory."""
    import zarr

    n, k = groups.shape
    positions, array = groups.ravel(), zarr.open_array(store, path=source, mode="r")
    if len(positions) and positions[-1] - positions[0] + 1 == len(positions):  # a run: plain slice
        frames = array[positions[0] : positions[-1] + 1]
    else:
        frames = array.oindex[positions, :, :]
    out = correct_and_crop(frames, shifts.reshape(n * k, 2), region, mask, fill, mesh, template)
    if replace is not None and len(replace):
        where = {int(p): i for i, p in enumerate(positions)}
        for row in replace:
            a, b, weight = int(row[1]), int(row[2]), float(row[3])
            pair = correct_and_crop(np.stack([array[a], array[b]]), row[4:8].reshape(2, 2), region, mask, fill,
                                    mesh, template)
            out[where[int(row[0])]] = weight * pair[0] + (1 - weight) * pair[1]
    if k > 1:
        out = out.reshape((n, k) + mask.shape).mean(axis=1)
    open_for_writing(store, target)[first : first + n] = to_float16(out)
    total = out.sum(axis=0, dtype=np.float64)
    bad = 0 if np.isfinite(total).all() else int((~np.isfinite(out)).sum())
    return {"bad": bad, "empty": int((out.reshape(len(out), -1).max(axis=1) <= 0).sum()),
            "sum": total, "max": out.max(axis=0)}


def combine_stats(a: dict, b: dict) -> dict:
    return {"bad": a["bad"] + b["bad"], "empty": a["empty"] + b["empty"], "sum": a["sum"] + b["sum"],
            "max": np.maximum(a["max"], b["max"])}


class CropStep(Step):
    name = "crop"
    title = "2e, 3a. Corrected video, validation and crop"
    version = "3"  # broken frames replaced by interpolation
    params_model = CropParams

    def run(self, ctx: StepContext, p: CropParams) -> dict:
        import dask

        pre = ctx.read("pre")
        groups = np.asarray(ctx.read("groups"))
        keep = groups.ravel()
        shifts_all = np.asarray(ctx.read("shifts_all"), np.float64)
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
            template = apply_shifts(sample, shifts_all[keep[:200]], fill).mean(axis=0)
        target = ctx.create("Y", (len(groups),) + mask.shape, np.float16, (p.chunk_frames,) + mask.shape)
        plan = np.asarray(ctx.read("interpolate")) if ctx.has("interpolate") else np.zeros((0, 4))
        if len(plan):  # broken frames replaced by their neighbours: the neighbours' shifts travel along
            a, b = plan[:, 1].astype(int), plan[:, 2].astype(int)
            plan = np.column_stack([plan[:, :4], shifts_all[a], shifts_all[b]])
        source = "load/pre"
        shared_mask = share(mask)  # one copy per worker, not one per task
        shared_template = None if template is None else share(template)
        tasks = [dask.delayed(correct_chunk)(str(ctx.store_path), source, target, groups[a : a + p.chunk_frames],
                                             shifts_all[groups[a : a + p.chunk_frames]], region, shared_mask, fill,
                                             mesh, shared_template, a,
                                             plan[np.isin(plan[:, 0], groups[a : a + p.chunk_frames])])
                 for a in range(0, len(groups), p.chunk_frames)]
        stats = tree_reduce(tasks, combine_stats).compute() if tasks else {
            "bad": 0, "empty": 0, "sum": np.zeros(mask.shape), "max": np.zeros(mask.shape)}
        bad, empty = stats["bad"], stats["empty"]
        mean, peak = stats["sum"] / max(len(groups), 1), stats["max"]
        Y = ctx.read("Y")
        validation = {"frames": int(len(Y)), "non_finite": int(bad), "empty_frames": int(empty)}
        ctx.write_json("validation", validation)
        if bad:
            raise InputError(ctx.store_path, f"corrected video holds {bad} non-finite values after filling")
        ctx.write("mean_frame", mean.astype(np.float32))
        ctx.write("max_frame", peak.astype(np.float32))
        ctx.write("crop_mask", mask)
        ctx.write_json("crop", region.as_dict())
        before = np.asarray(pre[: min(len(pre), 200)]).mean(axis=0)  # two stored chunks: one read
        ctx.report_figure(report.frames_figure(before, mean,
                                               ("before correction (first 200 frames)", "after correction and crop")),
                          "mean", "Mean frame before and after motion correction and cropping")
        return {**validation, "crop": region.as_dict(), "non_rigid_mesh": mesh}


STEP = CropStep()
