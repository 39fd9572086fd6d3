"""Miniscope report: the figures of steps 1-4, and the page writers of the one report module
(:mod:`scopeline.present.report`: ``OUT/report/<step>.html`` per step and the index
``OUT/report.html``). Figure functions return a :class:`matplotlib.figure.Figure` (see
:mod:`scopeline.present.figures`); they change no global matplotlib state."""

from __future__ import annotations

import numpy as np

from ..present.figures import new_figure
from ..present.report import write_index, write_step_page

__all__ = ["write_step_page", "write_index", "frames_figure", "motion_figure", "line_split_figure",
           "variance_figure", "components_figure"]


# -- figures ---------------------------------------------------------------------------

def _figure(*shape, size=(10, 4)):
    return new_figure(*shape, figsize=size, squeeze=False)


def frames_figure(before: np.ndarray, after: np.ndarray, titles=("before", "after")):
    """Side by side frames (e.g. raw vs preprocessed, or mean frames)."""
    fig, axes = _figure(1, 2, size=(10, 5))
    for ax, image, title in zip(axes[0], (before, after), titles):
        ax.imshow(image, cmap="gray")
        ax.set_title(title)
        ax.axis("off")
    return fig


def motion_figure(shifts: np.ndarray, frame_index: np.ndarray, dropped: np.ndarray):
    """Shift (dy, dx) per frame with the frames dropped by QC marked."""
    fig, axes = _figure(1, 1, size=(10, 4))
    ax = axes[0, 0]
    ax.plot(frame_index, shifts[:, 0], lw=0.8, label="dy")
    ax.plot(frame_index, shifts[:, 1], lw=0.8, label="dx")
    if len(dropped):
        mask = np.isin(frame_index, dropped)
        for column in (0, 1):
            ax.plot(frame_index[mask], shifts[mask, column], "rx", ms=5)
        ax.plot([], [], "rx", label=f"dropped ({len(dropped)})")
    ax.set_xlabel("frame")
    ax.set_ylabel("shift (px)")
    ax.legend(loc="best")
    return fig


def line_split_figure(edge_stat: np.ndarray, threshold: float, removed: np.ndarray):
    fig, axes = _figure(1, 1, size=(10, 3))
    ax = axes[0, 0]
    ax.plot(edge_stat, lw=0.6)
    ax.axhline(threshold, color="r", ls="--", label="threshold")
    ax.plot(removed, edge_stat[removed], "rx", label=f"removed ({len(removed)})")
    ax.set_xlabel("frame")
    ax.set_ylabel("left-edge statistic")
    ax.legend(loc="best")
    return fig


def variance_figure(cumulative: np.ndarray):
    fig, axes = _figure(1, 1, size=(6, 4))
    ax = axes[0, 0]
    ax.plot(np.arange(len(cumulative)), 100 * cumulative, "o-")
    ax.set_xlabel("components")
    ax.set_ylabel("cumulative variance explained (%)")
    ax.grid(True)
    return fig


def components_figure(mean_frame: np.ndarray, footprints: np.ndarray, title: str):
    """Contours of each footprint over the mean frame."""
    fig, axes = _figure(1, 1, size=(7, 7))
    ax = axes[0, 0]
    ax.imshow(mean_frame, cmap="gray")
    for a in footprints:
        peak = a.max()
        if peak > 0:  # contour drawn over the footprint's box (1 px margin) only: same line, far faster
            rows, cols = np.flatnonzero(a.max(axis=1) > 0), np.flatnonzero(a.max(axis=0) > 0)
            y0, y1 = max(rows[0] - 1, 0), min(rows[-1] + 2, a.shape[0])
            x0, x1 = max(cols[0] - 1, 0), min(cols[-1] + 2, a.shape[1])
            ax.contour(np.arange(x0, x1), np.arange(y0, y1), a[y0:y1, x0:x1] > 0.3 * peak, levels=[0.5],
                       colors="r", linewidths=0.6)
    ax.set_title(f"{title} ({len(footprints)})")
    ax.axis("off")
    return fig
