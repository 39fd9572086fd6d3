"""Scores of picked coordinates from a bad-region probability mask."""

from __future__ import annotations

import numpy as np


def box_means(prob: np.ndarray, x: np.ndarray, y: np.ndarray, box: float) -> np.ndarray:
    """Mean of ``prob`` over square boxes of side ``box`` centred at continuous (x, y).

    Coordinates are continuous (pixel ``i`` covers ``[i, i+1)``); boxes are clipped to the
    image and may have fractional edges: the integral is exact because the integral image
    of a pixelwise-constant function is bilinear within each pixel. NaN where a box lies
    entirely outside the image.
    """
    prob = np.asarray(prob, dtype=np.float64)
    height, width = prob.shape
    integral = np.zeros((height + 1, width + 1))
    integral[1:, 1:] = prob.cumsum(0).cumsum(1)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    x0, x1 = np.clip(x - box / 2, 0, width), np.clip(x + box / 2, 0, width)
    y0, y1 = np.clip(y - box / 2, 0, height), np.clip(y + box / 2, 0, height)
    area = (x1 - x0) * (y1 - y0)
    total = _bilinear(integral, y1, x1) - _bilinear(integral, y0, x1) - _bilinear(integral, y1, x0) + _bilinear(integral, y0, x0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, total / np.where(area > 0, area, 1), np.nan)


def _bilinear(table: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    r0 = np.clip(np.floor(r).astype(int), 0, table.shape[0] - 2)
    c0 = np.clip(np.floor(c).astype(int), 0, table.shape[1] - 2)
    fr, fc = r - r0, c - c0
    return (
        table[r0, c0] * (1 - fr) * (1 - fc)
        + table[r0 + 1, c0] * fr * (1 - fc)
        + table[r0, c0 + 1] * (1 - fr) * fc
        + table[r0 + 1, c0 + 1] * fr * fc
    )


def good_region_scores(
    prob: np.ndarray, x: np.ndarray, y: np.ndarray, box_size: float, scale_x: float, scale_y: float
) -> np.ndarray:
    """``1 - mean bad probability`` in each particle's box.

    ``prob`` is the mask at model scale; ``x``, ``y`` are pick centres in micrograph
    pixels (pixel indices) and ``box_size`` the box in micrograph pixels; a micrograph
    pixel is ``1/scale`` model pixels along each axis.
    """
    cx = (np.asarray(x, float) + 0.5) / scale_x
    cy = (np.asarray(y, float) + 0.5) / scale_y
    # a non-square scale changes the box aspect a little; use the mean scale for its side
    return 1.0 - box_means(prob, cx, cy, box_size / ((scale_x + scale_y) / 2))


def keep_decision(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Keep picks whose score exceeds ``threshold``; ``threshold < 0`` keeps every scored pick."""
    scores = np.asarray(scores, float)
    if threshold < 0:
        return np.isfinite(scores)
    with np.errstate(invalid="ignore"):
        return np.isfinite(scores) & (scores > threshold)


def inside_image(x: np.ndarray, y: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """True for pick centres that lie on the micrograph (pixel indices)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    return (x >= 0) & (y >= 0) & (x < shape[1]) & (y < shape[0])
