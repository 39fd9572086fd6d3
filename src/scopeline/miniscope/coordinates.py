"""Mapping results of the processed (cropped, spatially downsampled) frame back to the
input video's frame (pure functions)."""

from __future__ import annotations

import numpy as np


def footprints_in_input(A: np.ndarray, crop: dict | None, geometry: dict | None) -> np.ndarray:
    """Footprints (units, h, w) of the cropped, spatially downsampled frame mapped to the
    input video's frame: placed at the crop box, and with spatial downsampling by ``f``
    each processed pixel's value fills the f x f block of input pixels it was made from
    (``mean``) or whose top-left pixel it sampled (``subset``); input rows / columns
    beyond the last whole block are 0. Values are not rescaled, so a_i c_i keeps its
    per-pixel intensity. Without a crop or load record, ``A`` is returned unchanged."""
    if crop is None or geometry is None:
        return A
    n = len(A)
    h, w = geometry["shape"]
    full = np.zeros((n, h, w), np.float32)
    full[:, crop["y0"] : crop["y1"], crop["x0"] : crop["x1"]] = A
    factor = int(geometry["downsample_space"])
    if factor == 1:
        return full
    H, W = geometry["input_shape"]
    out = np.zeros((n, H, W), np.float32)
    out[:, : h * factor, : w * factor] = full.repeat(factor, axis=1).repeat(factor, axis=2)
    return out
