"""Step 2a -- load the videos: match, natural order, downsample, line-splitting frames.

Writes ``varr`` (every frame of the used files, after spatial downsampling, input dtype),
``raw_mean`` (mean frame), ``edge_means`` (left-edge statistic per frame), ``kept_frames``
(frames left after line-split removal) and ``frame_index`` (the original index of each
frame the next steps see, after temporal downsampling). Unreadable or truncated files
stop the run, or are skipped and recorded (``on_bad_video="skip"``).
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import InputError
from ...io.atomic import write_text
from ..io_video import find_videos, probe_video, read_frames
from ..linesplit import detect_left_edge, detect_robust, left_edge_means
from ..params import LoadParams
from .. import report
from ..tasks import tree_reduce
from .base import Step, StepContext


def read_block(path: str, start: int, stop: int, factor: int, method: str) -> np.ndarray:
    """Frames start..stop-1 of one file, spatially downsampled by ``factor``."""
    return downsample_space(read_frames(path, start, stop), factor, method)


def load_chunk(segments: list[tuple[str, int, int]], factor: int, method: str, edge_width: int,
               store: str, component: str, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one stored chunk of frames (possibly from several files), write it into the
    zarr array at ``first`` and return its left-edge statistic and sum frame (float64).
    Only this chunk is in memory."""
    import zarr

    frames = np.concatenate([read_block(path, a, b, factor, method) for path, a, b in segments])
    zarr.open_array(store, path=component, mode="r+")[first : first + len(frames)] = frames
    return left_edge_means(frames, edge_width), frames.sum(axis=0, dtype=np.float64)


def _combine(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([a[0], b[0]]), a[1] + b[1]


def _segments(infos, starts: np.ndarray, first: int, stop: int) -> list[tuple[str, int, int]]:
    """(file, start, stop) pieces covering global frames first..stop-1."""
    pieces = []
    for info, offset in zip(infos, starts[:-1]):
        a, b = max(first, offset), min(stop, offset + info.n_frames)
        if a < b:
            pieces.append((str(info.path), int(a - offset), int(b - offset)))
    return pieces


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


def select_frames(varr, kept_frames: np.ndarray, factor: int, method: str):
    """The frames the pipeline works on: ``kept_frames`` of ``varr``, temporally downsampled."""
    import dask.array as da

    selected = varr[np.asarray(kept_frames)]
    if factor == 1:
        return selected
    if method == "subset":
        return selected[::factor]
    n = (selected.shape[0] // factor) * factor
    selected = selected[:n].rechunk((max(factor, (selected.chunks[0][0] // factor) * factor),) + selected.shape[1:])
    return da.coarsen(np.mean, selected, {0: factor}, trim_excess=True).astype(varr.dtype)


def selected_index(kept_frames: np.ndarray, factor: int, method: str) -> np.ndarray:
    """Original index of each selected frame (the first of each group for ``mean``)."""
    if method == "subset":
        return kept_frames[::factor]
    return kept_frames[: (len(kept_frames) // factor) * factor : factor]


def line_split_frames(edge: np.ndarray, p: LoadParams) -> tuple[np.ndarray, np.ndarray]:
    if p.line_split_method == "left_edge":
        frames, threshold = detect_left_edge(edge, p.line_split_threshold)
        return frames, np.full(len(edge), threshold)
    return detect_robust(edge, p.line_split_robust_k)


class LoadStep(Step):
    name = "load"
    title = "2a. Load videos"
    params_model = LoadParams

    def fingerprint(self, ctx: StepContext, params: LoadParams) -> dict:
        files = find_videos(ctx.input_dir, params.pattern)
        stats = [(str(f.relative_to(ctx.input_dir)), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        return {"files": stats, "fraction": ctx.fraction, "on_bad_video": ctx.on_bad_video}

    def run(self, ctx: StepContext, p: LoadParams) -> dict:
        import dask
        import dask.array as da

        files = find_videos(ctx.input_dir, p.pattern)
        videos, infos = [], []
        for path in files:
            try:
                info = probe_video(path)
                if infos and (info.height, info.width, info.dtype) != (infos[0].height, infos[0].width, infos[0].dtype):
                    first = infos[0]
                    raise InputError(path, f"frames are {info.height}x{info.width} {info.dtype}, "
                                     f"{first.path.name} has {first.height}x{first.width} {first.dtype}")
            except InputError as exc:
                if ctx.on_bad_video != "skip":
                    raise
                ctx.log.warning("skipping %s", exc)
                videos.append({"file": str(path), "status": "skipped", "n_frames": 0, "error": str(exc)})
                continue
            infos.append(info)
            videos.append({"file": str(path), "status": "used", "n_frames": info.n_frames, "error": ""})
        ctx.write_json("videos", videos)
        ctx.write_json("load_settings", p.model_dump(mode="json"))
        if not infos:
            raise InputError(ctx.input_dir, "no readable video", "see the skipped files in the log")

        total = sum(i.n_frames for i in infos)
        n_use = total if ctx.fraction is None else max(1, math.ceil(ctx.fraction * total))
        shape = downsample_space(np.zeros((1, infos[0].height, infos[0].width), infos[0].dtype),
                                 p.downsample_space, p.downsample_method).shape[1:]
        target = ctx.create("varr", (n_use,) + shape, np.dtype(infos[0].dtype), (p.chunk_frames,) + shape)
        width = max(1, math.ceil(p.line_split_width / p.downsample_space))
        starts = np.cumsum([0] + [i.n_frames for i in infos])
        tasks = []
        for first in range(0, n_use, p.chunk_frames):
            segments = _segments(infos, starts, first, min(first + p.chunk_frames, n_use))
            tasks.append(dask.delayed(load_chunk)(segments, p.downsample_space, p.downsample_method, width,
                                                  str(ctx.store_path), target, first))
        edge, total_frame = tree_reduce(tasks, _combine).compute()
        mean = total_frame / max(n_use, 1)

        removed = np.zeros(0, np.int64)
        threshold = np.full(len(edge), np.nan)
        if p.line_split:
            removed, threshold = line_split_frames(edge, p)
        kept = np.setdiff1d(np.arange(len(edge)), removed)
        frame_index = selected_index(kept, p.downsample_time, p.downsample_method)
        ctx.write("raw_mean", mean.astype(np.float32))
        ctx.write("edge_means", edge)
        ctx.write("kept_frames", kept.astype(np.int64))
        ctx.write("frame_index", frame_index.astype(np.int64))
        ctx.write_json("removed_frames", {"line_split": removed.tolist(), "method": p.line_split_method})
        if removed.size:
            ctx.log.info("line splitting: removed %d frames: %s", removed.size, removed.tolist())
            write_text(ctx.step_dir / "line_split_frames.txt", "\n".join(map(str, removed.tolist())) + "\n")
            ctx.report_figure(report.line_split_figure(edge, float(np.median(threshold)), removed),
                              "line_split", "Left-edge statistic; removed frames marked")
        ctx.report_figure(report.frames_figure(mean, np.asarray(ctx.read("varr")[len(edge) // 2]), ("mean frame", "middle frame")),
                          "frames", "Raw video")
        return {"files_used": len(infos), "files_skipped": len(files) - len(infos), "frames_total": total,
                "frames_loaded": int(len(edge)), "line_split_removed": int(removed.size),
                "frames_out": int(len(frame_index)), "frame_shape": list(shape)}


STEP = LoadStep()
