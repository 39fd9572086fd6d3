"""Preview of the early steps on the first frames (guide 2f), in memory: what the
denoising and background removal do to a frame, the motion, the crop it would choose and
the seeds the detection would start from. A gut-check of the parameters before a full run.

:func:`preview_steps` reads the first frames (:mod:`scopeline.io.video`) and runs the same
functions as the pipeline's steps on them: load (spatial downsampling, line-split removal),
preprocess, rigid motion (chunk estimates chained, broken frames and motion outliers left
out), crop (field detection; shifts applied straight into the crop box) and the seed
search of ``detect`` (``method = "seeds"``: peaks of PNR x local correlation). It returns
a :class:`StepPreview` and writes nothing. The figure functions (:data:`FIGURES`) draw it
as :class:`matplotlib.figure.Figure` objects (no pyplot); :func:`write_preview` writes the
statistics and the figures to ``OUT/preview/`` (the command ``scopeline miniscope preview
--out``, :func:`scopeline.miniscope.preview`), the browser UI sends them inline.

Differences from a full run: rigid motion only (``motion.mesh`` is not applied), no
temporal downsampling, and broken frames are left out whatever ``motion.broken_action``
says. On a few hundred frames the activity images are noisier than on the whole
recording: expect fewer seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.video import find_videos, probe_video, read_frames
from .params import MiniscopeParams

MAX_PREVIEW_FRAMES = 2000
MIN_PREVIEW_FRAMES = 10


@dataclass
class StepPreview:
    """Arrays of a preview (processed-frame pixels, i.e. after spatial downsampling;
    ``crop_box`` = y0, y1, x0, x1; frame numbers count from the first frame read)."""

    raw_frame: np.ndarray  # (h, w) the first frame used, raw
    pre_frame: np.ndarray  # (h, w) the same frame preprocessed
    raw_mean: np.ndarray  # (h, w) mean of every frame read (what the crop's field detection sees)
    crop_box: tuple[int, int, int, int]
    crop_center: tuple[float, float]
    crop_radius: float
    crop_shape: str
    pnr: np.ndarray  # (ch, cw) in the crop box
    correlation: np.ndarray
    seeds: np.ndarray  # (n, 2) y, x in the crop box
    kept: np.ndarray  # frames left after line-split removal
    shifts: np.ndarray  # (len(kept), 2) rigid shift (dy, dx) of each kept frame, px
    dropped: np.ndarray  # frames among ``kept`` left out: broken or motion outliers
    stats: dict  # the numbers of the preview (JSON-ready)


def read_first_frames(input_dir: str | Path, pattern: str, n_frames: int) -> np.ndarray:
    """The first ``n_frames`` frames (fewer if the recording is shorter) of the videos in
    ``input_dir`` matching ``pattern``, in natural order, as one (t, h, w) array."""
    files = find_videos(input_dir, pattern)
    if not files:
        raise InputError(input_dir, f"no video file matches load.pattern {pattern!r}", "check the folder and the pattern")
    frames, needed = [], n_frames
    for path in files:
        take = min(probe_video(path).n_frames, needed)
        frames.append(read_frames(path, 0, take))
        needed -= take
        if needed == 0:
            break
    return np.concatenate(frames)


def preview_steps(input_dir: str | Path, params: MiniscopeParams | None = None, n_frames: int = 300) -> StepPreview:
    """Run load, preprocess, motion, crop and the seed search on the first ``n_frames``.

    Parameters
    ----------
    input_dir : str or Path
        Folder of videos (matched by ``load.pattern``).
    params : MiniscopeParams, optional
        The pipeline's parameters (defaults when None).
    n_frames : int
        Frames read from the start of the recording, 10 to 2,000.

    Returns
    -------
    StepPreview
        The arrays and statistics; nothing is written.

    Raises
    ------
    InputError
        ``n_frames`` out of range, no video matches ``load.pattern`` in ``input_dir``, too
        few frames, no frame left after line-split removal and frame QC, or an empty crop.
    """
    from .fieldcrop import correct_and_crop, crop_region, detect_field
    from .filters import preprocess_frames
    from .frame_qc import detect_broken_frames, frame_statistics
    from .linesplit import left_edge_means
    from .registration import combine_chunks, estimate_chunk, motion_outliers
    from .seed_init import find_seeds
    from .steps.detect import smoothing_frames
    from .steps.load import downsample_space, line_split_frames
    from .summary_images import activity_images, seed_score

    p = params or MiniscopeParams()
    lp, mp = p.load, p.motion
    if not MIN_PREVIEW_FRAMES <= n_frames <= MAX_PREVIEW_FRAMES:
        raise InputError(None, f"preview frames {n_frames}: out of range",
                         f"give {MIN_PREVIEW_FRAMES} to {MAX_PREVIEW_FRAMES}")
    raw = read_first_frames(input_dir, lp.pattern, n_frames)
    raw = downsample_space(raw, lp.downsample_space, lp.downsample_method)
    if len(raw) < MIN_PREVIEW_FRAMES:
        raise InputError(input_dir, f"only {len(raw)} frames", f"a preview needs {MIN_PREVIEW_FRAMES} frames or more")
    # load: line splitting on the left-edge statistic; preprocess every frame, then select (as the load pass)
    edge = left_edge_means(raw, max(1, -(-lp.line_split_width // lp.downsample_space)))
    removed = line_split_frames(edge, lp)[0] if lp.line_split else np.zeros(0, np.int64)
    kept = np.setdiff1d(np.arange(len(raw)), removed)
    pre = preprocess_frames(raw, p.preprocess)
    # motion: chunk estimates chained; broken frames and motion outliers among the kept frames left out
    chunks = [estimate_chunk(pre[i : i + lp.chunk_frames], mp.max_shift, mp.upsample, mp.template_frames)
              for i in range(0, len(pre), lp.chunk_frames)]
    shifts, peaks = combine_chunks(chunks, pre.shape[1:], mp.max_shift, mp.upsample)
    broken = np.zeros(0, np.int64)
    if mp.broken_frames:
        found = detect_broken_frames(frame_statistics(raw), window=mp.broken_window, k=mp.broken_k,
                                     noise_ratio=mp.broken_noise_ratio, dark_fraction=mp.broken_dark_fraction,
                                     min_cells=mp.broken_min_cells)
        broken = np.intersect1d(np.flatnonzero(found.broken), kept)
    candidates = np.setdiff1d(kept, broken)
    outliers = candidates[motion_outliers(shifts[candidates], mp.qc_threshold, mp.qc_min_motion)[0]] \
        if mp.qc and len(candidates) else np.zeros(0, np.int64)
    used = np.setdiff1d(candidates, outliers)
    if len(used) == 0:
        raise InputError(input_dir, f"no frame left after line-split removal and frame QC ({len(raw)} read)",
                         "check the video, or relax load.line_split / motion.broken_frames / motion.qc")
    # crop: field of the raw mean frame; the used frames shifted straight into the box
    raw_mean = raw.mean(axis=0).astype(np.float32)
    try:
        region, mask = crop_region(raw_mean.shape, p.crop, raw_mean)
    except ValueError as exc:
        raise InputError(None, str(exc), "check crop.rectangle / crop.radius") from None
    Y = correct_and_crop(pre[used], shifts[used], region, mask, mp.fill_value)
    # detect: the seed search on PNR x local correlation
    images = activity_images(Y, smoothing_frames(p.detect.activity_smoothing, p.config.fps),
                             p.detect.activity_threshold)
    score, ok = seed_score(images, p.detect.min_corr, p.detect.min_pnr)
    seeds = find_seeds(score, ok, p.detect.seed_min_distance)

    field = detect_field(raw_mean, p.crop.field_threshold)
    saturated = float((raw == np.iinfo(raw.dtype).max).mean()) if raw.dtype.kind == "u" else 0.0
    stats = {
        "frames": int(len(raw)), "frame_shape": list(raw.shape[1:]), "dtype": str(raw.dtype),
        "saturated_fraction": round(saturated, 6), "raw_mean": round(float(raw.mean()), 3),
        "preprocessed_mean": round(float(pre[used].mean()), 3),
        "line_split_frames": removed.tolist(), "broken_frames": broken.tolist(),
        "motion_dropped_frames": outliers.tolist(), "frames_used": int(len(used)),
        "max_abs_shift": round(float(np.abs(shifts[used]).max()), 3),
        "shift_std": [round(float(s), 3) for s in np.std(shifts[used], axis=0)],
        "median_peak": round(float(np.median(peaks[used])), 4),
        "field_center": [round(float(c), 2) for c in field.center], "field_radius": round(float(field.radius), 2),
        "crop_box": [region.y0, region.y1, region.x0, region.x1], "crop_shape": region.kind,
        "seeds": int(len(seeds)), "pixels_passing_min_corr_and_min_pnr": int(ok.sum()),
    }
    first = used[0]
    return StepPreview(raw[first].astype(np.float32), np.asarray(pre[first], np.float32), raw_mean,
                       (region.y0, region.y1, region.x0, region.x1), tuple(map(float, region.center)),
                       float(region.radius), region.kind, images.pnr, images.correlation, seeds,
                       kept, shifts[kept], np.union1d(broken, outliers), stats)


# ----------------------------------------------------------------------------- figures
def denoise_figure(preview: StepPreview):
    """The first frame used, raw beside denoised and background-removed."""
    from .report import frames_figure

    return frames_figure(preview.raw_frame, preview.pre_frame, ("raw frame", "denoised, background removed"))


def crop_figure(preview: StepPreview):
    """The raw mean frame with the crop box and (circle crops) the circle."""
    from matplotlib.patches import Circle, Rectangle

    from ..present.figures import new_figure

    fig, ax = new_figure(figsize=(5, 5))
    ax.imshow(preview.raw_mean, cmap="gray")
    y0, y1, x0, x1 = preview.crop_box
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="orange", lw=1))
    if preview.crop_shape == "circle":
        ax.add_patch(Circle((preview.crop_center[1], preview.crop_center[0]), preview.crop_radius, fill=False,
                            ec="cyan", lw=1.2))
    ax.set_title(f"crop ({preview.crop_shape}): {y1 - y0} x {x1 - x0} px")
    ax.axis("off")
    return fig


def seeds_figure(preview: StepPreview):
    """The seed score's images (PNR, local correlation) with the seeds found."""
    from ..present.figures import new_figure

    fig, axes = new_figure(1, 2, figsize=(10, 5))
    for ax, image, title in zip(axes, (preview.pnr, preview.correlation), ("peak-to-noise ratio", "local correlation")):
        finite = image[np.isfinite(image)]
        top = float(np.percentile(finite, 99.5)) if finite.size else 1.0
        ax.imshow(image, cmap="magma", vmin=0, vmax=top if top > 0 else None)  # a hot pixel does not set the scale
        if len(preview.seeds):
            ax.plot(preview.seeds[:, 1], preview.seeds[:, 0], "c+", ms=6, mew=1)
        ax.set_title(f"{title}: {len(preview.seeds)} seeds")
        ax.axis("off")
    return fig


def motion_figure(preview: StepPreview):
    """The rigid shift of each kept frame; frames left out (broken, motion outliers) marked."""
    from .report import motion_figure as shifts_figure

    return shifts_figure(preview.shifts, preview.kept, preview.dropped)


FIGURES = {"denoise": denoise_figure, "crop": crop_figure, "seeds": seeds_figure, "motion": motion_figure}


def figure_png(fig, dpi: int = 80) -> bytes:
    """A figure (:func:`scopeline.present.figures.new_figure`, no pyplot) as PNG bytes."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def write_preview(preview: StepPreview, out_dir: str | Path) -> Path:
    """Write ``out_dir/preview/``: ``preview.json`` (the statistics and the seeds' y, x in
    the crop box) and one PNG per figure of :data:`FIGURES`; returns the folder."""
    from ..io.atomic import write_json
    from ..present.figures import save_figure

    folder = Path(out_dir) / "preview"
    write_json(folder / "preview.json", {**preview.stats, "seed_positions": preview.seeds.tolist()})
    for name, make in FIGURES.items():
        save_figure(make(preview), folder / f"{name}.png", dpi=100, bbox_inches="tight")
    return folder


__all__ = ["StepPreview", "preview_steps", "read_first_frames", "write_preview", "FIGURES", "figure_png",
           "MAX_PREVIEW_FRAMES", "MIN_PREVIEW_FRAMES"]
