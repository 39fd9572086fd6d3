"""Lazy movie access: open reads the header only, ``frame(i)`` reads one frame.

Formats (chosen by extension, confirmed by the file's magic bytes):

- MRC / MRCS / ST (``mrcfile`` memory map): modes 0, 1, 2, 6, 12 and 4-bit mode 101.
  Mode 0 is unsigned when the IMOD stamp says so (SerialEM), signed int8 otherwise.
- TIFF (``tifffile`` + ``imagecodecs``): one page per frame, uncompressed, LZW, deflate,
  zstd...; a frame decodes only its own page.
- EER (Thermo Fisher electron events, TIFF compression 65000/65001/65002): raw frames are
  summed into fractions; ``n_frames`` counts fractions.
- AVI (PyAV, gray), zarr arrays ``(frames, y, x)`` and ``.npy`` stacks (memory mapped).

Every problem with a file raises :class:`scopeline.errors.InputError` naming the file.
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from pathlib import Path
from typing import Iterable, Literal

import numba
import numpy as np
from pydantic import BaseModel, Field

from ..errors import InputError
from .video import gray_frame

__all__ = [
    "GainTransform",
    "Movie",
    "open_movie",
    "read_gain",
    "read_image",
    "default_eer_fractions",
    "eer_fraction_bounds",
]

MRC_SUFFIXES = (".mrc", ".mrcs", ".st", ".map")
TIFF_SUFFIXES = (".tif", ".tiff", ".gain")
EER_SUFFIXES = (".eer",)
SUPPORTED = ".mrc .mrcs .st .tif .tiff .eer .avi .zarr .npy"
EER_COMPRESSIONS = {65000: (8, 2, 2), 65001: (7, 2, 2), 65002: (7, 2, 2)}
DEFAULT_EER_FRACTIONS = 40
_IMOD_STAMP = 1146047817
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


class GainTransform(BaseModel):
    """Orientation of a gain reference relative to the movie, as in RELION
    (``--gain_rot``, ``--gain_flip``) and MotionCor2 (``-RotGain``, ``-FlipGain``):
    first rotate ``rotate`` quarter turns clockwise (as displayed, row 0 at the top),
    then flip."""

    rotate: int = Field(0, ge=0, le=3, description="clockwise quarter turns")
    flip: Literal["none", "upside_down", "left_right"] = "none"

    def apply(self, image: np.ndarray) -> np.ndarray:
        out = np.rot90(image, k=-self.rotate)
        if self.flip == "upside_down":
            out = out[::-1, :]
        elif self.flip == "left_right":
            out = out[:, ::-1]
        return np.ascontiguousarray(out)


# --------------------------------------------------------------------------- the Movie
class Movie:
    """A movie opened lazily. Attributes: ``path``, ``n_frames``, ``shape`` ``(ny, nx)``,
    ``dtype`` (of ``frame()``), ``pixel_size`` (Å/px from the header, or None) and ``gain``
    (multiplied into every frame, or None)."""

    format: str = "?"

    def __init__(self, path: Path, n_frames: int, shape: tuple[int, int], dtype: np.dtype,
                 pixel_size: float | None):
        self.path = path
        if n_frames < 1:
            raise InputError(path, "the movie has zero frames", "check that the acquisition finished writing")
        if shape[0] < 1 or shape[1] < 1:
            raise InputError(path, f"bad header: frame size {shape[1]}x{shape[0]}")
        self.n_frames = int(n_frames)
        self.shape = (int(shape[0]), int(shape[1]))
        self._raw_dtype = np.dtype(dtype).newbyteorder("=")
        self.pixel_size = pixel_size
        self.gain: np.ndarray | None = None

    # -- subclasses implement these two
    def _read(self, i: int) -> np.ndarray:
        """Frame ``i`` in the file's dtype; may be a view into a memory map."""
        raise NotImplementedError

    def _sum(self, i: int) -> float:
        """Sum of frame ``i``'s pixels (before gain)."""
        return pixel_sum(self._checked_read(i))

    def _checked_read(self, i: int) -> np.ndarray:
        raw = self._read(i)
        if raw.shape != self.shape:
            raise InputError(self.path, f"frame {i} is {_size(raw.shape)}, the first frame is {_size(self.shape)}")
        return raw

    # -- public API
    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.gain is not None else self._raw_dtype

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as a new 2-D array (gain applied when set)."""
        i = self._index(i)
        raw = self._checked_read(i)
        if self.gain is not None:
            out = np.multiply(raw, self.gain, dtype=np.float32)
        elif not raw.dtype.isnative:
            out = raw.astype(raw.dtype.newbyteorder("="))  # big-endian file: native copy
        elif raw.flags.owndata and raw.flags.writeable:
            out = raw  # already a fresh array (decoded page, summed fraction)
        else:
            out = np.array(raw, copy=True)  # a view into a memory map: copy it out
        if out.dtype.kind in "fc" and not np.isfinite(out).all():
            self._raise_not_finite(i)
        return out

    def frames(self, indices: Iterable[int]) -> np.ndarray:
        """Frames ``indices`` stacked into a 3-D array."""
        return np.stack([self.frame(i) for i in indices])

    def frame_mean(self, i: int) -> float:
        """Mean pixel value of frame ``i`` (gain applied when set), without copying it."""
        i = self._index(i)
        if self.gain is not None:
            total = pixel_sum(self._checked_read(i), weights=self.gain)
        else:
            total = float(self._sum(i))
        if not math.isfinite(total):
            self._raise_not_finite(i)
        return total / (self.shape[0] * self.shape[1])

    def set_gain(self, gain: np.ndarray, source: str | Path | None = None) -> None:
        """Multiply ``gain`` (shape ``self.shape``) into every frame."""
        gain = np.asarray(gain, dtype=np.float32)
        if gain.shape != self.shape:
            where = source if source is not None else self.path
            raise InputError(where, f"gain reference is {_size(gain.shape)} but the frames of "
                             f"{self.path} are {_size(self.shape)}",
                             "use the gain reference of this detector mode, or a gain transform")
        self.gain = gain

    def close(self) -> None:
        """Release the file."""

    def __len__(self) -> int:
        return self.n_frames

    def __enter__(self) -> "Movie":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.path.name}: {self.n_frames} x {_size(self.shape)} "
                f"{self.dtype}, pixel size {self.pixel_size}>")

    def _index(self, i: int) -> int:
        i = int(i)
        if i < 0:
            i += self.n_frames
        if not 0 <= i < self.n_frames:
            raise IndexError(f"{self.path}: frame {i} out of range (0..{self.n_frames - 1})")
        return i

    def _raise_not_finite(self, i: int) -> None:
        raise InputError(self.path, f"frame {i} of {self.n_frames} contains NaN or Inf values",
                         "the file is corrupt; re-export or exclude this movie")


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}"


# --------------------------------------------------------------------------- sums
@numba.njit(cache=True, nogil=True)
def _integer_sum(a):  # pragma: no cover - compiled
    total = 0
    for y in range(a.shape[0]):
        for x in range(a.shape[1]):
            total += a[y, x]
    return total


@numba.njit(cache=True, nogil=True)
def _weighted_sum(a, w):  # pragma: no cover - compiled
    total = 0.0
    for y in range(a.shape[0]):
        for x in range(a.shape[1]):
            total += a[y, x] * np.float64(w[y, x])
    return total


def pixel_sum(image: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Sum of an image's pixels, or of ``image * weights`` (a gain), without a float copy
    of the image: exact int64 accumulation for integers, float64 for floats. Works on
    memory-mapped views without copying them."""
    a = np.asarray(image)
    if weights is not None:
        numeric = (a.dtype.kind in "iu" and a.dtype.itemsize <= 4) or a.dtype in (np.float32, np.float64)
        if numeric and a.dtype.isnative and a.ndim == 2:
            return float(_weighted_sum(a, weights))
        return float(np.add.reduce(a * np.asarray(weights, np.float64), axis=None))
    if a.dtype.kind in "iu" and a.dtype.itemsize <= 4 and a.dtype.isnative and a.ndim == 2:
        return float(_integer_sum(a))
    if a.dtype.kind == "b":
        return float(np.count_nonzero(a))
    return float(np.add.reduce(a, axis=None, dtype=np.float64))


# --------------------------------------------------------------------------- MRC
class _MrcMovie(Movie):
    format = "mrc"

    def __init__(self, path: Path):
        import mrcfile

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self._mrc = mrcfile.mmap(str(path), mode="r", permissive=True)
            except Exception as exc:  # noqa: BLE001 - mrcfile raises several kinds
                raise InputError(path, f"bad MRC header: {exc}", "is this an MRC file?") from None
        header = self._mrc.header
        nx, ny, nz, mode = int(header.nx), int(header.ny), int(header.nz), int(header.mode)
        data_offset = 1024 + int(header.nsymbt)
        try:
            if nx < 1 or ny < 1 or nz < 0:
                raise InputError(path, f"bad MRC header: size {nx} x {ny} x {nz}")
            if nz == 0:
                raise InputError(path, "the movie has zero frames (MRC header nz = 0)",
                                 "check that the acquisition finished writing")
            if mode == 101:
                row_bytes = (nx + 1) // 2
                dtype = np.dtype(np.uint8)
                expected = data_offset + nz * ny * row_bytes
            else:
                try:
                    dtype = mrcfile.utils.dtype_from_mode(mode)
                except ValueError:
                    raise InputError(path, f"bad MRC header: unknown mode {mode}",
                                     "supported modes are 0, 1, 2, 6, 12 and 101") from None
                expected = data_offset + nz * ny * nx * dtype.itemsize
            size = os.path.getsize(path)
            if size < expected:
                raise InputError(path, f"truncated: the header describes {nz} frames of {nx}x{ny} "
                                 f"(mode {mode}, {expected} bytes) but the file has {size} bytes",
                                 "copy the movie again")
            if mode == 101:
                self._data = np.memmap(path, dtype=np.uint8, mode="r", offset=data_offset,
                                       shape=(nz, ny, (nx + 1) // 2))
            else:
                data = self._mrc.data
                if data is None:
                    problems = "; ".join(str(w.message) for w in caught) or "data block not readable"
                    raise InputError(path, f"bad MRC header: {problems}")
                if data.ndim > 3:
                    raise InputError(path, "MRC volume stack (4-D) is not a movie")
                self._data = data.reshape(nz, ny, nx)
                if mode == 0 and _mode0_unsigned(header):
                    self._data = self._data.view(np.uint8)
                    dtype = np.dtype(np.uint8)
        except BaseException:
            self._mrc.close()
            raise
        self._mode = mode
        self._nx = nx
        super().__init__(path, nz, (ny, nx), dtype, _mrc_pixel_size(self._mrc))

    def _read(self, i: int) -> np.ndarray:
        if self._mode == 101:
            return _unpack_4bit(self._data[i], self._nx)
        return self._data[i]

    def close(self) -> None:
        self._data = None
        self._mrc.close()


def _mode0_unsigned(header) -> bool:
    """IMOD/SerialEM: mode 0 bytes are unsigned unless imodFlags bit 1 says signed."""
    raw = np.frombuffer(header.tobytes(), dtype=header.nx.dtype, count=2, offset=152)
    return int(raw[0]) == _IMOD_STAMP and not (int(raw[1]) & 1)


def _mrc_pixel_size(mrc) -> float | None:
    """Voxel size x in Å; 0 and exactly 1 (the 'unset' value writers leave) mean unknown."""
    try:
        vs = mrc.voxel_size
        x, y = float(vs.x), float(vs.y)
    except Exception:  # noqa: BLE001 - a header without a usable cell is 'unknown'
        return None
    if not (math.isfinite(x) and x > 0) or abs(x - 1.0) < 1e-6:
        return None
    if math.isfinite(y) and y > 0 and abs(x - y) > 1e-3 * x:
        return None
    return x


def _unpack_4bit(packed: np.ndarray, nx: int) -> np.ndarray:
    """MRC mode 101: two pixels per byte, the first in the low 4 bits."""
    out = np.empty((packed.shape[0], packed.shape[1] * 2), dtype=np.uint8)
    np.bitwise_and(packed, 15, out=out[:, 0::2])
    np.right_shift(packed, 4, out=out[:, 1::2])
    return out[:, :nx]


# --------------------------------------------------------------------------- TIFF
class _TiffLogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _open_tiff(path: Path):
    """Open a TIFF and count its pages; tifffile's warnings about a broken page chain
    (a truncated file) become an InputError instead of a silently shorter movie."""
    import tifffile

    capture = _TiffLogCapture()
    logger = logging.getLogger("tifffile")
    logger.addHandler(capture)
    try:
        try:
            tif = tifffile.TiffFile(str(path))
        except Exception as exc:  # noqa: BLE001 - tifffile raises many kinds
            raise InputError(path, f"bad TIFF header: {exc}") from None
        try:
            n_pages = len(tif.pages)
        except Exception as exc:  # noqa: BLE001
            tif.close()
            raise InputError(path, f"truncated or corrupt TIFF: {exc}", "copy the movie again") from None
    finally:
        logger.removeHandler(capture)
    broken = [m for m in capture.messages if "offset" in m.lower() or "ifd" in m.lower()]
    if broken:
        tif.close()
        detail = re.sub(r"^<[^>]*>\s*", "", broken[0])[:160]
        raise InputError(path, f"truncated or corrupt TIFF (page chain broken: {detail})",
                         "copy the movie again")
    if n_pages == 0:
        tif.close()
        raise InputError(path, "the movie has zero frames (no TIFF pages)")
    return tif, n_pages


def _check_tiff_page_data(tif, page, path: Path) -> None:
    size = tif.filehandle.size
    ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts)]
    if not ends or max(ends) > size:
        raise InputError(path, f"truncated: page {page.index} needs {max(ends, default=0)} bytes, "
                         f"the file has {size}", "copy the movie again")


class _TiffMovie(Movie):
    format = "tiff"

    def __init__(self, path: Path, tif, n_pages: int):
        self._tif = tif
        try:
            first = tif.pages[0]
            if first.samplesperpixel != 1 or first.ndim != 2:
                raise InputError(path, f"TIFF pages have shape {first.shape}; a movie needs gray 2-D frames")
            last = tif.pages[n_pages - 1]
            for page in {0: first, n_pages - 1: last}.values():
                _check_tiff_page_data(tif, page, path)
            if last.shape != first.shape:
                raise InputError(path, f"frame {n_pages - 1} is {_size(last.shape)}, "
                                 f"the first frame is {_size(first.shape)}")
            pixel_size = _tiff_pixel_size(tif, first)
        except BaseException:
            tif.close()
            raise
        super().__init__(path, n_pages, first.shape, first.dtype, pixel_size)

    def _read(self, i: int) -> np.ndarray:
        try:
            page = self._tif.pages[i]
            _check_tiff_page_data(self._tif, page, self.path)
            return page.asarray()
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - decoder errors of any kind
            raise InputError(self.path, f"cannot decode frame {i}: {exc}", "the file is corrupt") from None

    def close(self) -> None:
        self._tif.close()


def _imagej_images(tif) -> int:
    try:
        return int((tif.imagej_metadata or {}).get("images", 0)) if tif.is_imagej else 0
    except (TypeError, ValueError):
        return 0


def _open_imagej_contiguous(path: Path, tif, n_pages: int) -> Movie:
    """ImageJ stacks over 4 GB store one IFD and all frames contiguous after it: read them
    through a memory map rather than report one frame and lose the rest."""
    try:
        images = _imagej_images(tif)
        page = tif.pages[0]
        offset = tif.series[0].dataoffset
        if offset is None or page.ndim != 2:
            raise InputError(path, f"ImageJ header says {images} images but the file holds {n_pages} "
                             "pages and the data are not contiguous", "re-save the stack as a plain TIFF")
        dtype = page.dtype.newbyteorder(tif.byteorder)
        needed = offset + images * page.shape[0] * page.shape[1] * dtype.itemsize
        if tif.filehandle.size < needed:
            raise InputError(path, f"truncated: {images} ImageJ images need {needed} bytes, "
                             f"the file has {tif.filehandle.size}", "copy the movie again")
        data = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(images, *page.shape))
        pixel_size = _tiff_pixel_size(tif, page)
    finally:
        tif.close()
    return _ArrayMovie(path, data, pixel_size, "tiff")


_LENGTH_UNITS_A = {"a": 1.0, "å": 1.0, "angstrom": 1.0, "nm": 10.0, "um": 1e4, "µm": 1e4,
                   "micron": 1e4, "\\u00B5m": 1e4, "mm": 1e7, "cm": 1e8}


def _tiff_pixel_size(tif, page) -> float | None:
    """Å/px from the resolution tags when they are unambiguous: x equals y and the unit is a
    length (centimetre, millimetre, micrometre, or ImageJ's ``unit=`` with unit NONE).
    Inch-based and unit-less values are the 72/96 dpi defaults of writers: unknown."""
    try:
        xres = page.tags.valueof(282)
        yres = page.tags.valueof(283)
        unit = int(page.tags.valueof(296, 2))
        if xres is None or yres is None:
            return None
        x = xres[0] / xres[1] if isinstance(xres, tuple) else float(xres)
        y = yres[0] / yres[1] if isinstance(yres, tuple) else float(yres)
    except Exception:  # noqa: BLE001 - malformed tags mean 'unknown'
        return None
    if not (x > 0 and y > 0) or abs(x - y) > 1e-6 * x:
        return None
    scale = {3: 1e8, 4: 1e7, 5: 1e4}.get(unit)
    if scale is None and unit == 1 and tif.is_imagej:
        name = str((tif.imagej_metadata or {}).get("unit", "")).strip().lower()
        scale = _LENGTH_UNITS_A.get(name)
    if scale is None:
        return None
    return scale / x


# --------------------------------------------------------------------------- EER
def default_eer_fractions(n_raw: int, target: int = DEFAULT_EER_FRACTIONS) -> int:
    """The number of fractions nearest ``target`` that divides ``n_raw`` exactly, so every
    fraction sums the same number of raw frames and none is dropped (ties: fewer)."""
    divisors = [d for d in range(1, n_raw + 1) if n_raw % d == 0]
    return min(divisors, key=lambda d: (abs(d - target), d))


def eer_fraction_bounds(n_raw: int, n_fractions: int) -> list[tuple[int, int]]:
    """Raw frame ranges ``[start, stop)`` of each fraction; all raw frames are used, sizes
    differ by at most one when ``n_fractions`` does not divide ``n_raw``."""
    edges = [(k * n_raw) // n_fractions for k in range(n_fractions + 1)]
    return list(zip(edges[:-1], edges[1:]))


@numba.njit(cache=True, nogil=True)
def _eer_decode(src, out, pixel_start, n_pixels, width, skipbits, horzbits, vertbits,
                superres, count_only):  # pragma: no cover - compiled
    """Decode one EER strip (bit stream read least significant bit first) and add its
    events into ``out`` (upsampled by 2**superres). Returns the number of events, or -1
    when a run passes the last pixel (a corrupt stream). Same rules as imagecodecs'
    ``imcd_eer_decode``: a run of ``skipbits`` bits; all ones continues the run; any other
    run is followed by horzbits + vertbits sub-pixel bits and an event on the pixel reached."""
    nbits = skipbits + horzbits + vertbits
    srcbits = src.size * 8 - nbits
    skipmask = (1 << skipbits) - 1
    horzmask = (1 << horzbits) - 1
    vertmask = (1 << vertbits) - 1
    up = 1 << superres
    hshift = horzbits - superres
    vshift = vertbits - superres
    bitindex = 0
    pixelindex = 0
    events = 0
    while bitindex < srcbits:
        byte = bitindex >> 3
        word = np.uint32(0)
        for k in range(4):
            if byte + k < src.size:
                word |= np.uint32(src[byte + k]) << np.uint32(8 * k)
        word >>= np.uint32(bitindex & 7)
        skip = int(word & np.uint32(skipmask))
        pixelindex += skip
        if pixelindex == n_pixels:
            break
        if pixelindex > n_pixels:
            return -1
        if skip == skipmask:
            bitindex += skipbits
            continue
        if not count_only:
            p = pixel_start + pixelindex
            py = p // width
            px = p - py * width
            if superres == 0:
                out[py, px] += 1
            else:
                h = ((int(word >> np.uint32(skipbits)) & horzmask) ^ horzbits) >> hshift
                v = ((int(word >> np.uint32(skipbits + horzbits)) & vertmask) ^ vertbits) >> vshift
                out[py * up + v, px * up + h] += 1
        pixelindex += 1
        bitindex += nbits
        events += 1
    return events


class _EerMovie(Movie):
    format = "eer"

    def __init__(self, path: Path, tif, n_pages: int, fractions: int | None, upsampling: int):
        self._tif = tif
        try:
            pages = tif.pages
            first_eer = 0 if pages[0].compression in EER_COMPRESSIONS else 1  # page 0 may be an integrated image
            self._first = first_eer
            n_raw = n_pages - first_eer
            if n_raw < 1:
                raise InputError(path, "the movie has zero frames (no EER pages)")
            key = pages[first_eer]
            self._skipbits, self._horzbits, self._vertbits = _eer_bits(key)
            if upsampling not in (1, 2, 4) or upsampling > (1 << min(self._horzbits, self._vertbits)):
                raise InputError(path, f"EER upsampling {upsampling} not possible", "use 1, 2 or 4")
            self._superres = upsampling.bit_length() - 1
            self._phys = (int(key.imagelength), int(key.imagewidth))
            _check_tiff_page_data(tif, pages[n_pages - 1], path)
            if fractions is None:
                fractions = default_eer_fractions(n_raw)
            if not 1 <= fractions <= n_raw:
                raise InputError(path, f"{fractions} EER fractions asked for {n_raw} raw frames",
                                 f"use between 1 and {n_raw} fractions")
            self.n_raw_frames = n_raw
            self.fraction_bounds = eer_fraction_bounds(n_raw, fractions)
            pixel_size = _eer_pixel_size(tif)
        except BaseException:
            tif.close()
            raise
        shape = (self._phys[0] * upsampling, self._phys[1] * upsampling)
        super().__init__(path, fractions, shape, np.uint16,
                         None if pixel_size is None else pixel_size / upsampling)

    def _accumulate(self, i: int, out: np.ndarray | None) -> int:
        start, stop = self.fraction_bounds[i]
        count_only = out is None
        target = np.zeros((1, 1), np.uint16) if count_only else out
        ny, nx = self._phys
        events = 0
        for raw in range(start, stop):
            page = self._tif.pages[self._first + raw]
            rows = int(page.rowsperstrip) if page.rowsperstrip else ny
            for k, (offset, count) in enumerate(zip(page.dataoffsets, page.databytecounts)):
                row0 = k * rows
                n_pixels = min(rows, ny - row0) * nx
                src = self._read_bytes(offset, count)
                got = _eer_decode(src, target, row0 * nx, n_pixels, nx, self._skipbits,
                                  self._horzbits, self._vertbits, self._superres, count_only)
                if got < 0:
                    raise InputError(self.path, f"corrupt EER bit stream in raw frame {raw}",
                                     "the file is damaged; copy it again")
                events += got
        return events

    def _read_bytes(self, offset: int, count: int) -> np.ndarray:
        fh = self._tif.filehandle
        with fh.lock:
            fh.seek(offset)
            data = fh.read(count)
        if len(data) < count:
            raise InputError(self.path, "truncated: EER frame data run past the end of the file",
                             "copy the movie again")
        return np.frombuffer(data, dtype=np.uint8)

    def _read(self, i: int) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.uint16)
        self._accumulate(i, out)
        return out

    def _sum(self, i: int) -> float:
        """Events in the fraction: its image is never built."""
        return float(self._accumulate(i, None))

    def close(self) -> None:
        self._tif.close()


def _eer_bits(page) -> tuple[int, int, int]:
    compression = int(page.compression)
    if compression == 65002:
        return (int(page.tags.valueof(65007, 7)), int(page.tags.valueof(65008, 2)),
                int(page.tags.valueof(65009, 2)))
    return EER_COMPRESSIONS[compression]


def _eer_pixel_size(tif) -> float | None:
    """``sensorPixelSize`` of the EER XML metadata (metres, at the specimen) in Å."""
    try:
        meta = tif.pages[0].eer_tags or {}
    except Exception:  # noqa: BLE001 - unreadable metadata means 'unknown'
        return None
    values = [meta.get("sensorPixelSize.width"), meta.get("sensorPixelSize.height")]
    values = [float(v) for v in values if isinstance(v, (int, float)) and v > 0]
    if not values or (len(values) == 2 and abs(values[0] - values[1]) > 1e-3 * values[0]):
        return None
    return values[0] * 1e10


# --------------------------------------------------------------------------- AVI
class _AviMovie(Movie):
    """Frames decoded in order; reading backwards re-opens the file (O(i) random access,
    O(1) per frame when read in order as the miniscope pipeline does)."""

    format = "avi"

    def __init__(self, path: Path):
        import av

        try:
            self._container = av.open(str(path))
            stream = self._container.streams.video[0]
        except Exception as exc:  # noqa: BLE001
            raise InputError(path, f"cannot read AVI: {exc}") from None
        n = int(stream.frames or 0)
        if n <= 0:  # no count in the header: count the packets (no decoding)
            with av.open(str(path)) as counting:
                n = sum(1 for packet in counting.demux(video=0) if packet.size)
        pix_fmt = stream.codec_context.pix_fmt or ""
        dtype = np.uint16 if pix_fmt.startswith("gray16") else np.uint8
        shape = (int(stream.codec_context.height), int(stream.codec_context.width))
        self._stream_index = stream.index
        self._decoder = None
        self._next = 0
        super().__init__(path, n, shape, dtype, None)

    def _restart(self) -> None:
        import av

        self._container.close()
        self._container = av.open(str(self.path))
        self._decoder = None
        self._next = 0

    def _read(self, i: int) -> np.ndarray:
        if i < self._next:
            self._restart()
        if self._decoder is None:
            self._decoder = self._container.decode(video=0)
        try:
            while True:
                frame = next(self._decoder)
                self._next += 1
                if self._next - 1 == i:
                    return gray_frame(frame)
        except StopIteration:
            raise InputError(self.path, f"truncated: frame {i} cannot be decoded "
                             f"(header says {self.n_frames} frames)") from None
        except Exception as exc:  # noqa: BLE001 - decoder errors
            raise InputError(self.path, f"cannot decode frame {i}: {exc}") from None

    def close(self) -> None:
        self._container.close()


# --------------------------------------------------------------------------- arrays
class _ArrayMovie(Movie):
    """A ``(frames, y, x)`` or ``(y, x)`` array: zarr or a memory-mapped ``.npy``."""

    def __init__(self, path: Path, array, pixel_size: float | None, fmt: str):
        self.format = fmt
        if array.ndim == 2:
            array = array[None] if isinstance(array, np.ndarray) else _Single(array)
        if array.ndim != 3:
            raise InputError(path, f"array has {array.ndim} dimensions; a movie is (frames, y, x)")
        self._array = array
        super().__init__(path, array.shape[0], array.shape[1:], array.dtype, pixel_size)

    def _read(self, i: int) -> np.ndarray:
        return np.asarray(self._array[i])

    def close(self) -> None:
        self._array = None


class _Single:
    """A 2-D zarr array seen as a one-frame stack."""

    def __init__(self, array):
        self._a = array
        self.shape = (1, *array.shape)
        self.dtype = array.dtype
        self.ndim = 3

    def __getitem__(self, i):
        return self._a[...]


def _open_zarr(path: Path) -> Movie:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001
        raise InputError(path, f"cannot open zarr store: {exc}") from None
    if isinstance(node, zarr.Group):
        arrays = [(name, a) for name, a in node.arrays() if a.ndim in (2, 3)]
        if len(arrays) != 1:
            names = ", ".join(name for name, _ in arrays) or "none"
            raise InputError(path, f"zarr group holds {len(arrays)} image arrays ({names})",
                             "give the array's path, e.g. store.zarr/NAME")
        node = arrays[0][1]
    px = node.attrs.get("pixel_size")
    px = float(px) if isinstance(px, (int, float)) and px > 0 else None
    return _ArrayMovie(path, node, px, "zarr")


def _open_npy(path: Path) -> Movie:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise InputError(path, f"cannot read .npy: {exc}") from None
    return _ArrayMovie(path, array, None, "npy")


# --------------------------------------------------------------------------- opening
def detect_format(path: Path) -> str:
    """'mrc', 'tiff', 'avi', 'zarr' or 'npy' (EER is a TIFF) from the extension, checked
    against the magic bytes; a file without a known extension is identified by its magic."""
    if path.is_dir():
        if path.suffix.lower() == ".zarr" or any((path / m).exists() for m in (".zarray", ".zgroup", "zarr.json")):
            return "zarr"
        raise InputError(path, "a folder that is not a zarr store", f"give movie files ({SUPPORTED})")
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if head[:4] in _TIFF_MAGICS:
        magic = "tiff"
    elif head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        magic = "avi"
    elif head[:6] == b"\x93NUMPY":
        magic = "npy"
    elif head[208:211] == b"MAP":
        magic = "mrc"
    else:
        magic = None
    suffix = path.suffix.lower()
    if suffix in MRC_SUFFIXES:
        named = "mrc"
    elif suffix in TIFF_SUFFIXES + EER_SUFFIXES:
        named = "tiff"
    else:
        named = {".avi": "avi", ".npy": "npy"}.get(suffix)
    if named is None and magic is None:
        raise InputError(path, "unknown movie format", f"supported: {SUPPORTED}")
    if named is None:
        return magic
    if named == "mrc":
        if magic not in (None, "mrc"):
            raise InputError(path, f"bad header: named {suffix} but the content is {magic.upper()}")
        if len(head) < 1024:
            raise InputError(path, f"bad MRC header: the file has only {len(head)} bytes",
                             "copy the movie again")
        return "mrc"
    if magic != named:
        raise InputError(path, f"bad header: named {suffix} but the content is not {named.upper()} "
                         f"(starts with {head[:8]!r})")
    return named


def open_movie(path: str | Path, gain: str | Path | np.ndarray | None = None,
               eer_fractions: int | None = None, eer_upsampling: int = 1,
               gain_transform: GainTransform | None = None) -> Movie:
    """Open a movie lazily (header only). ``gain``: a gain reference file or array,
    multiplied into every frame. ``eer_fractions``: number of fractions EER raw frames are
    summed into (default: the divisor of the raw frame count nearest 40)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found", "check the path")
    try:
        kind = detect_format(path)
    except OSError as exc:
        raise InputError(path, f"unreadable: {exc.strerror or exc}") from None
    if kind == "mrc":
        movie: Movie = _MrcMovie(path)
    elif kind == "tiff":
        tif, n_pages = _open_tiff(path)
        compression = int(tif.pages[0].compression)
        if compression == 1 and n_pages > 1:
            compression = int(tif.pages[1].compression)
        if compression in EER_COMPRESSIONS:
            movie = _EerMovie(path, tif, n_pages, eer_fractions, eer_upsampling)
        elif _imagej_images(tif) > n_pages:
            movie = _open_imagej_contiguous(path, tif, n_pages)
        else:
            movie = _TiffMovie(path, tif, n_pages)
    elif kind == "avi":
        movie = _AviMovie(path)
    elif kind == "zarr":
        movie = _open_zarr(path)
    else:
        movie = _open_npy(path)
    if gain is not None:
        try:
            _attach_gain(movie, gain, gain_transform)
        except BaseException:
            movie.close()
            raise
    return movie


def _attach_gain(movie: Movie, gain, transform: GainTransform | None) -> None:
    source = None
    if isinstance(gain, (str, Path)):
        source = gain
        gain = read_gain(gain, transform)
    elif transform is not None:
        gain = transform.apply(np.asarray(gain, dtype=np.float32))
    gain = np.asarray(gain, dtype=np.float32)
    factor = movie.shape[0] // max(gain.shape[0], 1)
    if (factor > 1 and movie.format == "eer" and gain.shape[0] * factor == movie.shape[0]
            and gain.shape[1] * factor == movie.shape[1]):
        gain = np.repeat(np.repeat(gain, factor, axis=0), factor, axis=1)  # 4K gain, 8K EER
    movie.set_gain(gain, source)


def read_gain(path: str | Path, gain_transform: GainTransform | None = None) -> np.ndarray:
    """A gain reference (MRC or TIFF, one image) as float32, multiplicative, oriented by
    ``gain_transform``. NaN/Inf or an all-zero gain is an error."""
    gain, _ = read_image(path)
    if not gain.any():
        raise InputError(path, "gain reference is all zeros")
    if gain_transform is not None:
        gain = gain_transform.apply(gain)
    return gain


def read_image(path: str | Path) -> tuple[np.ndarray, float | None]:
    """A single 2-D image (micrograph, gain) as float32 and its pixel size (Å/px or None)."""
    with open_movie(path) as movie:
        if movie.n_frames != 1:
            raise InputError(path, f"expected one image, found {movie.n_frames} frames",
                             "give a single micrograph, not a movie")
        image = movie.frame(0).astype(np.float32, copy=False)
        if not np.isfinite(image).all():
            raise InputError(path, "image contains NaN or Inf values")
        return image, movie.pixel_size
