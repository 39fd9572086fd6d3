"""Steps 2a-2c in one pass over the video: match the files in natural order, decode,
downsample in space, take the line-splitting statistic, denoise and remove the background
(the ``preprocess`` parameters) and register each chunk of frames to its own template
(the ``motion`` estimation parameters). One pass instead of one per step: decoding,
filtering and the chunk registration all work frame by frame, and reading the video or
an intermediate store again costs as much as the work itself.

Writes ``pre`` (every loaded frame, preprocessed: uint8 for 8-bit input), ``raw_mean``
(mean raw frame), ``edge_means`` (left-edge statistic per frame), ``frame_stats`` (per
frame, the cell statistics of ``frame_qc`` for broken-frame detection), ``kept_frames``
(frames left after line-split removal), ``chunk_shifts`` / ``chunk_peaks`` (within-chunk shift
and peak of every frame) and ``chunk_templates`` (band spectrum of each chunk's
template) and JSON ``frame_geometry`` (input frame shape, spatial downsampling). The
motion step chains the chunks and selects frames; the crop step applies
the shifts. Unreadable or truncated files stop the run, or are skipped and recorded
(``on_bad_video="skip"``).
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import InputError
from ...io.atomic import write_text
from ...io.video import declared_frames, find_videos, frame_segments, probe_video, read_frames
from .. import report
from ..filters import output_dtype, preprocess_frames
from ..frame_qc import N_STATS, frame_statistics, grid_shape
from ..linesplit import detect_left_edge, detect_robust, left_edge_means
from ..params import LoadParams, MiniscopeParams
from ..registration import estimate_chunk
from ..tasks import tree_reduce
from .base import Step, StepContext, open_for_writing


def read_block(path: str, start: int, stop: int, factor: int, method: str) -> np.ndarray:
    """Frames start..stop-1 of one file, spatially downsampled by ``factor``."""
    return downsample_space(read_frames(path, start, stop), factor, method)


def load_chunk(segments: list[tuple[str, int, int]], factor: int, method: str, edge_width: int, pre,
               motion: dict, store: str, component: str, stats_component: str, first: int) -> dict:
    """One pass over one chunk of frames (possibly from several files): decode, downsample,
    take the left-edge statistic, the broken-frame cell statistics (``frame_qc``) and the
    sum frame, denoise and remove the background, write the preprocessed frames and the
    cell statistics into their zarr arrays at ``first``, and register the chunk's frames
    to the chunk's own template (``estimate_chunk``). Only this chunk is in memory; the
    broken-frame decision needs the neighbouring chunks and is made in the motion step."""
    frames = np.concatenate([read_block(path, a, b, factor, method) for path, a, b in segments])
    exact = np.uint32 if frames.dtype in (np.uint8, np.uint16) and len(frames) < 65536 else np.float64
    edge, total = left_edge_means(frames, edge_width), frames.sum(axis=0, dtype=exact).astype(np.float64)
    open_for_writing(store, stats_component)[first : first + len(frames)] = frame_statistics(frames)
    pre = preprocess_frames(frames, pre)
    open_for_writing(store, component)[first : first + len(pre)] = pre
    return {"edge": edge, "sum": total, "motion": [estimate_chunk(pre, **motion)]}


def _combine(a: dict, b: dict) -> dict:
    return {"edge": np.concatenate([a["edge"], b["edge"]]), "sum": a["sum"] + b["sum"],
            "motion": a["motion"] + b["motion"]}


def downsample_space(frames: np.ndarray, factor: int, method: str) -> np.ndarray:
    if factor == 1:
        return frames
    if method == "subset":
        return frames[:, ::factor, ::factor]
    t, h, w = frames.shape
    h2, w2 = h // factor, w // factor
    blocks = frames[:, : h2 * factor, : w2 * factor].reshape(t, h2, factor, w2, factor)
    mean = blocks.mean(axis=(2, 4), dtype=np.float32)
    return (np.round(mean) if np.issubdtype(frames.dtype, np.integer) else mean).astype(frames.dtype)


def line_split_frames(edge: np.ndarray, p: LoadParams) -> tuple[np.ndarray, np.ndarray]:
    if p.line_split_method == "left_edge":
        frames, threshold = detect_left_edge(edge, p.line_split_threshold)
        return frames, np.full(len(edge), threshold)
    return detect_robust(edge, p.line_split_robust_k)


def fused_settings(ctx: StepContext) -> tuple:
    """The preprocess parameters and the motion estimation settings the load pass uses."""
    full = ctx.all_params if ctx.all_params is not None else MiniscopeParams()
    m = full.motion
    return full.preprocess, {"max_shift": m.max_shift, "upsample": m.upsample, "template_frames": m.template_frames}


class LoadStep(Step):
    name = "load"
    title = "2a-2c. Load, denoise, remove background, register within chunks"
    params_model = LoadParams
    version = "4"  # 3: source_frames (true timeline with skipped files); 4: broken-frame statistics

    def fingerprint(self, ctx: StepContext, params: LoadParams) -> dict:
        files = find_videos(ctx.input_dir, params.pattern)
        stats = [(str(f.relative_to(ctx.input_dir)), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        pre, motion = fused_settings(ctx)
        return {"files": stats, "fraction": ctx.fraction, "on_bad_video": ctx.on_bad_video,
                "preprocess": pre.model_dump(mode="json"), "motion_estimate": motion}

    def run(self, ctx: StepContext, p: LoadParams) -> dict:
        import dask

        files = find_videos(ctx.input_dir, p.pattern)
        videos, infos, origins = [], [], []
        position = 0  # first frame of the next file in the recording's timeline
        for path in files:
            info = None
            try:
                info = probe_video(path)
                if infos and (info.height, info.width, info.dtype) != (infos[0].height, infos[0].width, infos[0].dtype):
                    first = infos[0]
                    raise InputError(path, f"frames are {info.height}x{info.width} {info.dtype}, "
                                     f"{first.path.name} has {first.height}x{first.width} {first.dtype}")
            except InputError as exc:
                if ctx.on_bad_video != "skip":
                    raise
                n = info.n_frames if info is not None else declared_frames(path)
                videos.append({"file": str(path), "status": "skipped", "n_frames": 0, "error": str(exc),
                               "first_frame": position, "frames_in_timeline": n})
                ctx.log.warning("skipping %s; %s", exc, skip_note(n, position, ctx.fps))
                position += n or 0
                continue
            infos.append(info)
            origins.append(position)
            videos.append({"file": str(path), "status": "used", "n_frames": info.n_frames, "error": "",
                           "first_frame": position})
            position += info.n_frames
        ctx.write_json("videos", videos)
        ctx.write_json("load_settings", p.model_dump(mode="json"))
        if not infos:
            raise InputError(ctx.input_dir, "no readable video", "see the skipped files in the log")

        total = sum(i.n_frames for i in infos)
        n_use = total if ctx.fraction is None else max(1, math.ceil(ctx.fraction * total))
        shape = downsample_space(np.zeros((1, infos[0].height, infos[0].width), infos[0].dtype),
                                 p.downsample_space, p.downsample_method).shape[1:]
        pre_params, motion = fused_settings(ctx)
        target = ctx.create("pre", (n_use,) + shape, output_dtype(infos[0].dtype, pre_params),
                            (p.chunk_frames,) + shape)
        grid = grid_shape(shape) + (N_STATS,)
        stats = ctx.create("frame_stats", (n_use,) + grid, np.float32, (p.chunk_frames,) + grid)
        ctx.write_json("frame_geometry", {"input_shape": [infos[0].height, infos[0].width], "shape": list(shape),
                                          "downsample_space": p.downsample_space,
                                          "downsample_method": p.downsample_method})
        width = max(1, math.ceil(p.line_split_width / p.downsample_space))
        ctx.write("source_frames", source_frames(infos, origins)[:n_use])
        tasks = []
        for first in range(0, n_use, p.chunk_frames):
            segments = frame_segments(infos, first, min(first + p.chunk_frames, n_use))
            tasks.append(dask.delayed(load_chunk)(segments, p.downsample_space, p.downsample_method, width,
                                                  pre_params, motion, str(ctx.store_path), target, stats, first))
        result = tree_reduce(tasks, _combine).compute()
        edge, mean = result["edge"], result["sum"] / max(n_use, 1)
        ctx.write("chunk_shifts", np.concatenate([c["shifts"] for c in result["motion"]]).astype(np.float32))
        ctx.write("chunk_peaks", np.concatenate([c["peaks"] for c in result["motion"]]).astype(np.float32))
        ctx.write("chunk_templates", np.stack([c["template"] for c in result["motion"]]))

        removed = np.zeros(0, np.int64)
        threshold = np.full(len(edge), np.nan)
        if p.line_split:
            removed, threshold = line_split_frames(edge, p)
        kept = np.setdiff1d(np.arange(len(edge)), removed)
        ctx.write("raw_mean", mean.astype(np.float32))
        ctx.write("edge_means", edge)
        ctx.write("kept_frames", kept.astype(np.int64))
        ctx.write_json("removed_frames", {"line_split": removed.tolist(), "method": p.line_split_method})
        if removed.size:
            ctx.log.info("line splitting: removed %d frames: %s", removed.size, removed.tolist())
            write_text(ctx.step_dir / "line_split_frames.txt", "\n".join(map(str, removed.tolist())) + "\n")
            ctx.report_figure(report.line_split_figure(edge, float(np.median(threshold)), removed),
                              "line_split", "Left-edge statistic; removed frames marked")
        middle = raw_frame(infos, len(edge) // 2, p)
        ctx.report_figure(report.frames_figure(mean, middle, ("mean frame", "middle frame")), "frames", "Raw video")
        ctx.write("middle_frame", middle)
        return {"files_used": len(infos), "files_skipped": len(files) - len(infos), "frames_total": total,
                "frames_loaded": int(len(edge)), "line_split_removed": int(removed.size),
                "frames_kept": int(len(kept)), "frame_shape": list(shape)}


def source_frames(infos, origins: list[int]) -> np.ndarray:
    """The frame number in the recording's timeline of every loaded frame: the frames of
    a skipped file keep their places, so later frames keep their true times."""
    parts = [origin + np.arange(info.n_frames, dtype=np.int64) for info, origin in zip(infos, origins)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def skip_note(n_frames: int | None, position: int, fps: float) -> str:
    """What a skipped file does to the timeline, for the console."""
    if n_frames is None:
        return (f"its frame count is unknown (unreadable header), so the frames after it are timed as if it "
                f"held none (from frame {position}, {position / fps:.3f} s)")
    return (f"its {n_frames} frames (frames {position}-{position + n_frames - 1}, "
            f"{position / fps:.3f}-{(position + n_frames) / fps:.3f} s) are a gap in the timeline")


def raw_frame(infos, index: int, p: LoadParams) -> np.ndarray:
    """Frame ``index`` of the recording as loaded (spatially downsampled), read again."""
    (path, a, b), = frame_segments(infos, index, index + 1)
    return read_block(path, a, b, p.downsample_space, p.downsample_method)[0]


STEP = LoadStep()
