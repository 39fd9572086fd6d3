"""Video files (AVI, TIFF stacks) as one chunked frame reader: matching in natural order,
probing, reading frames ``[start, stop)`` of one file or of a set of files, one grey
conversion, and a lossless AVI writer.

AVI: any codec PyAV decodes (8-bit grey such as FFV1 / GREY / raw is what Miniscope
software writes). TIFF: a stack of 2-D pages. Every problem raises :class:`VideoError`
(an ``InputError``) naming the file. ``movies.open_movie`` uses the same grey conversion
(:func:`gray_frame`) for its frame-by-frame AVI access.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import ConfigError, InputError
from .atomic import atomic_path
from .sets import natural_key

__all__ = ["VideoError", "VideoInfo", "find_videos", "probe_video", "declared_frames", "read_frames",
           "frame_segments", "read_segments", "write_avi", "gray_frame", "natural_key", "TIFF_SUFFIXES"]

TIFF_SUFFIXES = {".tif", ".tiff"}


class VideoError(InputError):
    """An unreadable or inconsistent video file (picklable, so it reaches the user intact
    when raised inside a dask worker)."""


def find_videos(folder: str | Path, pattern: str = r"\.avi$") -> list[Path]:
    """Files under ``folder`` (recursively) whose name matches a regex, in natural order.

    Parameters
    ----------
    folder : str or Path
        Folder searched recursively.
    pattern : str
        Regular expression searched in each file name.

    Returns
    -------
    list of Path
        Matching files, ``2.avi`` before ``10.avi`` (relative paths compared).
    """
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
    """Frame count, frame shape (pixels) and dtype of one video file."""

    path: Path
    n_frames: int
    height: int
    width: int
    dtype: str


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count and shape of one file, checking it is complete (not truncated)."""
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        return _probe_tiff(path)
    return _probe_avi(path)


def declared_frames(path: str | Path) -> int | None:
    """The frame count a file's header declares (its container), without decoding; None
    when the header cannot be read or does not say. For an unreadable file this is the
    best estimate of how many frames of the recording it held."""
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                return len(tif.pages) or None
        import av

        with av.open(str(path)) as container:
            n = int(container.streams.video[0].frames or 0)
        return n or None
    except Exception:  # noqa: BLE001 - any failure means 'unknown'
        return None


def read_frames(path: str | Path, start: int, stop: int) -> np.ndarray:
    """Frames ``start`` .. ``stop - 1`` of one file as a ``(n, height, width)`` array
    (uint8, or uint16 for deeper grey formats)."""
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        return _read_tiff(path, start, stop)
    return _read_avi(path, start, stop)


def frame_segments(infos: Sequence[VideoInfo], first: int, stop: int) -> list[tuple[str, int, int]]:
    """The ``(file, start, stop)`` pieces covering frames ``first`` .. ``stop - 1`` of the
    recording made of ``infos`` one after the other."""
    pieces = []
    offset = 0
    for info in infos:
        a, b = max(first, offset), min(stop, offset + info.n_frames)
        if a < b:
            pieces.append((str(info.path), int(a - offset), int(b - offset)))
        offset += info.n_frames
    return pieces


def read_segments(segments: Sequence[tuple[str, int, int]]) -> np.ndarray:
    """The frames of ``frame_segments`` pieces, concatenated."""
    return np.concatenate([read_frames(path, a, b) for path, a, b in segments])


# -- grey conversion ---------------------------------------------------------------------
_LUMA_FIRST_8BIT = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12"}


def gray_frame(frame) -> np.ndarray:
    """A decoded PyAV video frame as a 2-D grey array.

    Grey formats as stored (uint8, or uint16 for 10-16 bit grey); 8-bit YUV formats: the
    luma plane as stored; RGB formats: one channel when all are equal, else BT.601 luma.
    """
    fmt = frame.format.name
    if fmt in ("gray", "gray8"):
        return frame.to_ndarray()
    if fmt.startswith("gray"):
        return frame.to_ndarray().astype(np.uint16, copy=False)
    if fmt in _LUMA_FIRST_8BIT:
        plane = frame.planes[0]
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(frame.height, plane.line_size)
        return rows[:, : frame.width].copy()
    rgb = frame.to_ndarray(format="rgb24")
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return rgb[..., 0].copy()
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


# -- AVI ---------------------------------------------------------------------------------
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
            first = gray_frame(next(container.decode(video=0)))
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
                        frames.append(gray_frame(frame))
                    decoded += 1
                index += 1
                if decoded >= stop:
                    break
            if decoded is not None and decoded < stop:
                for frame in stream.decode(None):
                    if start <= decoded < stop:
                        frames.append(gray_frame(frame))
                    decoded += 1
    except Exception as exc:
        raise VideoError(path, f"cannot decode frames {start}-{stop - 1} ({type(exc).__name__}: {exc})") from None
    if len(frames) != stop - start:
        raise VideoError(path, f"truncated: frames {start}-{stop - 1} requested, {len(frames)} decoded")
    return np.stack(frames)


def write_avi(path: str | Path, frames: Iterable[np.ndarray], fps: float = 30.0) -> int:
    """Write 8-bit grey frames losslessly (FFV1, every frame a keyframe), atomically.

    Returns
    -------
    int
        The number of frames written.
    """
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


# -- TIFF --------------------------------------------------------------------------------
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
