"""Steps 2c-2d -- rigid motion estimation (recursive, chunked phase correlation), frame QC
and frame selection.

The load step's pass registered every chunk of frames to its own template
(``chunk_shifts``, ``chunk_templates``); here the chunk templates are registered to each
other (``combine_chunks``), frames whose motion is an outlier are dropped (among the
frames left by line-split removal), and the remaining frames are grouped for temporal
downsampling: ``subset`` keeps every n-th frame, ``mean`` averages n consecutive frames
after each is motion-corrected (no blur from averaging unaligned frames).

Writes ``shifts_all`` / ``peaks_all`` (every loaded frame), ``groups`` (output frames,
n) positions in ``pre`` averaged into each frame of ``Y``, ``keep`` (those positions,
flat), ``frame_index`` (first original frame of each group) and ``shifts`` (mean shift
of each group). The crop step applies the shifts and writes the corrected video ``Y``.
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ...io.atomic import write_text
from .. import report
from ..params import MotionParams
from ..registration import combine_chunks, motion_outliers
from .base import Step, StepContext


def frame_groups(used: np.ndarray, factor: int, method: str) -> np.ndarray:
    """(output frames, n) positions of the frames making each output frame: every
    ``factor``-th frame (``subset``, n = 1) or runs of ``factor`` frames (``mean``)."""
    used = np.asarray(used, np.int64)
    if factor == 1 or method == "subset":
        return used[::factor, None]
    n = len(used) // factor
    return used[: n * factor].reshape(n, factor)


class MotionStep(Step):
    name = "motion"
    title = "2c-2d. Motion correction and frame QC"
    params_model = MotionParams
    version = "2"  # within-chunk estimation moved into the load pass

    def run(self, ctx: StepContext, p: MotionParams) -> dict:
        lp = ctx.read_json("load_settings")
        within = np.asarray(ctx.read("chunk_shifts"), np.float64)
        peaks_within = np.asarray(ctx.read("chunk_peaks"), np.float64)
        templates = np.asarray(ctx.read("chunk_templates"))
        size = lp["chunk_frames"]
        chunks = [{"shifts": within[i * size : (i + 1) * size], "peaks": peaks_within[i * size : (i + 1) * size],
                   "template": t} for i, t in enumerate(templates)]
        shape = tuple(ctx.read("pre").shape[1:])
        shifts, peaks = combine_chunks(chunks, shape, p.max_shift, p.upsample)
        kept = np.asarray(ctx.read("kept_frames"))
        if not np.isfinite(shifts[kept]).all():
            raise InputError(ctx.store_path, "motion estimation produced non-finite shifts",
                             "check the preprocessed video for empty or NaN frames")
        dropped = motion_outliers(shifts[kept], p.qc_threshold, p.qc_min_motion)[0] if p.qc else np.zeros(0, int)
        used = np.delete(kept, dropped)
        groups = frame_groups(used, lp["downsample_time"], lp["downsample_method"])
        if len(groups) == 0:
            raise InputError(ctx.store_path, f"no frame left after line-split removal and motion QC "
                             f"({len(shifts)} loaded)", "check the video, or relax load.line_split / motion.qc")
        ctx.write("shifts_all", shifts.astype(np.float32))
        ctx.write("peaks_all", peaks.astype(np.float32))
        ctx.write("groups", groups)
        ctx.write("keep", groups.ravel())
        source = np.asarray(ctx.read("source_frames")) if ctx.has("source_frames") else np.arange(len(shifts))
        ctx.write("frame_index", source[groups[:, 0]])  # true frame numbers: skipped files keep their places
        ctx.write("shifts", shifts[groups].mean(axis=1).astype(np.float32))
        dropped_frames = kept[dropped].tolist()
        ctx.write_json("removed_frames", {"motion_qc": dropped_frames})
        ctx.write_json("motion_settings", p.model_dump(mode="json"))
        _write_removed_log(ctx, dropped_frames)
        if dropped_frames:
            ctx.log.info("motion QC: dropped %d frames: %s", len(dropped_frames), dropped_frames)
        ctx.report_figure(report.motion_figure(shifts[kept], kept, np.asarray(dropped_frames)), "shifts",
                          "Rigid shift per frame; frames dropped by QC marked with x")
        return {"frames": int(len(kept)), "dropped": len(dropped_frames), "frames_out": int(len(groups)),
                "max_abs_shift": float(np.abs(shifts[kept]).max()) if len(kept) else 0.0,
                "median_peak": float(np.median(peaks[kept])) if len(kept) else 0.0}


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
