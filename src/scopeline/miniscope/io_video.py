"""Miniscope video files: matching, natural order, probing and chunked reading.

AVI (any codec PyAV decodes; 8-bit grey such as FFV1 / GREY / raw is what Miniscope
software writes) and TIFF stacks. Every problem raises ``InputError`` naming the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import ConfigError, InputError
from ..io.atomic import atomic_path

TIFF_SUFFIXES = {".tif", ".tiff"}


class VideoError(InputError):
    """An unreadable or inconsistent video file. Unlike its base class it survives
    pickling, so it reaches the user intact when raised inside a dask worker."""

    def __reduce__(self):
        return (type(self), (self.path, self.problem, self.fix))


def natural_key(name: str) -> list:
    """Sort key putting ``2.avi`` before ``10.avi``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def find_videos(folder: str | Path, pattern: str = r"\.avi$") -> list[Path]:
    """Files in ``folder`` (recursively) whose name matches the regex ``pattern``, naturally sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VideoError(folder, "input folder does not exist")
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(None, f"invalid file pattern {pattern!r}: {exc}") from None
    files = [p for p in folder.rglob("*") if p.is_file() and regex.search(p.name)]
    files.sort(key=lambda p: natural_key(str(p.relative_to(folder))))
    if not files:
        raise VideoError(folder, f"no video file name matches {pattern!r}", "check --params load.pattern")
    return files


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    n_frames: int
    height: int
    width: int
    dtype: str


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count and shape, checking the file is complete (not truncated)."""
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        return _probe_tiff(path)
    return _probe_avi(path)


def read_frames(path: str | Path, start: int, stop: int) -> np.ndarray:
    """Frames ``start``..``stop-1`` of one file as (n, height, width)."""
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        return _read_tiff(path, start, stop)
    return _read_avi(path, start, stop)


# -- AVI -------------------------------------------------------------------------------

def _to_gray(frame) -> np.ndarray:
    fmt = frame.format.name
    if fmt in ("gray", "gray8"):
        return frame.to_ndarray()
    if fmt.startswith("gray"):
        return frame.to_ndarray().astype(np.uint16)
    return frame.to_ndarray(format="gray")


def _probe_avi(path: Path) -> VideoInfo:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(path, "no video stream")
            stream = container.streams.video[0]
            declared = stream.frames
            packets = sum(1 for packet in container.demux(stream) if packet.size)
        with av.open(str(path)) as container:
            first = _to_gray(next(container.decode(video=0)))
    except InputError:
        raise
    except StopIteration:
        raise VideoError(path, "video holds no decodable frame") from None
    except Exception as exc:  # PyAV raises many error types for damaged files
        raise VideoError(path, f"unreadable video ({type(exc).__name__}: {exc})") from None
    if packets == 0:
        raise VideoError(path, "video holds no frames")
    if declared and packets < declared:
        raise VideoError(path, f"truncated: header declares {declared} frames, file holds {packets}")
    return VideoInfo(path, packets, first.shape[0], first.shape[1], str(first.dtype))


def _read_avi(path: Path, start: int, stop: int) -> np.ndarray:
    """Decode from the last keyframe before ``start``; keep frames start..stop-1."""
    import av

    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            pending: list = []
            index = 0  # index of the next packet
            decoded = None  # index of the next decoded frame
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                if index < start:
                    pending = [packet] if packet.is_keyframe else pending + [packet]
                    index += 1
                    continue
                if decoded is None:
                    decoded = index - len(pending)
                    for old in pending:
                        for _ in stream.decode(old):
                            decoded += 1
                for frame in stream.decode(packet):
                    if start <= decoded < stop:
                        frames.append(_to_gray(frame))
                    decoded += 1
                index += 1
                if decoded >= stop:
                    break
            if decoded is not None and decoded < stop:
                for frame in stream.decode(None):
                    if start <= decoded < stop:
                        frames.append(_to_gray(frame))
                    decoded += 1
    except Exception as exc:
        raise VideoError(path, f"cannot decode frames {start}-{stop - 1} ({type(exc).__name__}: {exc})") from None
    if len(frames) != stop - start:
        raise VideoError(path, f"truncated: frames {start}-{stop - 1} requested, {len(frames)} decoded")
    return np.stack(frames)


def write_avi(path: str | Path, frames: Iterable[np.ndarray], fps: float = 30.0) -> int:
    """Write 8-bit grey frames losslessly (FFV1, every frame a keyframe), atomically."""
    import av

    n = 0
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="avi") as container:
            stream = None
            for frame in frames:
                frame = np.ascontiguousarray(frame, dtype=np.uint8)
                if stream is None:
                    stream = container.add_stream("ffv1", rate=int(round(fps)))
                    stream.height, stream.width = frame.shape
                    stream.pix_fmt = "gray"
                    stream.codec_context.gop_size = 1
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="gray")):
                    container.mux(packet)
                n += 1
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
    return n


# -- TIFF ------------------------------------------------------------------------------

def _probe_tiff(path: Path) -> VideoInfo:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            n_pages = len(tif.pages)
            page = tif.pages[0]
            shape, dtype = page.shape, page.dtype
    except Exception as exc:
        raise VideoError(path, f"unreadable TIFF ({type(exc).__name__}: {exc})") from None
    if len(shape) != 2:
        raise VideoError(path, f"TIFF pages must be 2-D grey frames, found shape {shape}")
    return VideoInfo(path, n_pages, shape[0], shape[1], str(dtype))


def _read_tiff(path: Path, start: int, stop: int) -> np.ndarray:
    import tifffile

    try:
        data = tifffile.imread(path, key=range(start, stop))
    except Exception as exc:
        raise VideoError(path, f"cannot read frames {start}-{stop - 1} ({type(exc).__name__}: {exc})") from None
    return data.reshape(stop - start, *data.shape[-2:])
