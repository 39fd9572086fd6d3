"""The imaging field of a miniscope frame and the crop around it (pure functions)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numba
import numpy as np


@dataclass
class Field:
    center: tuple[float, float]
    radius: float


@dataclass
class CropRegion:
    kind: str
    y0: int
    y1: int
    x0: int
    x1: int
    center: tuple[float, float]
    radius: float

    def as_dict(self) -> dict:
        out = asdict(self)
        out["shape"] = [self.y1 - self.y0, self.x1 - self.x0]
        return out


def detect_field(mean_frame: np.ndarray, threshold: float = 0.1, sigma: float = 2.0) -> Field:
    """Imaging field of a raw mean frame (bright disk, dark surround): the largest region
    of the smoothed frame above ``threshold`` of its 1st-99.5th percentile range, as the
    circle of equal area around the region's centroid. The low default keeps the dim,
    vignetted rim inside the field."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(np.asarray(mean_frame, np.float64), sigma)
    h, w = smooth.shape
    lo, hi = np.percentile(smooth, [1, 99.5])
    if hi <= lo:
        return Field(((h - 1) / 2, (w - 1) / 2), min(h, w) / 2)
    labels, n = ndimage.label(smooth > lo + threshold * (hi - lo))
    sizes = ndimage.sum_labels(np.ones_like(smooth), labels, index=np.arange(1, n + 1))
    region = labels == 1 + int(np.argmax(sizes))
    cy, cx = ndimage.center_of_mass(region)
    return Field((float(cy), float(cx)), float(np.sqrt(region.sum() / np.pi)))


def crop_region(shape: tuple[int, int], p, mean_frame: np.ndarray | None) -> tuple[CropRegion, np.ndarray]:
    """Crop box and mask (True inside the field) for a ``CropParams``."""
    h, w = shape
    if p.shape == "none":
        return CropRegion("none", 0, h, 0, w, ((h - 1) / 2, (w - 1) / 2), float(max(h, w))), np.ones(shape, bool)
    field = detect_field(mean_frame, p.field_threshold) if p.auto_center and mean_frame is not None else \
        Field(((h - 1) / 2, (w - 1) / 2), min(h, w) / 2)
    cy, cx = field.center[0] + p.center_offset[0], field.center[1] + p.center_offset[1]
    radius = p.radius if p.radius is not None else field.radius * p.radius_factor
    if p.shape == "rectangle" and p.rectangle is not None:
        y0, y1, x0, x1 = p.rectangle
    else:
        y0, y1 = int(np.floor(cy - radius)), int(np.ceil(cy + radius)) + 1
        x0, x1 = int(np.floor(cx - radius)), int(np.ceil(cx + radius)) + 1
    y0, y1, x0, x1 = max(0, y0), min(h, y1), max(0, x0), min(w, x1)
    if y1 <= y0 or x1 <= x0:
        raise ValueError(f"empty crop ({y0}:{y1}, {x0}:{x1}) for frames of {h}x{w}")
    region = CropRegion(p.shape, y0, y1, x0, x1, (cy, cx), float(radius))
    if p.shape == "rectangle":
        return region, np.ones((y1 - y0, x1 - x0), bool)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    return region, (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def correct_and_crop(frames: np.ndarray, shifts: np.ndarray, region: CropRegion, mask: np.ndarray,
                     fill: float = 0.0, mesh: tuple[int, int] | None = None,
                     template: np.ndarray | None = None) -> np.ndarray:
    """Apply rigid shifts (then, with ``mesh``, non-rigid correction onto ``template``),
    replace NaN by ``fill``, crop and zero outside the mask (float32). Frame by frame,
    so memory is the output block plus one frame."""
    from .registration import apply_mesh, apply_shifts

    if mesh is None:  # rigid: shift straight into the crop window
        return shift_into_box(frames, shifts, region.y0, region.x0, mask, fill)
    out = np.empty((len(frames),) + mask.shape, np.float32)
    for i in range(len(frames)):
        corrected = apply_shifts(frames[i : i + 1], shifts[i : i + 1], fill)
        corrected, _ = apply_mesh(corrected, template, mesh, fill)
        frame = corrected[0, region.y0 : region.y1, region.x0 : region.x1]
        np.nan_to_num(frame, copy=False, nan=fill, posinf=fill, neginf=fill)
        out[i] = np.where(mask, frame, np.float32(0))
    return out


def shift_into_box(frames: np.ndarray, shifts: np.ndarray, y0: int, x0: int, mask: np.ndarray,
                   fill: float = 0.0) -> np.ndarray:
    """Rigid bilinear shift of each frame by (dy, dx) (``scipy.ndimage.shift`` convention:
    output(y, x) = frame(y - dy, x - dx)), evaluated only in the window of ``mask``'s
    shape at (y0, x0): pixels from outside the frame and non-finite pixels count as
    ``fill``, pixels outside ``mask`` are 0. float32 (t, *mask.shape); any input dtype."""
    out = np.empty((len(frames),) + mask.shape, np.float32)
    shifts = np.asarray(shifts, np.float64).reshape(len(frames), 2)
    _shift_into_box(np.ascontiguousarray(frames), shifts, int(y0), int(x0), np.ascontiguousarray(mask, np.bool_),
                    np.float32(fill), out)
    return out


@numba.njit(cache=True, nogil=True)
def _shift_into_box(frames, shifts, y0, x0, mask, fill, out):  # pragma: no cover - compiled
    t, h, w = frames.shape
    bh, bw = mask.shape
    for k in range(t):
        sy, sx = y0 - shifts[k, 0], x0 - shifts[k, 1]
        iy, ix = int(np.floor(sy)), int(np.floor(sx))
        ay, ax = np.float32(sy - iy), np.float32(sx - ix)
        w00, w01 = (1 - ay) * (1 - ax), (1 - ay) * ax
        w10, w11 = ay * (1 - ax), ay * ax
        for v in range(bh):
            r0 = iy + v
            r1 = r0 + 1
            in0 = 0 <= r0 < h
            in1 = 0 <= r1 < h
            for u in range(bw):
                if not mask[v, u]:
                    out[k, v, u] = 0
                    continue
                c0 = ix + u
                c1 = c0 + 1
                a = _value(frames, k, r0, c0, in0 and 0 <= c0 < w, fill)
                b = _value(frames, k, r0, c1, in0 and 0 <= c1 < w, fill)
                c = _value(frames, k, r1, c0, in1 and 0 <= c0 < w, fill)
                d = _value(frames, k, r1, c1, in1 and 0 <= c1 < w, fill)
                out[k, v, u] = w00 * a + w01 * b + w10 * c + w11 * d


@numba.njit(inline="always")
def _value(frames, k, r, c, inside, fill):  # pragma: no cover - compiled
    """Pixel value as float32; ``fill`` outside the frame and for NaN / infinity."""
    if not inside:
        return fill
    value = np.float32(frames[k, r, c])
    return value if np.isfinite(value) else fill

