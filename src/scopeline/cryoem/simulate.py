"""Synthetic cryo-EM movies with a known dose, and writers for MRC, TIFF and EER files.

Dose convention (counting mode): a pixel's value is the number of electrons it counted in
that frame, so the dose of a frame in e/Å² is ``frame mean / pixel_size**2`` (pixel size in
Å/px). A movie simulated with ``dose_per_pixel_per_frame = d`` therefore has a true dose of
``d / pixel_size**2`` e/Å² per frame.

EER: a raw frame holds at most one event per pixel; a fraction sums ``g`` raw frames, so a
movie simulated with ``p`` events per pixel per raw frame has ``g * p / pixel_size**2`` e/Å²
per fraction.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io.atomic import atomic_path
from ..io.eer import EER_BITS, encode_eer_frame, write_eer_movie  # noqa: F401 (re-exported)

__all__ = [
    "simulate_counting_movie",
    "simulate_eer_events",
    "write_mrc_movie",
    "write_tiff_movie",
    "write_eer_movie",
    "encode_eer_frame",
    "write_corrupt_movie",
    "CORRUPT_KINDS",
]

Frames = np.ndarray | Sequence[np.ndarray]
CORRUPT_KINDS = ("truncated", "bad_header", "zero_frames", "nan_frame")
_IMOD_STAMP = 1146047817


# --------------------------------------------------------------------------- simulation
def simulate_counting_movie(shape: tuple[int, int], n_frames: int, dose_per_pixel_per_frame: float,
                            rng: np.random.Generator, gain: np.ndarray | None = None) -> np.ndarray:
    """Poisson electron counts, ``(n_frames, ny, nx)`` uint8.

    With a multiplicative ``gain`` reference the detector records ``Poisson(d / gain)``, so
    that ``frame * gain`` has expectation ``d`` everywhere (gain must be > 0)."""
    if dose_per_pixel_per_frame < 0 or dose_per_pixel_per_frame > 50:
        raise ValueError("dose_per_pixel_per_frame must be in [0, 50] for uint8 counts")
    lam = np.full(shape, float(dose_per_pixel_per_frame))
    if gain is not None:
        gain = np.asarray(gain, dtype=np.float64)
        if gain.shape != tuple(shape) or not (gain > 0).all():
            raise ValueError("gain must be positive and have the frame shape")
        lam = lam / gain
    counts = rng.poisson(lam, size=(n_frames, *shape))
    return np.minimum(counts, 255).astype(np.uint8)


def simulate_eer_events(shape: tuple[int, int], n_raw_frames: int, events_per_pixel: float,
                        rng: np.random.Generator) -> np.ndarray:
    """EER raw frames: each pixel holds an event with probability ``events_per_pixel``
    (at most one per raw frame), ``(n_raw_frames, ny, nx)`` bool."""
    if not 0 <= events_per_pixel <= 1:
        raise ValueError("events_per_pixel must be a probability")
    return rng.random((n_raw_frames, *shape)) < events_per_pixel


# --------------------------------------------------------------------------- MRC
def _mrc_mode(dtype: np.dtype) -> int:
    modes = {"u1": 0, "i1": 0, "i2": 1, "f4": 2, "u2": 6, "f2": 12}
    key = f"{dtype.kind}{dtype.itemsize}"
    if key not in modes:
        raise ValueError(f"no MRC mode for {dtype}")
    return modes[key]


def write_mrc_movie(path: str | Path, stack: Frames, pixel_size: float | None,
                    four_bit: bool = False) -> Path:
    """Write an MRC image stack (ispg 0), streaming frame by frame.

    uint8 frames are written as mode 0 with the IMOD stamp marking them unsigned (as
    SerialEM does); ``four_bit`` packs values 0..15 into mode 101 (two pixels per byte, the
    first in the low 4 bits)."""
    import mrcfile

    path = Path(path)
    n = len(stack)
    first = np.asarray(stack[0])
    ny, nx = first.shape
    if four_bit:
        shape, mode = (n, ny, (nx + 1) // 2), 0
    else:
        shape, mode = (n, ny, nx), _mrc_mode(first.dtype)
    with atomic_path(path) as tmp:
        with mrcfile.new_mmap(str(tmp), shape=shape, mrc_mode=mode, overwrite=True) as mrc:
            mrc.set_image_stack()
            for i in range(n):
                frame = np.asarray(stack[i])
                if frame.shape != (ny, nx):
                    raise ValueError(f"frame {i} has shape {frame.shape}, expected {(ny, nx)}")
                data = _pack_4bit(frame) if four_bit else frame
                if data.dtype != mrc.data.dtype and data.dtype.itemsize == mrc.data.dtype.itemsize:
                    data = data.view(mrc.data.dtype)  # uint8 counts in a mode 0 file
                mrc.data[i] = data
            mrc.voxel_size = pixel_size if pixel_size else 0.0
        with open(tmp, "r+b") as handle:
            if first.dtype == np.uint8 or four_bit:
                handle.seek(152)
                handle.write(struct.pack("<ii", _IMOD_STAMP, 0))  # unsigned bytes
            if four_bit:
                cella_x = nx * (pixel_size or 0.0)
                handle.seek(0)
                handle.write(struct.pack("<i", nx))
                handle.seek(12)
                handle.write(struct.pack("<i", 101))
                handle.seek(28)
                handle.write(struct.pack("<i", nx))
                handle.seek(40)
                handle.write(struct.pack("<f", cella_x))
    return path


def _pack_4bit(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.min() < 0 or frame.max() > 15:
        raise ValueError("4-bit MRC holds values 0..15")
    f = frame.astype(np.uint8)
    if f.shape[1] % 2:
        f = np.pad(f, ((0, 0), (0, 1)))
    return (f[:, 0::2] | (f[:, 1::2] << 4)).view(np.int8)


# --------------------------------------------------------------------------- TIFF
def write_tiff_movie(path: str | Path, stack: Frames, pixel_size: float | None,
                     compression: str | None = "lzw") -> Path:
    """Write one TIFF page per frame (LZW by default); the pixel size goes into the
    X/YResolution tags in pixels per centimetre."""
    import tifffile

    path = Path(path)
    n = len(stack)
    nbytes = np.asarray(stack[0]).nbytes * n
    resolution = {}
    if pixel_size:
        per_cm = 1e8 / float(pixel_size)
        resolution = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
    with atomic_path(path) as tmp:
        with tifffile.TiffWriter(str(tmp), bigtiff=nbytes > 2**31) as tw:
            for i in range(n):
                tw.write(np.asarray(stack[i]), compression=compression, photometric="minisblack",
                         metadata=None, **resolution)
    return path


# --------------------------------------------------------------------------- bad input
def write_corrupt_movie(path: str | Path, kind: str, shape: tuple[int, int] = (64, 64),
                        n_frames: int = 6, pixel_size: float = 1.5) -> Path:
    """A deliberately broken movie for tests: ``truncated`` (MRC, TIFF or EER by suffix: the
    file cut to 60 %), ``bad_header`` (MRC: nonsense mode and no map ID; TIFF/EER: wrong
    magic), ``zero_frames`` (MRC with nz = 0) or ``nan_frame`` (float32 MRC or TIFF whose
    middle frame is NaN)."""
    path = Path(path)
    suffix = path.suffix.lower()
    rng = np.random.default_rng(0)
    if kind not in CORRUPT_KINDS:
        raise ValueError(f"kind must be one of {CORRUPT_KINDS}")
    if kind == "nan_frame":
        stack = rng.random((n_frames, *shape), dtype=np.float32)
        stack[n_frames // 2] = np.nan
        return _write_by_suffix(path, stack, pixel_size)
    if kind == "zero_frames" and suffix not in (".mrc", ".mrcs"):
        raise ValueError("zero_frames is made for MRC files")
    stack = simulate_counting_movie(shape, n_frames, 1.0, rng)
    if suffix == ".eer":
        write_eer_movie(path, np.minimum(stack, 1), pixel_size)
    else:
        _write_by_suffix(path, stack, pixel_size)
    with open(path, "r+b") as handle:
        if kind == "truncated":
            handle.truncate(int(os.path.getsize(path) * 0.6))
        elif kind == "bad_header":
            if suffix in (".mrc", ".mrcs"):
                handle.seek(12)
                handle.write(struct.pack("<i", 77))
                handle.seek(208)
                handle.write(b"XXXX")
            else:
                handle.write(b"XX")
        else:  # zero_frames: header says no frames, no data follows
            handle.seek(8)
            handle.write(struct.pack("<i", 0))
            handle.truncate(1024)
    return path


def _write_by_suffix(path: Path, stack: np.ndarray, pixel_size: float) -> Path:
    if path.suffix.lower() in (".mrc", ".mrcs"):
        return write_mrc_movie(path, stack, pixel_size)
    if path.suffix.lower() in (".tif", ".tiff"):
        return write_tiff_movie(path, stack, pixel_size)
    raise ValueError(f"cannot write {path.suffix} movies")
