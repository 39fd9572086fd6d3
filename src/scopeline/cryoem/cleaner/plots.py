"""Figures of the cleaner: score histogram and micrograph / mask / picks thumbnails (each
returns a :class:`matplotlib.figure.Figure`; write it with
:func:`scopeline.present.figures.save_figure`)."""

from __future__ import annotations

import numpy as np

from scopeline.present.figures import new_figure


def score_histogram(scores: np.ndarray, threshold: float):
    """Histogram of good-region scores with the threshold marked."""
    scores = np.asarray(scores, float)
    scores = scores[np.isfinite(scores)]
    fig, ax = new_figure(figsize=(6, 3.5))
    ax.hist(scores, bins=np.linspace(0, 1, 51), color="#4878a8")
    if threshold >= 0:
        ax.axvline(threshold, color="#c03030", label=f"threshold {threshold:g}")
        ax.legend()
    ax.set_xlabel("good-region score (1 = clean ice)")
    ax.set_ylabel("picks")
    ax.set_yscale("log" if len(scores) and np.ptp(np.histogram(scores, 50)[0]) > 100 else "linear")
    ax.set_title(f"{len(scores)} scored picks")
    fig.tight_layout()
    return fig


def thumbnail(
    image: np.ndarray,
    prob: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    kept: np.ndarray,
    box: float,
    title: str = "",
):
    """Micrograph (model scale) with the mask in red and picks: kept green, removed red.

    ``image`` and ``prob`` have the same shape; ``x``, ``y`` and ``box`` are in its pixels.
    """
    lo, hi = np.percentile(image, [1, 99])
    fig, axes = new_figure(1, 2, figsize=(10, 5.2))
    for ax in axes:
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
        ax.set_axis_off()
    overlay = np.zeros(prob.shape + (4,), np.float32)
    overlay[..., 0] = 1.0
    overlay[..., 3] = 0.45 * np.clip(prob, 0, 1)
    axes[1].imshow(overlay)
    kept = np.asarray(kept, bool)
    size = max(4.0, box * 0.6) ** 2 * 0.2
    axes[1].scatter(x[kept], y[kept], s=size, facecolors="none", edgecolors="#20c020", linewidths=0.8)
    axes[1].scatter(x[~kept], y[~kept], s=size * 0.6, c="#ff3030", marker="x", linewidths=0.8)
    for ax in axes:  # picks off the image must not rescale the view
        ax.set_xlim(-0.5, image.shape[1] - 0.5)
        ax.set_ylim(image.shape[0] - 0.5, -0.5)
    axes[0].set_title(title)
    axes[1].set_title(f"mask; kept {int(kept.sum())} (green), removed {int((~kept).sum())} (red)")
    fig.tight_layout()
    return fig
