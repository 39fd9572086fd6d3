"""EER writer (Thermo Fisher electron-event TIFF): the encoder used by the simulator and
the tests; the reader is ``movies._EerMovie``."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_path
from .movies import EER_COMPRESSIONS as EER_BITS

__all__ = ["encode_eer_frame", "write_eer_movie", "EER_BITS"]

Frames = np.ndarray | Sequence[np.ndarray]


def encode_eer_frame(events: np.ndarray, skipbits: int = 7, horzbits: int = 2, vertbits: int = 2,
                     subpixels: np.ndarray | None = None) -> bytes:
    """Encode one raw EER frame (2-D, 0/1) into its bit stream (least significant bit first).

    For each event: runs of ``2**skipbits - 1`` (continue) until the remaining skip is
    smaller, then the remaining skip and the sub-pixel code. The stream ends with a run to
    the last pixel. ``subpixels`` (same shape, ``v * 2**horzbits + h``) gives each event's
    true sub-pixel position; they are stored XOR-ed with the bit sizes as the format wants."""
    events = np.asarray(events)
    n_pixels = events.size
    positions = np.flatnonzero(events.ravel())
    if events.max(initial=0) > 1:
        raise ValueError("an EER raw frame holds at most one event per pixel")
    max_run = (1 << skipbits) - 1
    nbits = skipbits + horzbits + vertbits
    gaps = np.diff(np.concatenate(([-1], positions))) - 1
    n_cont = gaps // max_run
    if subpixels is None:
        h = v = np.zeros(positions.size, dtype=np.int64)
    else:
        sub = np.asarray(subpixels).ravel()[positions].astype(np.int64)
        h, v = sub & ((1 << horzbits) - 1), sub >> horzbits
    code = (gaps % max_run) | ((h ^ horzbits) & ((1 << horzbits) - 1)) << skipbits \
        | ((v ^ vertbits) & ((1 << vertbits) - 1)) << (skipbits + horzbits)
    block = n_cont + 1
    n_event_codes = int(block.sum())
    values = np.full(n_event_codes, max_run, dtype=np.int64)
    widths = np.full(n_event_codes, skipbits, dtype=np.int64)
    at = np.cumsum(block) - 1
    values[at] = code
    widths[at] = nbits
    tail = n_pixels - (int(positions[-1]) + 1 if positions.size else 0)
    tail_codes = [max_run] * (tail // max_run)
    if tail % max_run or tail == 0:
        tail_codes.append(tail % max_run)
    values = np.concatenate((values, tail_codes)).astype(np.int64)
    widths = np.concatenate((widths, np.full(len(tail_codes), skipbits))).astype(np.int64)
    starts = np.cumsum(widths) - widths
    total = int(widths.sum())
    padded = ((total + nbits + 16 + 15) // 16) * 16  # room for the reader's look-ahead, even bytes
    bits = np.zeros(padded, dtype=np.uint8)
    for j in range(nbits):
        use = widths > j
        bits[starts[use] + j] = (values[use] >> j) & 1
    return np.packbits(bits, bitorder="little").tobytes()


def write_eer_movie(path: str | Path, events: Frames, pixel_size: float | None = None,
                    compression: int = 65001, subpixels: Frames | None = None) -> Path:
    """Write EER raw frames ``(n_raw, ny, nx)`` (0/1) as a BigTIFF with one strip per page,
    compression 65000 (8-bit runs), 65001 (7-bit runs) or 65002 (bit sizes in tags
    65007-65009), and the acquisition XML (tag 65001) with ``sensorPixelSize`` in metres."""
    if compression not in EER_BITS:
        raise ValueError(f"EER compression must be one of {sorted(EER_BITS)}")
    skipbits, horzbits, vertbits = EER_BITS[compression]
    path = Path(path)
    n = len(events)
    ny, nx = np.asarray(events[0]).shape
    items = [("numberOfFrames", None, n), ("sensorImageWidth", "pixels", nx),
             ("sensorImageHeight", "pixels", ny)]
    if pixel_size:
        items += [("sensorPixelSize.width", "m", pixel_size * 1e-10),
                  ("sensorPixelSize.height", "m", pixel_size * 1e-10)]
    xml = "<metadata>" + "".join(
        f'<item name="{k}"' + (f' unit="{u}"' if u else "") + f">{val}</item>" for k, u, val in items
    ) + "</metadata>"
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        writer = _BigTiffWriter(handle)
        for i in range(n):
            sub = None if subpixels is None else subpixels[i]
            strip = encode_eer_frame(events[i], skipbits, horzbits, vertbits, sub)
            tags = [(256, 4, nx), (257, 4, ny), (259, 3, compression), (262, 3, 1),
                    (277, 3, 1), (278, 4, ny)]
            if compression == 65002:
                tags += [(65007, 3, skipbits), (65008, 3, horzbits), (65009, 3, vertbits)]
            if i == 0:
                tags.append((65001, 7, xml.encode()))
            writer.write_page(strip, tags)
        handle.flush()
        os.fsync(handle.fileno())
    return path


class _BigTiffWriter:
    """Minimal little-endian BigTIFF writer: one strip per page, tags given as
    ``(code, type, value)`` with type 3 SHORT, 4 LONG, 7 UNDEFINED (bytes)."""

    _SIZES = {3: ("<H", 2), 4: ("<I", 4), 16: ("<Q", 8)}

    def __init__(self, handle):
        self._h = handle
        handle.write(b"II" + struct.pack("<HHHQ", 43, 8, 0, 0))
        self._link = 8  # where the next IFD's offset goes

    def _pad(self) -> None:
        if self._h.tell() % 2:
            self._h.write(b"\0")

    def write_page(self, strip: bytes, tags: list[tuple[int, int, object]]) -> None:
        h = self._h
        self._pad()
        data_offset = h.tell()
        h.write(strip)
        entries = list(tags) + [(273, 16, data_offset), (279, 16, len(strip))]
        encoded = []
        for code, typ, value in sorted(entries, key=lambda e: e[0]):
            if typ == 7:
                raw, count = bytes(value), len(value)
            else:
                fmt, _ = self._SIZES[typ]
                raw, count = struct.pack(fmt, value), 1
            if len(raw) > 8:
                self._pad()
                offset = h.tell()
                h.write(raw)
                raw = struct.pack("<Q", offset)
            encoded.append(struct.pack("<HHQ", code, typ, count) + raw.ljust(8, b"\0"))
        self._pad()
        ifd = h.tell()
        h.write(struct.pack("<Q", len(encoded)) + b"".join(encoded))
        next_link = h.tell()
        h.write(struct.pack("<Q", 0))
        h.seek(self._link)
        h.write(struct.pack("<Q", ifd))
        h.seek(0, os.SEEK_END)
        self._link = next_link
