"""What the item page shows of one movie or micrograph of a run (adapters, no science).

- dose: the movie's sampled frames and their doses (journal field ``frame_doses``; a record
  of an older version has only the first / middle / last frame doses: those, at the frames
  :func:`~scopeline.cryoem.dose.sampled_frame_indices` gives), with the reference and band;
- maxshift: the trajectory (journal field ``shifts_px``; else read from the movie's motion
  STAR) in Å and the step between consecutive frames, with the thresholds;
- clean: a downsampled PNG of the micrograph with its kept and removed picks over the saved
  mask (``masks/<micrograph>.mrc`` of a run made with ``--save-masks``).

Files are read through the caller's ``read_path`` (the UI's :func:`~scopeline.ui.security.safe_path`).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Callable

import numpy as np

IMAGE_SIDE = 800  # px: the longest side of the micrograph PNG


def _num(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def dose_item(row: dict, max_diff: float) -> dict:
    """Sampled frames (0-based indexes) and their doses (e/Å²), reference, ±``max_diff`` % band."""
    from ..cryoem.dose import sampled_frame_indices

    frames, doses = row.get("sampled_frames"), row.get("frame_doses")
    note = ""
    if not doses:
        n = row.get("n_frames")
        sampled = row.get("first_frame_dose"), row.get("middle_frame_dose"), row.get("last_frame_dose")
        if isinstance(n, int) and n > 0 and all(_num(d) is not None for d in sampled):
            frames = sampled_frame_indices(n)
            doses = [sampled[0], sampled[1], sampled[2]][:len(frames)] if len(frames) == 3 else \
                [sampled[0], sampled[2]][:len(frames)]
            note = "measured by an earlier version: only the first, middle and last frame doses were kept"
        else:
            frames, doses = [], []
    ref = _num(row.get("reference_dose"))
    band = [ref * (1 - max_diff / 100), ref * (1 + max_diff / 100)] if ref is not None else None
    return {"kind": "dose", "frames": list(frames or []), "doses": [_num(d) for d in doses], "reference": ref,
            "band": band, "mean_dose": _num(row.get("mean_dose")), "n_frames": row.get("n_frames"), "note": note}


def maxshift_item(row: dict, params, read_path: Callable[[str], Path]) -> dict:
    """Trajectory in Å (frame 1 at 0, 0) and the frame-to-frame steps, with the thresholds."""
    from ..cryoem.maxshift import frame_steps
    from ..io.motion import read_relion_motion_star

    shifts, note = row.get("shifts_px"), ""
    pixel = _num(row.get("pixel_size"))
    if not shifts and row.get("metadata"):  # not kept in the journal: read the motion STAR now
        try:
            traj = read_relion_motion_star(read_path(str(row["metadata"])))
            shifts = traj.shifts_px.tolist()
            pixel = pixel or traj.pixel_size
        except Exception as exc:  # noqa: BLE001 - PathRefused, missing or bad file: say so
            note = f"trajectory not readable: {exc}"
    out = {"kind": "maxshift", "x": [], "y": [], "frames": [], "steps": [], "note": note,
           "max_frame_shift": _num(params.max_frame_shift), "max_movie_shift": _num(params.max_movie_shift),
           "total_path_A": _num(row.get("total_path_A")), "max_frame_shift_A": _num(row.get("max_frame_shift_A"))}
    if not shifts:
        out["note"] = note or "no per-frame shifts (only RELION's accumulated motion is known for this movie)"
        return out
    if pixel is None:
        out["note"] = "no pixel size: shifts shown in pixels"
    scale = pixel or 1.0
    xy = np.asarray(shifts, float) * scale
    xy = xy - xy[0]
    steps = frame_steps(np.asarray(shifts, float)) * scale
    out.update(x=xy[:, 0].round(3).tolist(), y=xy[:, 1].round(3).tolist(), frames=list(range(1, len(xy) + 1)),
               steps=np.round(steps, 3).tolist(), unit="Å" if pixel else "px")
    return out


def mask_path(run_dir: Path, row: dict) -> Path | None:
    """The run's saved mask of this micrograph, or None."""
    image = row.get("image_file")
    if not image:
        return None
    path = Path(run_dir) / "masks" / f"{Path(str(image)).stem}.mrc"
    return path if path.is_file() else None


def clean_image(row: dict, run_dir: Path, box_size: float, read_path: Callable[[str], Path]) -> tuple[bytes, dict]:
    """PNG of the micrograph (longest side :data:`IMAGE_SIDE` px) with kept picks (green
    circles of ``box_size``, px of the picked micrograph), removed ones (yellow crosses) and the bad-region mask (red, where saved);
    and what it shows (``mask``: bool, ``kept``, ``removed``, ``outside``).

    Raises whatever reading the micrograph raises (PathRefused outside the allowed folders).
    """
    import cv2
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..cryoem.cleaner.discover import read_micrograph

    image, _ = read_micrograph(read_path(str(row["image_file"])))
    h, w = image.shape
    factor = max(1.0, max(h, w) / IMAGE_SIDE)
    small = cv2.resize(image.astype(np.float32), (max(1, round(w / factor)), max(1, round(h / factor))),
                       interpolation=cv2.INTER_AREA)
    lo, hi = np.percentile(small, [1, 99])
    fig = Figure(figsize=(small.shape[1] / 100, small.shape[0] / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(small, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
    mask = mask_path(run_dir, row)
    if mask is not None:
        import mrcfile

        with mrcfile.open(read_path(str(mask)), permissive=True) as mrc:
            prob = np.asarray(mrc.data, np.float32).reshape(mrc.data.shape[-2:])
        prob = cv2.resize(prob, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
        overlay = np.zeros((*prob.shape, 4), np.float32)
        overlay[..., 0] = 1.0
        overlay[..., 3] = np.clip(prob, 0, 1) * 0.45
        ax.imshow(overlay, interpolation="nearest")
    scale = _num(row.get("coordinate_scale")) or 1.0
    x = np.asarray(row.get("x") or [], float) * scale / factor
    y = np.asarray(row.get("y") or [], float) * scale / factor
    kept = np.asarray(row.get("kept") if row.get("kept") is not None else np.zeros(len(x), bool), bool)
    scores = np.asarray(row.get("scores") or [np.nan] * len(x), float)
    removed = ~kept & np.isfinite(scores)
    outside = ~np.isfinite(scores)
    radius = float(box_size or 0) * scale / factor / 2
    if kept.any():
        ax.scatter(x[kept], y[kept], s=max(30.0, (2 * radius * 0.72) ** 2), facecolors="none",
                   edgecolors="#2a9d4b", linewidths=1.2, label="kept")
    if removed.any():
        ax.scatter(x[removed], y[removed], s=60, marker="x", c="#ffd000", linewidths=2.0, label="removed")
    ax.set_xlim(-0.5, small.shape[1] - 0.5)
    ax.set_ylim(small.shape[0] - 0.5, -0.5)
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue(), {"mask": mask is not None, "kept": int(kept.sum()), "removed": int(removed.sum()),
                            "outside": int(outside.sum()), "downsampled": round(factor, 2)}
