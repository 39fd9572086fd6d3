"""Preview of the early steps on the first few hundred frames, in memory: what the
denoising and background removal do to a frame, the crop it would choose, and the seeds
the detection would start from. Nothing is written; for the parameter forms of
``scopeline serve`` (guide 2f: a gut-check before the full run).

The same functions as the pipeline's steps, on a short stretch: load (spatial
downsampling), preprocess, rigid motion (chunk estimates chained), crop (field detection,
shifts applied straight into the crop box), and the seed search of ``detect``
(``method = "seeds"``: peaks of PNR x local correlation). With only a few hundred frames
the activity images are noisier than on the whole recording, so expect fewer seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .params import MiniscopeParams

MAX_PREVIEW_FRAMES = 2000


@dataclass
class StepPreview:
    """Arrays of a preview (processed-frame pixels; ``crop_box`` = y0, y1, x0, x1)."""

    raw_frame: np.ndarray  # (h, w) the first kept raw frame
    pre_frame: np.ndarray  # (h, w) the same frame preprocessed
    raw_mean: np.ndarray
    crop_box: tuple[int, int, int, int]
    crop_center: tuple[float, float]
    crop_radius: float
    crop_shape: str
    pnr: np.ndarray  # (ch, cw) in the crop box
    correlation: np.ndarray
    seeds: np.ndarray  # (n, 2) y, x in the crop box
    shifts: np.ndarray  # (frames, 2)
    stats: dict


def preview_steps(input_dir: str | Path, params: MiniscopeParams | None = None, n_frames: int = 300) -> StepPreview:
    """Run load, preprocess, motion, crop and the seed search on the first ``n_frames``.

    Raises
    ------
    InputError
        No video matches ``load.pattern`` in ``input_dir``, or too few frames.
    """
    from ..io.video import find_videos
    from .fieldcrop import correct_and_crop, crop_region
    from .filters import preprocess_frames
    from .preview import read_first_frames
    from .registration import combine_chunks, estimate_chunk
    from .seed_init import find_seeds
    from .steps.detect import smoothing_frames
    from .steps.load import downsample_space
    from .summary_images import activity_images, seed_score

    p = params or MiniscopeParams()
    if not 10 <= n_frames <= MAX_PREVIEW_FRAMES:
        raise InputError(None, f"preview frames {n_frames}: not allowed", f"give 10 to {MAX_PREVIEW_FRAMES}")
    if not find_videos(input_dir, p.load.pattern):
        raise InputError(input_dir, f"no video file matches load.pattern {p.load.pattern!r}",
                         "check the folder and the pattern")
    raw = read_first_frames(input_dir, p.load.pattern, n_frames)
    raw = downsample_space(raw, p.load.downsample_space, p.load.downsample_method)
    if len(raw) < 10:
        raise InputError(input_dir, f"only {len(raw)} frames", "a preview needs 10 frames or more")
    pre = preprocess_frames(raw, p.preprocess)
    chunk = p.load.chunk_frames
    chunks = [estimate_chunk(pre[i : i + chunk], p.motion.max_shift, p.motion.upsample, p.motion.template_frames)
              for i in range(0, len(pre), chunk)]
    shifts, _ = combine_chunks(chunks, pre.shape[1:], p.motion.max_shift, p.motion.upsample)
    raw_mean = raw.mean(axis=0).astype(np.float32)
    region, mask = crop_region(raw_mean.shape, p.crop, raw_mean)
    Y = correct_and_crop(pre, shifts, region, mask, p.motion.fill_value)
    images = activity_images(Y, smoothing_frames(p.detect.activity_smoothing, p.config.fps),
                             p.detect.activity_threshold)
    score, ok = seed_score(images, p.detect.min_corr, p.detect.min_pnr)
    seeds = find_seeds(score, ok, p.detect.seed_min_distance)
    stats = {"frames": int(len(raw)), "frame_shape": list(raw.shape[1:]),
             "crop_box": [region.y0, region.y1, region.x0, region.x1], "crop_shape": region.kind,
             "max_abs_shift_px": round(float(np.abs(shifts).max()), 2), "seeds": int(len(seeds)),
             "pixels_passing_min_corr_and_min_pnr": int(ok.sum())}
    return StepPreview(raw[0].astype(np.float32), np.asarray(pre[0], np.float32), raw_mean,
                       (region.y0, region.y1, region.x0, region.x1), tuple(map(float, region.center)),
                       float(region.radius), region.kind, images.pnr, images.correlation, seeds, shifts, stats)


# ----------------------------------------------------------------------------- figures
def denoise_figure(preview: StepPreview):
    """A raw frame beside the same frame denoised and background-removed."""
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
    from .report import motion_figure as shifts_figure

    index = np.arange(len(preview.shifts))
    return shifts_figure(preview.shifts, index, np.zeros(0, int))


FIGURES = {"denoise": denoise_figure, "crop": crop_figure, "seeds": seeds_figure, "motion": motion_figure}


def figure_png(fig, dpi: int = 80) -> bytes:
    """A figure (:func:`scopeline.present.figures.new_figure`, no pyplot) as PNG bytes."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


__all__ = ["StepPreview", "preview_steps", "FIGURES", "figure_png", "MAX_PREVIEW_FRAMES"]
