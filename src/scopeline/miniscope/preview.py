"""Preview (guide 2f): steps 2a-2d on the first frames, in memory, statistics only.

Nothing is written to the store; with ``out_dir`` a JSON summary and two figures go to
``out_dir/preview/``. Use it as a gut-check of the parameters before a full run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.atomic import write_json
from ..present.figures import save_figure
from . import report
from .fieldcrop import detect_field
from .filters import preprocess_frames
from ..io.video import find_videos, probe_video, read_frames
from .linesplit import left_edge_means
from .params import MiniscopeParams
from .registration import combine_chunks, estimate_chunk, motion_outliers
from .steps.load import downsample_space, line_split_frames


def read_first_frames(input_dir: str | Path, pattern: str, n_frames: int) -> np.ndarray:
    frames, needed = [], n_frames
    for path in find_videos(input_dir, pattern):
        take = min(probe_video(path).n_frames, needed)
        frames.append(read_frames(path, 0, take))
        needed -= take
        if needed == 0:
            break
    return np.concatenate(frames)


def preview(input_dir: str | Path, params: MiniscopeParams | None = None, n_frames: int = 500,
            out_dir: str | Path | None = None) -> dict:
    """Statistics of load, line splitting, preprocessing and motion on the first ``n_frames``."""
    p = params or MiniscopeParams()
    lp = p.load
    raw = read_first_frames(input_dir, lp.pattern, n_frames)
    raw = downsample_space(raw, lp.downsample_space, lp.downsample_method)
    edge = left_edge_means(raw, max(1, -(-lp.line_split_width // lp.downsample_space)))
    removed = line_split_frames(edge, lp)[0] if lp.line_split else np.zeros(0, int)
    kept = np.setdiff1d(np.arange(len(raw)), removed)
    pre = preprocess_frames(raw, p.preprocess)  # as the load pass: every frame, then selection
    chunks = [estimate_chunk(pre[i : i + lp.chunk_frames], p.motion.max_shift, p.motion.upsample,
                             p.motion.template_frames) for i in range(0, len(pre), lp.chunk_frames)]
    shifts, peaks = combine_chunks(chunks, pre.shape[1:], p.motion.max_shift, p.motion.upsample)
    index, pre = kept, pre[kept]
    shifts, peaks = shifts[kept], peaks[kept]
    dropped = motion_outliers(shifts, p.motion.qc_threshold, p.motion.qc_min_motion)[0] if p.motion.qc else []
    field = detect_field(raw.mean(axis=0), p.crop.field_threshold)
    stats = {
        "frames": int(len(raw)), "frame_shape": list(raw.shape[1:]), "dtype": str(raw.dtype),
        "saturated_fraction": float((raw == np.iinfo(raw.dtype).max).mean()) if raw.dtype.kind == "u" else 0.0,
        "raw_mean": float(raw.mean()), "preprocessed_mean": float(pre.mean()),
        "line_split_frames": removed.tolist(), "motion_dropped_frames": index[dropped].tolist(),
        "max_abs_shift": float(np.abs(shifts).max()), "shift_std": np.std(shifts, axis=0).tolist(),
        "median_peak": float(np.median(peaks)), "field_center": list(field.center), "field_radius": field.radius,
    }
    if out_dir is not None:
        folder = Path(out_dir) / "preview"
        write_json(folder / "preview.json", stats)
        for name, fig in (("motion", report.motion_figure(shifts, index, index[dropped])),
                          ("frames", report.frames_figure(raw[kept].mean(axis=0), pre.mean(axis=0),
                                                          ("raw mean", "preprocessed mean")))):
            save_figure(fig, folder / f"{name}.png", dpi=100, bbox_inches="tight")
    return stats
