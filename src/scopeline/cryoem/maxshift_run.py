"""``scopeline maxshift``: orchestration -- read alignment files, stream, decide, write.

The tool in the shape of :mod:`scopeline.tools`. Records in the journal hold measurements
only (the journal is keyed by :data:`~scopeline.cryoem.maxshift.MEASUREMENT_FIELDS`); the
accept/discard decision is taken when the outputs are written, so a new rule or threshold
re-decides every movie without reading a file again.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import InputError, describe
from ..io.atomic import write_json, write_text
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
from ..io.sets import expand_inputs as expand_paths
from ..io.sets import natural_key
from ..outputs import default_optics, write_status_sets, write_table
from ..parallel import validate_workers
from ..stream import Item, StreamOptions
from ..tools import ToolOutputs, ToolSpec, run_tool
from .maxshift import (
    MEASUREMENT_FIELDS,
    MaxShiftParams,
    _median,
    decide,
    link_micrographs,
    measure_trajectory,
    pixel_size_warnings,
    reader_warnings,
)

MOTION_COLUMNS = [
    "movie", "max_frame_shift_A", "total_path_A", "early_A", "late_A", "n_frames", "pixel_size",
    "status", "error", "micrograph", "rejected_by", "source", "key",
]
MIN_BATCH = 256  # small files: fewer, larger batches keep journal fsyncs and output rewrites rare
PLOT_INTERVAL_S = 60.0
OUTPUT_INTERVAL_S = 2.0
CHUNKS_PER_WORKER = 4  # Dask tasks per worker and batch

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


def _motion_files(folder: Path) -> list[Path]:
    """A folder's ``corrected_micrographs.star`` if there is one, else every ``*.star`` and
    ``*-Full.log`` below it."""
    table = folder / "corrected_micrographs.star"
    found = [table] if table.is_file() else [
        p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
        and (p.suffix == ".star" or p.name.endswith("-Full.log"))]
    return sorted(found, key=lambda p: natural_key(str(p)))


def expand_inputs(inputs: Sequence[str | Path], min_age: float = 0.0, strict: bool = True) -> list[Path]:
    """Files named by ``inputs``: files, globs, folders (see :func:`_motion_files`)."""
    return [p for p in expand_paths(inputs, (".star", "-Full.log"), folder=_motion_files, min_age=min_age,
                                    strict=strict, what="motion files", allow_empty=not strict,
                                    hint="give motion STARs, corrected_micrographs.star, *-Full.log, CSV or .sqlite")
            if p.is_file()]


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


# --------------------------------------------------------------------------- outputs

MOVIE_STAR_LABELS = {"max_frame_shift_A": "scopelineMaxFrameShift", "total_path_A": "scopelineTotalPath"}


class MaxShiftOutputs(ToolOutputs):
    """Decides and regenerates every output of a run from its ordered journal records.

    ``context``: ``micrographs``, the ``--micrographs`` STAR to split (or None).
    """

    tool = "maxshift"

    def __init__(self, out_dir: Path, params: MaxShiftParams, context: dict | None = None,
                 warn: Callable[[str], None] = lambda message: None):
        super().__init__(out_dir, params, context, warn)
        micrographs = self.context.get("micrographs")
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

    def decide(self, records: list[dict], closed: bool) -> list[dict]:
        """Each record with its status and ``rejected_by`` (pure, per record)."""
        return [decide(r, self.params) for r in records]

    def update(self, records: list[dict], closed: bool = False) -> dict | None:
        """Rewrite the outputs (at most every ``OUTPUT_INTERVAL_S`` while the run goes on:
        the journal, not the outputs, is what a resumed run relies on)."""
        now = time.monotonic()
        if not closed and now - self._last_write < OUTPUT_INTERVAL_S:
            return None
        self._last_write = now
        return super().update(records, closed)

    def write(self, rows: list[dict], records: list[dict], closed: bool = False) -> dict:
        p, out = self.params, self.out_dir
        mic_records, mic_counts, warnings, optics = self._micrographs(rows)
        warnings += pixel_size_warnings(rows, p.pixel_size) + reader_warnings(rows)
        write_table(out / "motion.csv", rows, MOTION_COLUMNS)
        movie_optics, groups = optics, None
        if optics is None:  # RELION 3.1+ needs one: the movies' pixel size is the shifts'
            movie_optics, groups = default_optics(rows, "movies")
        counts = write_status_sets(out, rows, "movies", "movies", movie_optics, MOVIE_STAR_LABELS,
                                   optics_groups=groups)
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
            "n_overridden": sum(bool(r.get("override")) for r in rows),
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



# --------------------------------------------------------------------------- orchestration


def run_maxshift(inputs: Sequence[str | Path], out_dir: str | Path,
                 params: MaxShiftParams | None = None, *, micrographs: str | Path | None = None,
                 stream: StreamOptions | None = None, scheduler: str | None = None,
                 workers: int | None = None, warn: Callable[[str], None] = lambda message: None) -> dict:
    """Measure, decide and write every output of ``scopeline maxshift``; return the summary.

    Parameters
    ----------
    inputs : sequence of str or Path
        RELION ``corrected_micrographs.star``, per-movie motion STARs, MotionCor2
        ``*-Full.log``, CSV (movie, frame, x, y), Scipion ``.sqlite``, folders or globs.
    out_dir : str or Path
        Output folder (``motion.csv``, ``summary.json``, ``movies_*.star``, plots, report).
    params : MaxShiftParams, optional
        Rule, thresholds (Å) and measurement parameters (default: ``MaxShiftParams()``).
    micrographs : str or Path, optional
        A micrographs STAR split with the movies' decisions.
    stream : StreamOptions, optional
        Batches (at least ``MIN_BATCH``), ``--watch``, ``min_file_age`` (default 10 s when
        watching, else 0).
    scheduler : str, optional
        Address of a Dask scheduler.
    workers : int, optional
        Local worker processes. Runs in this process unless ``workers`` > 1 or a
        ``scheduler`` is given (parsing small text files is faster here than shipping them
        to other processes).
    warn : callable
        Receives one-line warnings.

    Returns
    -------
    dict
        The summary, also in ``summary.json``.
    """
    validate_workers(workers)
    params = params or MaxShiftParams()
    stream = stream or StreamOptions()
    options = replace(stream, batch_size=max(stream.batch_size, MIN_BATCH))
    context = {"micrographs": None if micrographs is None else str(Path(micrographs).resolve())}
    outputs = MaxShiftOutputs(Path(out_dir), params, context, warn)
    poll = InputPoller(inputs, stream.file_age, stream.watch)
    parallel = bool(scheduler) or (workers is not None and workers > 1)
    n_chunks = max(1, workers or 2) * CHUNKS_PER_WORKER if parallel else 1

    def measure(batch: list[Item], mapper) -> list[dict]:
        size = math.ceil(len(batch) / n_chunks)
        chunks = [batch[i:i + size] for i in range(0, len(batch), size)]
        args = [([it.key for it in c], [it.meta for it in c], params) for c in chunks]
        return [rec for recs in mapper(measure_chunk, args) for rec in recs]

    return run_tool(TOOL, out_dir, params, poll=poll, measure=measure, item_files=item_files,
                    context=context, stream=options, scheduler=scheduler,
                    workers=workers if parallel else 0, warn=warn, outputs=outputs,
                    description="maxshift")


def item_files(item: Item) -> list[str]:
    """The file an item's measurement comes from (its motion file, or its table)."""
    meta = item.meta
    return [meta.get("path") or meta.get("table") or item.key.split("::")[0]]


TOOL = ToolSpec(name="maxshift", params_model=MaxShiftParams, measure_fields=MEASUREMENT_FIELDS,
                outputs=MaxShiftOutputs)

__all__ = ["run_maxshift", "InputPoller", "measure_item", "measure_chunk", "MaxShiftOutputs",
           "MOTION_COLUMNS", "TOOL", "expand_inputs", "items_from_file"]
