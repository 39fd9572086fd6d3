"""``scopeline maxshift``: reject aligned movies whose motion is excessive.

Pure functions measure a trajectory (steps between consecutive frames, the largest step, the
path length, RELION's early/late accumulated motion) and decide with a rejection rule;
:func:`run_maxshift` orchestrates reading the alignment files (:mod:`scopeline.io.motion`),
streaming (:mod:`scopeline.stream`) and the outputs.

Records in the journal hold measurements only; the accept/discard decision is taken when the
outputs are written, so re-running in the same folder with other thresholds re-decides every
movie without reading a file again.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InputError, describe
from ..io.atomic import ensure_output_dir, write_json, write_text
from ..io.motion import (
    ACCUM_LABELS,
    MicrographsTable,
    Trajectory,
    detect_format,
    read_micrographs_table,
    read_motion_csv,
    read_motioncor2_log,
    read_relion_motion_star,
    read_scipion_movies,
    trajectory_from_micrograph_row,
)
from ..io.sets import natural_key, require_matches
from ..outputs import write_status_sets, write_table
from ..parallel import map_items
from ..stream import Item, Journal, StreamOptions, run_stream

Rule = Literal["or", "and", "frame", "movie"]

MOTION_COLUMNS = [
    "movie", "max_frame_shift_A", "total_path_A", "early_A", "late_A", "n_frames", "pixel_size",
    "status", "error", "micrograph", "rejected_by", "source", "key",
]
MIN_BATCH = 256  # small files: fewer, larger batches keep journal fsyncs and output rewrites rare
PLOT_INTERVAL_S = 60.0
OUTPUT_INTERVAL_S = 2.0
CHUNKS_PER_WORKER = 4  # Dask tasks per worker and batch


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


# --------------------------------------------------------------------------- per-item records


def _movie_row(traj: Trajectory, measures: dict | None) -> dict:
    """The movie's line in movies_*.star: name, metadata STAR, optics group, accumulated motion."""
    row = {"rlnMicrographMovieName": traj.movie}
    if traj.metadata and traj.source.startswith("relion"):
        row["rlnMicrographMetadata"] = traj.metadata
    if "rlnOpticsGroup" in traj.row:
        row["rlnOpticsGroup"] = traj.row["rlnOpticsGroup"]
    for label, field in zip(ACCUM_LABELS, ("accum_total_px", "accum_early_px", "accum_late_px")):
        value = (measures or {}).get(field)
        row[label] = float("nan") if value is None else round(float(value), 6)
    return row


def load_trajectory(meta: dict, use_accumulated: bool = False) -> Trajectory:
    """The trajectory an item stands for (reads its file when it is a per-movie file)."""
    kind = meta["kind"]
    if kind == "relion_motion_star":
        return read_relion_motion_star(meta["path"])
    if kind == "motioncor2_log":
        return read_motioncor2_log(meta["path"])
    if kind == "micrograph_row":
        return trajectory_from_micrograph_row(meta["row"], meta["table"], meta.get("optics"),
                                              use_accumulated)
    if kind == "loaded":
        if isinstance(meta["trajectory"], Exception):
            raise meta["trajectory"]
        return meta["trajectory"]
    if kind == "error":
        raise InputError(None, meta["error"])
    raise ValueError(f"unknown item kind {kind!r}")


def measure_item(key: str, meta: dict, params: MaxShiftParams) -> dict:
    """Journal record of one movie: measurements and its trajectory; never raises."""
    record = {"key": key, "movie": meta.get("movie", key), "status": "measured", "error": "",
              "micrograph": meta.get("micrograph"), "source": meta["kind"]}
    if meta["kind"] == "micrograph_row":
        record.update(micrograph_row=meta["row"], micrograph_block=meta["block"],
                      optics=meta.get("optics") or None)
    traj = measures = None
    try:
        traj = load_trajectory(meta, params.use_accumulated_motion)
        record.update(movie=traj.movie, source=traj.source, metadata=traj.metadata,
                      micrograph=traj.micrograph or record["micrograph"],
                      micrograph_nodw=traj.micrograph_nodw, file_pixel_size=traj.pixel_size,
                      warning=traj.warning)
        measures = measure_trajectory(traj, params.early_dose, params.pixel_size, params.dose_per_frame)
    except Exception as exc:  # noqa: BLE001 - every problem becomes the item's error
        record.update(status="failed", error=describe(exc, meta.get("path", key)))
    if measures is None:
        record["row"] = _movie_row(traj, None) if traj else {"rlnMicrographMovieName": record["movie"]}
        return record
    record.update(measures)
    record.update(shifts_px=np.round(traj.shifts_px, 4).tolist(), row=_movie_row(traj, measures))
    return record


def measure_chunk(keys: list[str], metas: list[dict], params: MaxShiftParams) -> list[dict]:
    """Records of several items (one Dask task for many small files)."""
    return [measure_item(k, m, params) for k, m in zip(keys, metas)]


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


# --------------------------------------------------------------------------- inputs


def _item(key: str, meta: dict) -> Item:
    return Item(key=key, meta=meta)


def _per_file_item(path: Path, kind: str) -> Item:
    return _item(str(path.resolve()), {"kind": kind, "path": str(path), "movie": str(path)})


def _table_items(path: Path) -> list[Item]:
    table: MicrographsTable = read_micrographs_table(path)
    items = []
    for row in table.rows:
        name = str(row.get("rlnMicrographName"))
        items.append(_item(f"{path.resolve()}::{name}", {
            "kind": "micrograph_row", "table": str(path), "row": row, "optics": table.optics_for(row),
            "block": table.block,
            "movie": name, "micrograph": name}))
    return items


def _loaded_items(path: Path, pairs: list[tuple[str, Trajectory | InputError]]) -> list[Item]:
    return [_item(f"{path.resolve()}::{movie}", {"kind": "loaded", "trajectory": traj,
                                                 "movie": movie, "path": str(path)})
            for movie, traj in pairs]


def items_from_file(path: Path) -> list[Item]:
    """The movies one input file stands for (a container file that cannot be read at all is
    one failed item, so the run goes on)."""
    try:
        kind = detect_format(path)
        if kind == "relion_micrographs":
            return _table_items(path)
        if kind == "csv":
            return _loaded_items(path, read_motion_csv(path))
        if kind == "scipion":
            return _loaded_items(path, read_scipion_movies(path))
        return [_per_file_item(path, kind)]
    except InputError as exc:
        return [_item(str(path.resolve()), {"kind": "error", "error": exc.one_line(),
                                            "movie": str(path), "path": str(path)})]


def expand_inputs(inputs: Sequence[str | Path], min_age: float = 0.0, strict: bool = True) -> list[Path]:
    """Files named by ``inputs``: files, globs, folders (their ``corrected_micrographs.star``
    if there is one, else every ``*.star`` and ``*-Full.log`` below them)."""
    now = time.time()
    files: list[Path] = []
    for raw in inputs:
        text = str(raw)
        path = Path(text)
        if path.is_dir():
            table = path / "corrected_micrographs.star"
            found = [table] if table.is_file() else [
                p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                and (p.suffix == ".star" or p.name.endswith("-Full.log"))]
            require_matches(text, len(found), "motion files", (".star", "-Full.log"), not strict)
            files += sorted(found, key=lambda p: natural_key(str(p)))
        elif path.is_file():
            files.append(path)
        elif glob.has_magic(text):
            found = [Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()]
            require_matches(text, len(found), "file", allow_empty=not strict)
            files += sorted(found, key=lambda p: natural_key(str(p)))
        elif strict:
            raise InputError(text, "input not found",
                             "give motion STARs, corrected_micrographs.star, *-Full.log, CSV or .sqlite")
    if min_age > 0:
        files = [p for p in files if _age(p, now) >= min_age]
    return list(dict.fromkeys(files))


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return -1.0


PER_FILE_KINDS = ("relion_motion_star", "motioncor2_log")


class InputPoller:
    """``poll()`` for the stream: the items of ``inputs`` now. Per-movie files seen before are
    not opened again; container files (micrographs STAR, CSV, sqlite) are re-read as they grow.
    A missing input is an error on the first poll unless ``watch`` (it may appear later)."""

    def __init__(self, inputs: Sequence[str | Path], min_age: float = 0.0, watch: bool = False):
        self.inputs, self.min_age, self.watch = list(inputs), min_age, watch
        self._known: dict[Path, Item] = {}
        self._polled = False

    def __call__(self) -> list[Item]:
        strict = not (self.watch or self._polled)
        self._polled = True
        items: list[Item] = []
        for path in expand_inputs(self.inputs, self.min_age, strict):
            if path in self._known:
                items.append(self._known[path])
                continue
            found = items_from_file(path)
            if len(found) == 1 and found[0].meta["kind"] in PER_FILE_KINDS:
                self._known[path] = found[0]
            items += found
        return items


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


# --------------------------------------------------------------------------- outputs

MOVIE_STAR_LABELS = {"max_frame_shift_A": "scopelineMaxFrameShift", "total_path_A": "scopelineTotalPath"}


class MaxShiftOutputs:
    """Regenerates every output of a run from its ordered journal records."""

    def __init__(self, out_dir: Path, params: MaxShiftParams, micrographs: str | Path | None,
                 warn: Callable[[str], None]):
        self.out_dir, self.params, self.warn = out_dir, params, warn
        self.micrographs_path = Path(micrographs) if micrographs else None
        self._table: MicrographsTable | None = None
        self._table_mtime = None
        self._last_plot = self._last_write = -float("inf")
        self._micrograph_table()  # a bad --micrographs stops the run before any work

    def _micrograph_table(self) -> MicrographsTable | None:
        if self.micrographs_path is None:
            return None
        mtime = self.micrographs_path.stat().st_mtime if self.micrographs_path.exists() else None
        if self._table is None or mtime != self._table_mtime:
            self._table, self._table_mtime = read_micrographs_table(self.micrographs_path), mtime
        return self._table

    def update(self, records: list[dict], closed: bool = False) -> dict | None:
        """Rewrite the outputs (at most every ``OUTPUT_INTERVAL_S`` while the run goes on:
        the journal, not the outputs, is what a resumed run relies on)."""
        now = time.monotonic()
        if not closed and now - self._last_write < OUTPUT_INTERVAL_S:
            return None
        self._last_write = now
        p, out = self.params, self.out_dir
        rows = [decide(r, p) for r in records]
        mic_records, mic_counts, warnings, optics = self._micrographs(rows)
        warnings += pixel_size_warnings(rows, p.pixel_size) + reader_warnings(rows)
        write_table(out / "motion.csv", rows, MOTION_COLUMNS)
        counts = write_status_sets(out, rows, "movies", "movies", optics, MOVIE_STAR_LABELS)
        if mic_records is not None:
            blocks = [self._table.block] if self._table is not None else []
            blocks += [r["micrograph_block"] for r in rows if "micrograph_block" in r]
            block = "micrographs" if optics is not None or not blocks else blocks[0]
            write_status_sets(out, mic_records, "micrographs", block, optics, row_key="micrograph_row",
                              statuses=("accepted", "discarded", "failed", "unmatched"),
                              name_label="rlnMicrographName")
        measured = [r for r in rows if r["status"] in ("accepted", "discarded")]
        summary = {
            "n_movies": len(rows), "n_accepted": counts["accepted"],
            "n_discarded": counts["discarded"], "n_failed": counts["failed"],
            "rejection": p.rejection, "max_frame_shift": p.max_frame_shift,
            "max_movie_shift": p.max_movie_shift, "early_dose": p.early_dose,
            "max_early_shift": p.max_early_shift,
            "median_max_frame_shift_A": _median(r.get("max_frame_shift_A") for r in measured),
            "median_total_path_A": _median(r.get("total_path_A") for r in measured),
            "micrographs": mic_counts, "n_warnings": len(warnings), "closed": closed,
            "parameters": p.model_dump(mode="json"),
        }
        write_json(out / "summary.json", summary)
        write_text(out / "warnings.txt", "".join(w + "\n" for w in warnings))
        if closed:
            for warning in warnings:
                self.warn(warning)
        if closed or time.monotonic() - self._last_plot > PLOT_INTERVAL_S:
            from .maxshift_plots import write_plots_and_report

            write_plots_and_report(out, rows, p, summary, warnings)
            self._last_plot = time.monotonic()
        return summary

    def _micrographs(self, rows: list[dict]):
        """Micrograph records (status of their movie), counts, warnings and the optics table."""
        import pandas as pd

        table = self._micrograph_table()
        optics_rows = [r["optics"] for r in rows if r.get("optics")]
        if table is not None and table.optics is not None:
            optics_rows += table.optics.to_dict("records")
        optics = pd.DataFrame(optics_rows).drop_duplicates() if optics_rows else None
        if optics is not None and "rlnOpticsGroup" in optics.columns:
            optics = optics.drop_duplicates(subset="rlnOpticsGroup").reset_index(drop=True)
        own = [r for r in rows if r.get("micrograph_row")]
        if table is None and not own:
            return None, None, [], optics
        mic_records = [{"key": r["key"], "status": r["status"], "micrograph_row": r["micrograph_row"]}
                       for r in own]
        warnings = []
        if table is not None:
            others = [r for r in rows if not r.get("micrograph_row")]
            links, unmatched, superseded = link_micrographs(others, table.rows)
            for k, i in links.items():
                others[k]["micrograph"] = table.rows[i].get("rlnMicrographName")
                mic_records.append({"key": others[k]["key"], "status": others[k]["status"],
                                    "micrograph_row": table.rows[i]})
            mic_records += [{"key": f"unmatched:{i}", "status": "unmatched",
                             "micrograph_row": table.rows[i]} for i in unmatched]
            lonely = [r["movie"] for k, r in enumerate(others) if k not in links]
            if lonely:
                warnings.append(f"{len(lonely)} movie(s) without a micrograph in {table.path}: "
                                + ", ".join(lonely[:20]) + (" ..." if len(lonely) > 20 else ""))
            if unmatched:
                warnings.append(f"{len(unmatched)} micrograph(s) of {table.path} without a movie among "
                                "the inputs: written to micrographs_unmatched.star")
            if superseded:
                warnings.append(f"{len(superseded)} non-dose-weighted micrograph(s) left out in favour "
                                "of their dose-weighted version")
        counts = {s: sum(m["status"] == s for m in mic_records)
                  for s in ("accepted", "discarded", "failed", "unmatched")}
        counts["without_micrograph"] = sum(1 for r in rows if not r.get("micrograph"))
        return mic_records, counts, warnings, optics


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


# --------------------------------------------------------------------------- orchestration


MEASUREMENT_FIELDS = ("pixel_size", "dose_per_frame", "early_dose", "use_accumulated_motion")


def measurement_journal(out_dir: Path, params: MaxShiftParams) -> Journal:
    """The journal of runs measuring with these parameters: changing the pixel size, dose or
    early-dose cut measures again; changing only thresholds or the rule re-decides."""
    measuring = json.dumps({k: getattr(params, k) for k in MEASUREMENT_FIELDS}, sort_keys=True)
    digest = hashlib.sha1(measuring.encode()).hexdigest()[:10]
    return Journal(Path(out_dir) / ".scopeline" / f"maxshift_{digest}.jsonl")


def run_maxshift(inputs: Sequence[str | Path], out_dir: str | Path,
                 params: MaxShiftParams = MaxShiftParams(), micrographs: str | Path | None = None,
                 stream_options: StreamOptions = StreamOptions(), scheduler: str | None = None,
                 workers: int | None = None, min_file_age: float | None = None,
                 warn: Callable[[str], None] = lambda message: None) -> dict:
    """Measure, decide and write every output of ``scopeline maxshift``; return the summary.

    Runs in this process unless ``workers`` > 1 or a ``scheduler`` is given (parsing small
    text files is faster here than shipping them to other processes). ``min_file_age``
    (default 5 s when watching, else 0) skips files still being written.
    """
    out_dir = Path(out_dir)
    ensure_output_dir(out_dir)
    age = (5.0 if stream_options.watch else 0.0) if min_file_age is None else min_file_age
    options = replace(stream_options, batch_size=max(stream_options.batch_size, MIN_BATCH))
    outputs = MaxShiftOutputs(out_dir, params, micrographs, warn)
    poll = InputPoller(inputs, age, stream_options.watch)
    parallel = bool(scheduler) or (workers is not None and workers > 1)
    with map_items(scheduler=scheduler, workers=workers if parallel else 0) as mapper:
        n_chunks = max(1, workers or 2) * CHUNKS_PER_WORKER if parallel else 1

        def process(batch: list[Item]) -> list[dict]:
            size = math.ceil(len(batch) / n_chunks)
            chunks = [batch[i:i + size] for i in range(0, len(batch), size)]
            args = [([it.key for it in c], [it.meta for it in c], params) for c in chunks]
            return [rec for recs in mapper(measure_chunk, args) for rec in recs]

        records = run_stream(poll, process, measurement_journal(out_dir, params), options,
                             outputs.update, description="maxshift")
    return outputs.update(records, closed=True)


__all__ = [
    "MaxShiftParams", "frame_steps", "max_frame_shift", "total_path", "early_late_motion",
    "criteria", "reject", "measure_trajectory", "measure_item", "decide", "InputPoller",
    "run_maxshift", "MOTION_COLUMNS",
]
