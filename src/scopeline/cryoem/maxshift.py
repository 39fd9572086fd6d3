"""``scopeline maxshift``, the pure part: measure a motion trajectory and decide.

Pure functions on arrays and records (no I/O): steps between consecutive frames, the largest
step, the path length, RELION's early/late accumulated motion, the rejection rules, and the
matching of movies to micrographs by name. The orchestration (reading alignment files,
streaming, outputs) is :mod:`scopeline.cryoem.maxshift_run`; the figures are
:mod:`scopeline.cryoem.maxshift_plots`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InputError

if TYPE_CHECKING:
    from ..io.motion import Trajectory

Rule = Literal["or", "and", "frame", "movie"]
RULES = ("or", "and", "frame", "movie")

class MaxShiftParams(BaseModel):
    """Parameters of ``scopeline maxshift`` (shifts and thresholds in Å, dose in e/Å²)."""

    model_config = ConfigDict(extra="forbid")

    rejection: Rule = "or"
    max_frame_shift: float = Field(10.0, gt=0, description="largest allowed step between frames (Å)")
    max_movie_shift: float = Field(45.0, gt=0, description="largest allowed total path (Å)")
    early_dose: float = Field(4.0, ge=0, description="dose up to which motion counts as early (e/Å²)")
    max_early_shift: float | None = Field(None, gt=0, description="also reject when early motion exceeds this (Å)")
    pixel_size: float | None = Field(None, gt=0, description="Å/px of the shifts; overrides the files")
    dose_per_frame: float | None = Field(None, gt=0, description="e/Å²/frame when the files do not say")
    use_accumulated_motion: bool = Field(False, description="use rlnAccumMotion* instead of rlnMicrographMetadata")
    accepted_plots: int = Field(16, ge=0, description="accepted trajectories plotted as a sample")


# --------------------------------------------------------------------------- pure functions


def frame_steps(shifts: np.ndarray) -> np.ndarray:
    """Euclidean length of each step between consecutive frames: (n, 2) -> (n - 1,)."""
    shifts = np.asarray(shifts, dtype=float)
    return np.hypot(*np.diff(shifts, axis=0).T) if len(shifts) > 1 else np.empty(0)


def max_frame_shift(steps: np.ndarray) -> float:
    """The largest step between consecutive frames."""
    return float(np.max(steps)) if len(steps) else 0.0


def total_path(steps: np.ndarray) -> float:
    """Length of the trajectory: the sum of the steps."""
    return float(np.sum(steps))


def early_late_motion(steps: np.ndarray, dose_per_frame: float, pre_exposure: float = 0.0,
                      early_dose: float = 4.0, step_frames: np.ndarray | None = None) -> tuple[float, float]:
    """RELION's early / late accumulated motion.

    The step that ends on (1-based) frame ``f`` is early when ``f <= (early_dose -
    pre_exposure) / dose_per_frame`` (RELION's ``cutoff_frame``), i.e. when the cumulative dose
    at the end of frame ``f`` is at most ``early_dose``. ``step_frames`` are those frame
    numbers (default 2, 3, ... for a trajectory starting at frame 1).
    """
    steps = np.asarray(steps, dtype=float)
    if step_frames is None:
        step_frames = np.arange(2, len(steps) + 2)
    cutoff_frame = (early_dose - pre_exposure) / dose_per_frame
    early = np.asarray(step_frames, dtype=float) <= cutoff_frame
    return float(steps[early].sum()), float(steps[~early].sum())


def _exceeds(value: float | None, threshold: float) -> bool | None:
    """``value > threshold``; None when the value is unknown."""
    if value is None or not math.isfinite(value):
        return None
    return value > threshold


def _any(*flags: bool | None) -> bool | None:
    """Three-valued OR: True if one is True, False if all are False, else unknown."""
    if any(f is True for f in flags):
        return True
    return False if all(f is False for f in flags) else None


def _all(*flags: bool | None) -> bool | None:
    """Three-valued AND: False if one is False, True if all are True, else unknown."""
    if any(f is False for f in flags):
        return False
    return True if all(f is True for f in flags) else None


def criteria(max_frame: float | None, total: float | None, max_frame_shift: float = 10.0,
             max_movie_shift: float = 45.0, early: float | None = None,
             max_early_shift: float | None = None) -> dict[str, bool | None]:
    """Which limits a movie exceeds (strict ``>``): ``{"frame", "movie", "early"}``.

    An unknown largest step (only the path length is known) cannot exceed the frame limit
    when the whole path is within it, since no step is longer than the path.
    """
    frame = _exceeds(max_frame, max_frame_shift)
    if frame is None and total is not None and math.isfinite(total) and total <= max_frame_shift:
        frame = False
    out = {"frame": frame, "movie": _exceeds(total, max_movie_shift)}
    if max_early_shift is not None:
        out["early"] = _exceeds(early, max_early_shift)
    return out


def reject(max_frame: float | None, total: float | None, rule: Rule = "or",
           max_frame_shift: float = 10.0, max_movie_shift: float = 45.0,
           early: float | None = None, max_early_shift: float | None = None) -> bool | None:
    """True to discard the movie, False to accept it, None when a needed value is unknown.

    ``rule``: "frame" (largest step), "movie" (total path), "and" (both), "or" (either).
    With ``max_early_shift``, early motion above it discards the movie whatever the rule.
    """
    c = criteria(max_frame, total, max_frame_shift, max_movie_shift, early, max_early_shift)
    by_rule = {"frame": c["frame"], "movie": c["movie"],
               "and": _all(c["frame"], c["movie"]), "or": _any(c["frame"], c["movie"])}[rule]
    return _any(by_rule, c["early"]) if "early" in c else by_rule


def measure_trajectory(traj: Trajectory, early_dose: float = 4.0, pixel_size: float | None = None,
                       dose_per_frame: float | None = None) -> dict:
    """Motion statistics of one movie in Å (and RELION's accumulated motion in pixels).

    ``pixel_size`` overrides the trajectory's; ``dose_per_frame`` is used when it has none.
    Early/late are None when no dose per frame is known.
    """
    angpix = pixel_size or traj.pixel_size
    if angpix is None:
        raise InputError(traj.metadata or traj.movie, "no pixel size in the file",
                         "give --pixel-size (Å/px of the shifts)")
    dose = traj.dose_per_frame or dose_per_frame
    if traj.accumulated_px is not None:
        total_px, early_px, late_px = traj.accumulated_px
        largest = None
        n_frames = None
    else:
        steps = frame_steps(traj.shifts_px)
        total_px, largest = total_path(steps), max_frame_shift(steps) * angpix
        early_px = late_px = None
        if dose:
            early_px, late_px = early_late_motion(steps, dose, traj.pre_exposure, early_dose,
                                                  traj.frame_numbers[1:])
        n_frames = traj.n_frames

    def in_angstrom(px):
        return None if px is None or not math.isfinite(px) else px * angpix

    return {
        "movie": traj.movie, "max_frame_shift_A": largest, "total_path_A": in_angstrom(total_px),
        "early_A": in_angstrom(early_px), "late_A": in_angstrom(late_px), "n_frames": n_frames,
        "pixel_size": angpix, "dose_per_frame": dose, "accum_total_px": total_px,
        "accum_early_px": early_px, "accum_late_px": late_px,
    }



UNKNOWN_REASONS = {"frame": "largest frame step unknown (only accumulated motion given)",
                   "movie": "total path unknown", "early": "early motion unknown (no dose per frame)"}


def decide(record: dict, params: MaxShiftParams) -> dict:
    """The record with ``status`` accepted / discarded (or failed) and ``rejected_by``."""
    if record["status"] == "failed":
        return {**record, "rejected_by": ""}
    values = dict(max_frame=record.get("max_frame_shift_A"), total=record.get("total_path_A"),
                  max_frame_shift=params.max_frame_shift, max_movie_shift=params.max_movie_shift,
                  early=record.get("early_A"), max_early_shift=params.max_early_shift)
    verdict = reject(rule=params.rejection, **values)
    exceeded = criteria(**values)
    if verdict is None:
        unknown = [UNKNOWN_REASONS[name] for name, flag in exceeded.items() if flag is None]
        return {**record, "status": "failed", "rejected_by": "",
                "error": f"{record['movie']}: cannot decide rule '{params.rejection}': " + "; ".join(unknown)}
    return {**record, "status": "discarded" if verdict else "accepted",
            "rejected_by": "+".join(name for name, flag in exceeded.items() if flag) if verdict else ""}


# --------------------------------------------------------------------------- micrographs

MICROGRAPH_EXTENSIONS = (".mrc", ".mrcs", ".tif", ".tiff", ".eer", ".star", ".log", ".bz2", ".gz")
MICROGRAPH_SUFFIXES = ("0-Full", "-Full", "_noDW", "_DW", "_PS")


def normalized_name(name: str) -> str:
    """What a movie and its micrograph have in common: the file name without folders,
    extensions and RELION / MotionCor2 suffixes, with '.' and '-' read as '_'
    (RELION writes ``a.frames.mrc``'s micrograph as ``a_frames.mrc``)."""
    stem = Path(str(name)).name
    changed = True
    while changed:
        changed = False
        for ext in MICROGRAPH_EXTENSIONS:
            if stem.lower().endswith(ext):
                stem, changed = stem[: -len(ext)], True
        for suffix in MICROGRAPH_SUFFIXES:
            if stem.endswith(suffix):
                stem, changed = stem[: -len(suffix)], True
    return stem.replace(".", "_").replace("-", "_")


def _is_dose_weighted(row: dict) -> bool:
    name = Path(str(row.get("rlnMicrographName", ""))).stem
    if name.endswith("_noDW"):
        return False
    return name.endswith("_DW") or bool(str(row.get("rlnMicrographNameNoDW") or "").strip())


def link_micrographs(records: Sequence[dict], rows: Sequence[dict]) -> tuple[dict[int, int], list[int], list[int]]:
    """Match movies to micrograph rows by metadata STAR, movie or micrograph name.

    Returns ``({record index: row index}, unmatched row indices, superseded row indices)``;
    when a movie has a dose-weighted and a plain micrograph, the dose-weighted one is linked
    and the plain one is superseded.
    """
    by_name: dict[str, int] = {}
    superseded: set[int] = set()
    for i, row in enumerate(rows):
        names = {normalized_name(row[label]) for label in
                 ("rlnMicrographMetadata", "rlnMicrographMovieName", "rlnMicrographName")
                 if row.get(label) not in (None, "")}
        for name in names:
            j = by_name.get(name)
            if j is None or j == i:
                by_name[name] = i
            elif _is_dose_weighted(row) and not _is_dose_weighted(rows[j]):
                superseded.add(j)
                by_name[name] = i
            else:
                superseded.add(i)
    links: dict[int, int] = {}
    for k, rec in enumerate(records):
        for field in ("metadata", "movie", "micrograph", "key"):
            value = rec.get(field)
            if value and normalized_name(value) in by_name:
                links[k] = by_name[normalized_name(value)]
                break
    used = set(links.values())
    unmatched = [i for i in range(len(rows)) if i not in used and i not in superseded]
    return links, unmatched, sorted(superseded - used)


def pixel_size_warnings(records: Sequence[dict], pixel_size: float | None) -> list[str]:
    """Say when ``--pixel-size`` overrides a different (> 1 %) pixel size in the files."""
    if pixel_size is None:
        return []
    differing = sorted({r["file_pixel_size"] for r in records if r.get("file_pixel_size")
                        and abs(r["file_pixel_size"] - pixel_size) > 0.01 * pixel_size})
    if not differing:
        return []
    return [f"--pixel-size {pixel_size:g} Å overrides the files' pixel size "
            f"({', '.join(f'{v:g}' for v in differing)} Å)"]


def reader_warnings(records: Sequence[dict]) -> list[str]:
    """One line per distinct reader warning (e.g. motion STARs missing), with the movies."""
    by_warning: dict[str, list[str]] = {}
    for r in records:
        if r.get("warning"):
            by_warning.setdefault(r["warning"], []).append(str(r.get("micrograph") or r["movie"]))
    return [f"{len(names)} movie(s): {text}: " + ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
            for text, names in by_warning.items()]


def _median(values) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(vals)) if vals else None



MEASUREMENT_FIELDS = ("pixel_size", "dose_per_frame", "early_dose", "use_accumulated_motion")

_RUN_NAMES = ("run_maxshift", "InputPoller", "measure_item", "measure_chunk", "MOTION_COLUMNS",
              "MaxShiftOutputs", "items_from_file", "load_trajectory")


def __getattr__(name):  # the orchestration, for code that imported it from here before the split
    if name in _RUN_NAMES:
        from . import maxshift_run

        return getattr(maxshift_run, name)
    raise AttributeError(name)


__all__ = [
    "MaxShiftParams", "frame_steps", "max_frame_shift", "total_path", "early_late_motion",
    "criteria", "reject", "measure_trajectory", "decide", "normalized_name", "link_micrographs",
    "pixel_size_warnings", "reader_warnings", "MEASUREMENT_FIELDS",
]
