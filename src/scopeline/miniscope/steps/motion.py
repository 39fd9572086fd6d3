"""Steps 2c-2d -- rigid motion estimation (recursive, chunked phase correlation), frame QC
and frame selection.

The load step's pass registered every chunk of frames to its own template
(``chunk_shifts``, ``chunk_templates``); here the chunk templates are registered to each
other (``combine_chunks``), frames broken by a wireless link are found on the load pass's
cell statistics (``frame_qc``) and dropped or replaced by interpolation
(``broken_action``), frames whose motion is an outlier are dropped (among the frames left
by line-split removal), and the remaining frames are grouped for temporal
downsampling: ``subset`` keeps every n-th frame, ``mean`` averages n consecutive frames
after each is motion-corrected (no blur from averaging unaligned frames).

Writes ``shifts_all`` / ``peaks_all`` (every loaded frame), ``groups`` (output frames,
n) positions in ``pre`` averaged into each frame of ``Y``, ``keep`` (those positions,
flat), ``frame_index`` (first original frame of each group) and ``shifts`` (mean shift
of each group; a replaced frame's is interpolated), ``interpolate`` (rows: broken frame,
good frame before, good frame after, weight of the one before) and
``OUT/all_removed_frames.txt``. The crop step applies the shifts and writes the
corrected video ``Y``.
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ...io.atomic import write_text
from .. import report
from ..frame_qc import detect_broken_frames, interpolation_plan
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
    version = "5"  # 4: broken-frame detection, true frame numbers; 5: removed-frames log in true frame numbers

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
        broken, reasons = _broken_frames(ctx, p, kept)
        candidates = np.setdiff1d(kept, broken)  # judged by motion QC; broken frames' shifts are noise
        if not np.isfinite(shifts[candidates]).all():
            raise InputError(ctx.store_path, "motion estimation produced non-finite shifts",
                             "check the preprocessed video for empty or NaN frames")
        dropped = motion_outliers(shifts[candidates], p.qc_threshold, p.qc_min_motion)[0] if p.qc else np.zeros(0, int)
        good = np.delete(candidates, dropped)
        plan = np.zeros((0, 4))
        corrected = shifts.copy()
        if p.broken_action == "interpolate" and broken.size:
            plan = interpolation_plan(broken, good)
            t, a, b, w = plan[:, 0].astype(int), plan[:, 1].astype(int), plan[:, 2].astype(int), plan[:, 3:4]
            corrected[t] = w * shifts[a] + (1 - w) * shifts[b]  # the motion of a replaced frame
            used = np.union1d(good, t)
        else:
            used = good
        groups = frame_groups(used, lp["downsample_time"], lp["downsample_method"])
        if len(groups) == 0:
            raise InputError(ctx.store_path, f"no frame left after line-split removal, broken-frame removal and "
                             f"motion QC ({len(shifts)} loaded)",
                             "check the video, or relax load.line_split / motion.broken_frames / motion.qc")
        ctx.write("shifts_all", shifts.astype(np.float32))
        ctx.write("peaks_all", peaks.astype(np.float32))
        ctx.write("groups", groups)
        ctx.write("keep", groups.ravel())
        source = np.asarray(ctx.read("source_frames")) if ctx.has("source_frames") else np.arange(len(shifts))
        ctx.write("frame_index", source[groups[:, 0]])  # true frame numbers: skipped files keep their places
        ctx.write("shifts", corrected[groups].mean(axis=1).astype(np.float32))
        ctx.write("interpolate", plan)
        dropped_frames = candidates[dropped].tolist()
        ctx.write_json("removed_frames", {"motion_qc": dropped_frames, "broken": {str(k): v for k, v in reasons.items()},
                                          "broken_action": p.broken_action})
        ctx.write_json("motion_settings", p.model_dump(mode="json"))
        _write_removed_log(ctx, source, dropped_frames, reasons, p.broken_action)
        if dropped_frames:
            ctx.log.info("motion QC: dropped %d frames: %s", len(dropped_frames), source[dropped_frames].tolist())
        if broken.size:
            ctx.log.info("broken frames (%s): %d: %s", p.broken_action, broken.size, source[broken].tolist())
        ctx.report_figure(report.motion_figure(shifts[kept], kept, np.asarray(dropped_frames)), "shifts",
                          "Rigid shift per frame; frames dropped by QC marked with x")
        return {"frames": int(len(kept)), "dropped": len(dropped_frames), "broken": int(broken.size),
                "broken_action": p.broken_action, "frames_out": int(len(groups)),
                "max_abs_shift": float(np.abs(shifts[good]).max()) if len(good) else 0.0,
                "median_peak": float(np.median(peaks[good])) if len(good) else 0.0}


def _broken_frames(ctx: StepContext, p: MotionParams, kept: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """Broken frames among ``kept`` (sorted) and {frame: reason}; judged on the cell
    statistics the load pass stored (``frame_stats``) against the neighbouring frames."""
    if not p.broken_frames or not ctx.has("frame_stats"):
        return np.zeros(0, np.int64), {}
    import zarr

    stats = zarr.open_array(str(ctx.store_path), path=ctx.array_path("frame_stats"), mode="r")  # read in blocks
    found = detect_broken_frames(stats, window=p.broken_window, k=p.broken_k,
                                 noise_ratio=p.broken_noise_ratio, dark_fraction=p.broken_dark_fraction,
                                 min_cells=p.broken_min_cells)
    usable = set(kept.tolist())
    reasons = {t: r for t, r in found.reasons().items() if t in usable}
    return np.array(sorted(reasons), np.int64), reasons


def _write_removed_log(ctx: StepContext, source: np.ndarray, dropped: list[int], broken: dict[int, str],
                       action: str) -> None:
    """OUT/all_removed_frames.txt: every removed (or, with ``broken_action="interpolate"``,
    replaced) frame and why, one ``frame<TAB>reason`` line each in frame order; the header
    alone when none. Frames are numbered in the recording's timeline (``source``: the
    true frame number of every loaded frame, so the frames of a file skipped with
    ``--on-bad-video skip`` keep their places), like ``frame_index``."""
    line_split = ctx.read_json("load/removed_frames")["line_split"]
    suffix = " (interpolated)" if action == "interpolate" else ""
    rows = ([(f, "line_split") for f in line_split] + [(f, "motion_qc") for f in dropped]
            + [(f, f"broken:{why}{suffix}") for f, why in broken.items()])
    rows = [(int(source[f]), why) for f, why in rows]
    write_text(ctx.out_dir / "all_removed_frames.txt",
               "frame\treason\n" + "".join(f"{f}\t{why}\n" for f, why in sorted(rows)))


STEP = MotionStep()
