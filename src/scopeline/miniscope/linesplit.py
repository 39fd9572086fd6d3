"""Line-splitting frame detection (signal appearing in the leftmost columns)."""

from __future__ import annotations

import numpy as np


def left_edge_means(frames: np.ndarray, width: int = 20) -> np.ndarray:
    """Mean of the leftmost ``width`` columns of each frame (t, h, w) -> (t,)."""
    return frames[:, :, :width].mean(axis=(1, 2), dtype=np.float64)


def detect_left_edge(edge_means: np.ndarray, k: float = 2.0) -> tuple[np.ndarray, float]:
    """The guide's rule: frames whose left-edge mean exceeds mean + k std.

    Note it always flags the upper tail of normal frames too (about 2 % at k=2)."""
    threshold = float(edge_means.mean() + k * edge_means.std())
    return np.flatnonzero(edge_means > threshold), threshold


def detect_robust(edge_means: np.ndarray, k: float = 8.0, window: int = 101,
                  floor: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Frames whose left-edge mean exceeds a running median by more than k scaled MADs.

    The running median follows slow brightness changes; the median absolute deviation of
    the residual (times 1.4826, at least ``floor`` grey levels) is the noise scale, so
    the rule is unaffected by the artefact frames themselves and flags nothing in a
    clean recording. Returns the indices and the per-frame threshold.
    """
    from scipy.ndimage import median_filter

    x = np.asarray(edge_means, dtype=np.float64)
    if x.size == 0:
        return np.zeros(0, int), x
    window = max(1, min(window, x.size) | 1)
    trend = median_filter(x, size=window, mode="nearest")
    residual = x - trend
    scale = max(1.4826 * float(np.median(np.abs(residual - np.median(residual)))), floor)
    threshold = trend + k * scale
    return np.flatnonzero(x > threshold), threshold
