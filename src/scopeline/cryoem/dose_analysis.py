"""``scopeline dose``: orchestration of the dose analysis over a (streaming) movie set.

Measurements run on Dask in batches and are journaled; outputs are regenerated from the
journal after each batch (see :mod:`scopeline.stream`), so a killed run resumes cleanly.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Callable, Sequence

from ..errors import ConfigError, describe
from ..io.atomic import ensure_output_dir, write_json, write_text
from ..io.sets import ItemSet, movie_set
from ..outputs import write_status_sets, write_table
from ..parallel import map_items
from ..present.report import write_html_report
from ..stream import Item, Journal, StreamOptions, run_stream
from .dose import DoseParams, decide_doses, faulty_windows, measure_movie_dose

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
    doses = stats.pop("frame_doses")
    stats.pop("sampled_frames")
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


class DoseOutputs:
    """Regenerates every output of a run from its ordered records."""

    def __init__(self, out_dir: Path, params: DoseParams, metadata_dose: float | None,
                 optics, block: str, warn: Callable[[str], None]):
        self.out_dir, self.params, self.metadata_dose = out_dir, params, metadata_dose
        self.optics, self.block, self.warn = optics, block, warn
        self._warned: set[tuple[int, int]] | None = None
        self._last_plot = -float("inf")

    def update(self, records: list[dict], closed: bool = False) -> dict:
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
        outside = [r["status"] == "discarded" for r in rows if r["status"] in ("accepted", "discarded")]
        windows = faulty_windows(outside, p.window, p.max_faulty, closed=closed)
        messages = [f"movies {w.first}-{w.last} (in order of acquisition, failed ones not counted): "
                    f"{w.n_outside} of {w.n_movies} ({w.percent:.0f} %) outside ±{p.max_diff:g} % "
                    f"of the reference dose (limit {p.max_faulty:g} %)" for w in windows]
        if result.mismatch:
            messages.insert(0, result.mismatch)
        self._announce(windows, messages, result.mismatch)

        out = self.out_dir
        write_table(out / "dose.csv", rows, DOSE_COLUMNS)
        counts = write_status_sets(out, rows, "movies", self.block, self.optics, STAR_LABELS)
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


def run_dose(inputs: Sequence[str | Path], out_dir: str | Path, params: DoseParams = DoseParams(),
             stream: StreamOptions = StreamOptions(), scheduler: str | None = None,
             workers: int | None = None, warn: Callable[[str], None] = lambda m: None,
             min_file_age: float | None = None) -> dict:
    """Analyse the dose of every movie in ``inputs``; returns the summary.

    ``workers=0`` runs in this process without Dask (for debugging and small tests).
    ``min_file_age`` (default: 10 s when watching, else 0) skips files still being written.
    """
    out_dir = Path(out_dir)
    ensure_output_dir(out_dir)
    age = (10.0 if stream.watch else 0.0) if min_file_age is None else min_file_age
    first: ItemSet = movie_set(inputs, min_age=age, allow_empty=stream.watch)
    check_pixel_size(first.items, params)
    metadata_dose = params.dose_per_frame or next(
        (it.meta["dose_per_frame"] for it in first.items if it.meta.get("dose_per_frame")), None)
    outputs = DoseOutputs(out_dir, params, metadata_dose, first.optics, first.block, warn)
    gain = str(params.gain) if params.gain else None

    def poll() -> list[Item]:
        return movie_set(inputs, min_age=age, allow_empty=True).items  # checked above

    def measure_batch(batch: list[Item], mapper) -> list[dict]:
        args = [(it.key, it.row.get("rlnMicrographMovieName", it.key),
                 params.pixel_size or it.meta.get("pixel_size"), gain, params.eer_fractions)
                for it in batch]
        records = mapper(measure_item, args)
        for rec, it in zip(records, batch):
            rec["row"] = it.row
        return records

    journal = Journal.in_dir(out_dir)
    with map_items(scheduler=scheduler, workers=workers) as mapper:
        records = run_stream(poll, lambda b: measure_batch(b, mapper), journal, stream,
                             outputs.update, description="dose")
    return outputs.update(records, closed=True)
