"""Movie dose analysis: measure each movie's dose, set a reference, accept or discard.

Dose convention (counting-mode data): a pixel's value is the number of electrons it
received in that frame, so a frame's dose is ``mean pixel value / pixel_size**2`` in e/Å²
per frame. Each movie is measured on its first, middle and last frames.

Decisions replay the movies in input order (``decide_doses``), so they depend only on the
movies seen before: the same input always gives the same decisions, in a single pass, in a
stream, or in a killed and restarted stream.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from pydantic import BaseModel, Field

from ..errors import InputError


class DoseParams(BaseModel):
    """Parameters of ``scopeline dose`` with the documented defaults."""

    pixel_size: float | None = Field(None, gt=0, description="Å/px; else from the input set or the movie header")
    dose_per_frame: float | None = Field(None, gt=0, description="e/Å² per frame expected (metadata)")
    samples: int = Field(20, ge=1, description="movies measured before the reference dose is set")
    max_diff: float = Field(5.0, gt=0, description="accepted band around the reference, ± %")
    window: int = Field(50, ge=1, description="movies per anomaly window")
    max_faulty: float = Field(30.0, ge=0, le=100, description="warn when more than this % of a window is outside the band")
    metadata_tolerance: float = Field(2.0, ge=0, description="metadata dose used when within this % of the measured median")
    gain: Path | None = Field(None, description="gain reference multiplied into every frame")
    eer_fractions: int | None = Field(None, ge=1, description="EER: raw frames are summed into this many fractions (the dose is per fraction)")


# --------------------------------------------------------------------------- measuring
def sampled_frame_indices(n_frames: int) -> list[int]:
    """First, middle and last frame (fewer when the movie is shorter)."""
    if n_frames < 1:
        raise ValueError("a movie needs at least one frame")
    return sorted({0, n_frames // 2, n_frames - 1})


def frame_dose(frame_mean: float, pixel_size: float) -> float:
    """e/Å² in one frame of counting-mode data."""
    return float(frame_mean) / (pixel_size * pixel_size)


def dose_statistics(frame_doses: Sequence[float]) -> dict:
    """mean / std / min / max over the sampled frames and the trend inside the movie
    (last minus first sampled frame, in % of the mean)."""
    d = np.asarray(frame_doses, dtype=np.float64)
    mean = float(d.mean())
    trend = float((d[-1] - d[0]) / mean * 100.0) if mean > 0 and d.size > 1 else 0.0
    return {
        "mean_dose": mean,
        "std_dose": float(d.std()),
        "min_dose": float(d.min()),
        "max_dose": float(d.max()),
        "trend_percent": trend,
    }


def measure_movie_dose(movie, pixel_size: float | None = None, gain=None,
                       eer_fractions: int | None = None) -> dict:
    """Measure one movie (a path or an open ``Movie``): dose statistics of the sampled
    frames, the frame count and the pixel size used. Raises ``InputError`` on bad input."""
    from ..io.movies import open_movie

    own = not hasattr(movie, "frame_mean")
    mv = open_movie(movie, gain=gain, eer_fractions=eer_fractions) if own else movie
    try:
        px = pixel_size or mv.pixel_size
        if not px:
            raise InputError(mv.path, "no pixel size in the header or the input set",
                             "give --pixel-size")
        indices = sampled_frame_indices(mv.n_frames)
        doses = []
        for i in indices:
            mean = mv.frame_mean(i)
            if not np.isfinite(mean):
                raise InputError(mv.path, f"frame {i} contains NaN or Inf values")
            doses.append(frame_dose(mean, px))
        stats = dose_statistics(doses)
        stats.update(n_frames=int(mv.n_frames), pixel_size=float(px),
                     sampled_frames=indices, frame_doses=doses)
        return stats
    finally:
        if own:
            mv.close()


# --------------------------------------------------------------------------- deciding
class RunningMedian:
    """Median of a growing sample in O(log n) per value (two heaps)."""

    def __init__(self) -> None:
        self._low: list[float] = []  # max-heap (negated)
        self._high: list[float] = []

    def add(self, value: float) -> None:
        if self._low and value > -self._low[0]:
            heapq.heappush(self._high, value)
        else:
            heapq.heappush(self._low, -value)
        if len(self._low) > len(self._high) + 1:
            heapq.heappush(self._high, -heapq.heappop(self._low))
        elif len(self._high) > len(self._low):
            heapq.heappush(self._low, -heapq.heappop(self._high))

    def __len__(self) -> int:
        return len(self._low) + len(self._high)

    def median(self) -> float:
        if len(self._low) > len(self._high):
            return -self._low[0]
        return (-self._low[0] + self._high[0]) / 2.0


def percent_difference(dose: float, reference: float) -> float:
    return (dose - reference) / reference * 100.0


def within_band(diff_percent: float, max_diff: float) -> bool:
    """Accepted band is inclusive: |diff| <= max_diff (with float tolerance)."""
    return abs(diff_percent) <= max_diff * (1 + 1e-12)


def choose_reference(median: float, metadata_dose: float | None, tolerance: float) -> tuple[float, str, str | None]:
    """Metadata dose when it agrees with the measured median within ``tolerance`` %,
    else the median; also a message when they disagree."""
    if metadata_dose is None:
        return median, "experimental", None
    diff = percent_difference(median, metadata_dose)
    if abs(diff) <= tolerance:
        return metadata_dose, "metadata", None
    return median, "experimental", (
        f"dose per frame in the metadata ({metadata_dose:.4g} e/Å²) does not match the measured "
        f"median ({median:.4g} e/Å², {diff:+.1f} %): using the measured median")


@dataclass
class Decision:
    status: Literal["accepted", "discarded", "pending"]
    reference: float | None
    diff_percent: float | None


@dataclass
class DoseDecisions:
    decisions: list[Decision]
    reference: float | None
    source: Literal["metadata", "experimental"] | None
    mismatch: str | None


def decide_doses(doses: Sequence[float], metadata_dose: float | None, samples: int,
                 max_diff: float, tolerance: float = 2.0, closed: bool = True) -> DoseDecisions:
    """Replay measured movie doses in order and decide each one.

    Until ``samples`` movies are measured, decisions wait (``pending``). Then the reference
    is chosen (``choose_reference``) and the waiting movies are decided against it. While
    the reference is experimental, it is re-estimated as the median of every movie measured
    so far, and each later movie is decided against the reference at its arrival. When the
    input is ``closed`` with fewer than ``samples`` movies, the reference is set from all.
    """
    out: list[Decision] = []
    running = RunningMedian()
    reference, source, mismatch = None, None, None
    for dose in doses:
        running.add(dose)
        if reference is None:
            out.append(Decision("pending", None, None))
            if len(running) >= samples:
                reference, source, mismatch = choose_reference(running.median(), metadata_dose, tolerance)
                out = [_decide(d, reference, max_diff) for d in doses[: len(out)]]
            continue
        if source == "experimental":
            reference = running.median()
        out.append(_decide(dose, reference, max_diff))
    if reference is None and closed and len(running):
        reference, source, mismatch = choose_reference(running.median(), metadata_dose, tolerance)
        out = [_decide(d, reference, max_diff) for d in doses]
    return DoseDecisions(out, reference, source, mismatch)


def _decide(dose: float, reference: float, max_diff: float) -> Decision:
    diff = percent_difference(dose, reference)
    return Decision("accepted" if within_band(diff, max_diff) else "discarded", reference, diff)


@dataclass
class FaultyWindow:
    first: int  # 1-based movie positions among decided movies
    last: int
    n_outside: int
    n_movies: int

    @property
    def percent(self) -> float:
        return 100.0 * self.n_outside / self.n_movies


def faulty_windows(outside: Sequence[bool], window: int, max_faulty: float,
                   closed: bool = True) -> list[FaultyWindow]:
    """Consecutive windows of ``window`` movies with more than ``max_faulty`` % outside the
    band. The trailing partial window counts once the input is closed and it holds at least
    half a window."""
    found = []
    n = len(outside)
    for start in range(0, n, window):
        chunk = outside[start : start + window]
        if len(chunk) < window and not (closed and len(chunk) >= max(1, window // 2)):
            continue
        bad = int(sum(bool(x) for x in chunk))
        if 100.0 * bad / len(chunk) > max_faulty:
            found.append(FaultyWindow(start + 1, start + len(chunk), bad, len(chunk)))
    return found
