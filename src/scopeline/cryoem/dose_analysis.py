"""``scopeline dose``: orchestration of the dose analysis over a (streaming) movie set.

The tool in the shape of :mod:`scopeline.tools`: movies are measured on Dask in batches and
journaled (the journal is keyed by ``pixel_size``, ``gain`` and ``eer_fractions``); every
output is regenerated from the journal by :class:`DoseOutputs`, so a killed run resumes
cleanly and a threshold change re-decides without reading a movie.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from ..errors import ConfigError, describe
from ..io.atomic import write_json, write_text
from ..io.sets import ItemSet, movie_set
from ..outputs import default_optics, write_status_sets, write_table
from ..present.report import write_html_report
from ..stream import Item, StreamOptions
from ..tools import ToolOutputs, ToolSpec, run_tool
from .dose import DoseParams, decide_doses, faulty_windows, measure_movie_dose

MEASURE_FIELDS = ("pixel_size", "gain", "eer_fractions")  # what changes a movie's measurement

DOSE_COLUMNS = [
    "movie", "mean_dose", "std_dose", "min_dose", "max_dose", "diff_percent", "status", "error",
    "reference_dose", "n_frames", "pixel_size", "trend_percent", "first_frame_dose",
    "middle_frame_dose", "last_frame_dose",
]
STAR_LABELS = {  # measurements added to the output movie sets
    "mean_dose": "scopelineDoseMean", "std_dose": "scopelineDoseStd",
    "min_dose": "scopelineDoseMin", "max_dose": "scopelineDoseMax",
    "diff_percent": "scopelineDoseDiffPercent",
}
PLOT_INTERVAL_S = 30.0


@functools.lru_cache(maxsize=2)
def _gain(path: str | None):
    """The gain reference, read once per worker process rather than once per movie."""
    from ..io.movies import read_gain

    return None if path is None else read_gain(path)


def measure_item(key: str, name: str, pixel_size: float | None, gain: str | None,
                 eer_fractions: int | None = None) -> dict:
    """Journal record for one movie; never raises (a bad movie is a ``failed`` record)."""
    record = {"key": key, "movie": name}
    try:
        stats = measure_movie_dose(key, pixel_size=pixel_size, gain=_gain(gain),
                                   eer_fractions=eer_fractions)
    except Exception as exc:  # noqa: BLE001 - every problem becomes the item's error
        return {**record, "status": "failed", "error": describe(exc, key)}
    doses = stats["frame_doses"]  # kept with the sampled frame indexes (the UI's item page)
    return {**record, **stats, "status": "measured", "error": "",
            "first_frame_dose": doses[0], "middle_frame_dose": doses[len(doses) // 2],
            "last_frame_dose": doses[-1]}


def check_pixel_size(items: Sequence[Item], params: DoseParams) -> None:
    """Stop early, with the fix, when no pixel size is known anywhere."""
    if params.pixel_size or not items or any(it.meta.get("pixel_size") for it in items):
        return
    from ..io.movies import open_movie

    first = items[0].key
    try:
        with open_movie(first) as movie:
            if movie.pixel_size:
                return
    except Exception:  # noqa: BLE001 - an unreadable first movie is reported per item
        return
    raise ConfigError(first, "no pixel size in the movie header or the input set",
                      "give --pixel-size in Å/px")


class DoseOutputs(ToolOutputs):
    """Decides and regenerates every output of a run from its ordered records.

    ``context``: ``metadata_dose`` (e/Å²/frame or None), ``optics`` (the input's optics
    rows or None), ``block`` (the input's STAR block name).
    """

    tool = "dose"

    def __init__(self, out_dir: Path, params: DoseParams, context: dict | None = None,
                 warn: Callable[[str], None] = lambda message: None):
        super().__init__(out_dir, params, context, warn)
        ctx = self.context
        self.metadata_dose, self.block = ctx.get("metadata_dose"), ctx.get("block") or "movies"
        self.optics = pd.DataFrame(ctx["optics"]) if ctx.get("optics") else None
        self._warned: set[tuple[int, int]] | None = None
        self._last_plot = -float("inf")
        self._result = None

    def decide(self, records: list[dict], closed: bool) -> list[dict]:
        """Rows: each record with its status, reference and difference (pure, no I/O)."""
        p = self.params
        measured = [r for r in records if r["status"] != "failed"]
        result = decide_doses([r["mean_dose"] for r in measured], self.metadata_dose,
                              p.samples, p.max_diff, p.metadata_tolerance, closed=closed)
        rows = []
        decided = iter(result.decisions)
        for r in records:
            row = dict(r)
            if r["status"] != "failed":
                d = next(decided)
                row.update(status=d.status, reference_dose=d.reference, diff_percent=d.diff_percent)
            rows.append(row)
        self._result = result
        return rows

    def write(self, rows: list[dict], records: list[dict], closed: bool = False) -> dict:
        p, result = self.params, self._result
        rule = [r.get("rule_status", r["status"]) for r in rows]
        outside = [s == "discarded" for s in rule if s in ("accepted", "discarded")]
        windows = faulty_windows(outside, p.window, p.max_faulty, closed=closed)
        messages = [f"movies {w.first}-{w.last} (in order of acquisition, failed ones not counted): "
                    f"{w.n_outside} of {w.n_movies} ({w.percent:.0f} %) outside ±{p.max_diff:g} % "
                    f"of the reference dose (limit {p.max_faulty:g} %)" for w in windows]
        if result.mismatch:
            messages.insert(0, result.mismatch)
        self._announce(windows, messages, result.mismatch)

        out = self.out_dir
        write_table(out / "dose.csv", rows, DOSE_COLUMNS)
        optics, groups = self.optics, None
        if optics is None:
            optics, groups = default_optics(rows, "movies")
        counts = write_status_sets(out, rows, "movies", self.block, optics, STAR_LABELS,
                                   optics_groups=groups)
        lower = upper = None
        if result.reference is not None:
            lower = result.reference * (1 - p.max_diff / 100)
            upper = result.reference * (1 + p.max_diff / 100)
        summary = {
            "reference_dose": result.reference, "reference_source": result.source,
            "lower": lower, "upper": upper,
            "n_accepted": counts["accepted"], "n_discarded": counts["discarded"],
            "n_failed": counts["failed"],
            "n_pending": sum(r["status"] == "pending" for r in rows),
            "n_overridden": sum(bool(r.get("override")) for r in rows),
            "metadata_dose": self.metadata_dose, "metadata_mismatch": result.mismatch,
            "n_warnings": len(windows), "closed": closed, "parameters": p.model_dump(mode="json"),
        }
        write_json(out / "summary.json", summary)
        write_text(out / "warnings.txt", "".join(m + "\n" for m in messages))
        if closed or time.monotonic() - self._last_plot > PLOT_INTERVAL_S:
            self._plots(rows, summary, messages)
        return summary

    def _announce(self, windows, messages, mismatch) -> None:
        keys = {(w.first, w.last) for w in windows}
        if self._warned is None:  # outputs of a resumed run: already announced before
            self._warned = keys
            return
        for w, m in zip(windows, messages[1:] if mismatch else messages):
            if (w.first, w.last) not in self._warned:
                self.warn(m)
        self._warned |= keys

    def _plots(self, rows, summary, messages) -> None:
        from ..present.figures import save_figure
        from .dose_plots import plot_dose_difference, plot_dose_vs_time

        out = self.out_dir
        save_figure(plot_dose_vs_time(rows, self.params.max_diff), out / "dose_vs_time.png", dpi=110)
        save_figure(plot_dose_difference(rows, self.params.max_diff), out / "dose_difference.png", dpi=110)
        shown = {k: v for k, v in summary.items() if k != "parameters"}
        write_html_report(out / "report.html", "scopeline dose", shown,
                          [out / "dose_vs_time.png", out / "dose_difference.png"], messages)
        self._last_plot = time.monotonic()


def run_dose(inputs: Sequence[str | Path], out_dir: str | Path, params: DoseParams = DoseParams(), *,
             stream: StreamOptions | None = None, scheduler: str | None = None,
             workers: int | None = None, warn: Callable[[str], None] = lambda m: None) -> dict:
    """Analyse the dose of every movie in ``inputs``; return the summary.

    Parameters
    ----------
    inputs : sequence of str or Path
        Movie files, globs, folders, a RELION STAR or a Scipion ``.sqlite`` set.
    out_dir : str or Path
        Output folder (``dose.csv``, ``summary.json``, ``movies_*.star``, plots, report).
    params : DoseParams
        Measurement and decision parameters.
    stream : StreamOptions, optional
        Batches, ``--watch``, ``min_file_age`` (default 10 s when watching, else 0).
    scheduler : str, optional
        Address of a Dask scheduler (default: a local cluster).
    workers : int, optional
        Local worker processes (default: one per core; 0 = in this process, no Dask).
    warn : callable
        Receives one-line warnings (anomalous windows) as they are found.

    Returns
    -------
    dict
        The summary (``reference_dose``, ``n_accepted``, ...), also in ``summary.json``.
    """
    stream = stream or StreamOptions()
    age = stream.file_age
    first: ItemSet = movie_set(inputs, min_age=age, allow_empty=stream.watch)
    check_pixel_size(first.items, params)
    metadata_dose = params.dose_per_frame or next(
        (it.meta["dose_per_frame"] for it in first.items if it.meta.get("dose_per_frame")), None)
    optics = None if first.optics is None else first.optics.to_dict("records")
    context = {"metadata_dose": metadata_dose, "optics": optics, "block": first.block}
    gain = str(params.gain) if params.gain else None

    def poll() -> list[Item]:
        return movie_set(inputs, min_age=age, allow_empty=True).items  # checked above

    def measure(batch: list[Item], mapper) -> list[dict]:
        args = [(it.key, it.row.get("rlnMicrographMovieName", it.key),
                 params.pixel_size or it.meta.get("pixel_size"), gain, params.eer_fractions)
                for it in batch]
        records = mapper(measure_item, args)
        for rec, it in zip(records, batch):
            rec["row"] = it.row
        return records

    return run_tool(TOOL, out_dir, params, poll=poll, measure=measure, item_files=lambda it: [it.key],
                    context=context, stream=stream, scheduler=scheduler, workers=workers, warn=warn)


TOOL = ToolSpec(name="dose", params_model=DoseParams, measure_fields=MEASURE_FIELDS, outputs=DoseOutputs)
