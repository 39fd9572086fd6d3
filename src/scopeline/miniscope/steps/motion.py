"""Steps 2c-2d -- rigid motion estimation (recursive, chunked phase correlation) and
frame QC. Writes ``shifts_all`` / ``peaks_all`` (every frame of ``pre``), ``keep``
(positions in ``pre`` that pass QC), ``frame_index`` and ``shifts`` of the kept frames.
The shifts are applied in the crop step, which writes the corrected video ``Y``.
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ...io.atomic import write_text
from .. import report
from ..params import MotionParams
from ..registration import combine_chunks, estimate_chunk, motion_outliers
from .base import Step, StepContext


class MotionStep(Step):
    name = "motion"
    title = "2c-2d. Motion correction and frame QC"
    params_model = MotionParams

    def run(self, ctx: StepContext, p: MotionParams) -> dict:
        import dask

        pre = ctx.read("pre")
        blocks = pre.to_delayed().ravel()
        tasks = [dask.delayed(estimate_chunk)(b, p.max_shift, p.upsample, p.template_frames) for b in blocks]
        chunks = list(dask.compute(*tasks))
        shifts, peaks = combine_chunks(chunks, pre.shape[1:], p.max_shift, p.upsample)
        if not np.isfinite(shifts).all():
            raise InputError(ctx.store_path, "motion estimation produced non-finite shifts",
                             "check the preprocessed video for empty or NaN frames")
        frame_index = np.asarray(ctx.read("frame_index"))
        dropped, motion = motion_outliers(shifts, p.qc_threshold, p.qc_min_motion) if p.qc else (np.zeros(0, int), None)
        keep = np.setdiff1d(np.arange(len(shifts)), dropped)
        ctx.write("shifts_all", shifts.astype(np.float32))
        ctx.write("peaks_all", peaks.astype(np.float32))
        ctx.write("keep", keep.astype(np.int64))
        ctx.write("frame_index", frame_index[keep])
        ctx.write("shifts", shifts[keep].astype(np.float32))
        dropped_frames = frame_index[dropped].tolist()
        ctx.write_json("removed_frames", {"motion_qc": dropped_frames})
        ctx.write_json("motion_settings", p.model_dump(mode="json"))
        _write_removed_log(ctx, dropped_frames)
        if dropped_frames:
            ctx.log.info("motion QC: dropped %d frames: %s", len(dropped_frames), dropped_frames)
        ctx.report_figure(report.motion_figure(shifts, frame_index, np.asarray(dropped_frames)), "shifts",
                          "Rigid shift per frame; frames dropped by QC marked with x")
        return {"frames": int(len(shifts)), "dropped": len(dropped_frames),
                "max_abs_shift": float(np.abs(shifts).max()) if len(shifts) else 0.0,
                "median_peak": float(np.median(peaks)) if len(peaks) else 0.0}


def _write_removed_log(ctx: StepContext, dropped: list[int]) -> None:
    """OUT/all_removed_frames.txt: every removed frame and why (absent when none)."""
    line_split = ctx.read_json("load/removed_frames")["line_split"]
    path = ctx.out_dir / "all_removed_frames.txt"
    rows = [f"{f}\tline_split" for f in line_split] + [f"{f}\tmotion_qc" for f in dropped]
    if rows:
        write_text(path, "frame\treason\n" + "\n".join(rows) + "\n")
    elif path.exists():
        path.unlink()


STEP = MotionStep()
