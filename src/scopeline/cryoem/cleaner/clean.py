"""``scopeline clean``: orchestration -- score picked coordinates by how clean their region
is, and remove those on carbon, contamination, crystalline ice or ethane.

The tool in the shape of :mod:`scopeline.tools`. One micrograph is one item: read its
coordinates and image -> downsample so a box is 16 px, robust-normalise -> U-Net bad-region
probability (tiled) -> per-pick ``good_region_score = 1 - mean probability in the box``
(the measurement, journaled and keyed by the parameters that change scores) -> keep when
``score > threshold`` (the decision, re-taken on every update, so ``rethreshold`` or
:meth:`scopeline.tools.Run.redecide` change it without running the model).

Outputs in ``DIR``: ``scores.csv`` (micrograph, x, y, good_region_score, kept, status, pick),
``micrographs.csv`` (status accepted / discarded / failed, error, counts, flagged fraction,
warning), ``micrographs_{accepted,discarded,failed}.star``, ``coords/`` (cleaned
coordinates, input format and file name), ``masks/<stem>.mrc`` (float32, micrograph shape,
1 = bad), ``thumbnails/<stem>.png``, ``score_histogram.png``, ``report.html``,
``summary.json``, ``params.json``. Pure functions are in :mod:`.cleaning`, input discovery
in :mod:`.discover`.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import pandas as pd

from scopeline.cryoem.cleaner.cleaning import (  # noqa: F401 - re-exported
    DEFAULT_THRESHOLD,
    GUARD_FRACTION,
    MEASURE_FIELDS,
    CleanParams,
    bad_region_probability,
    decide_micrograph,
    flagged_fraction,
    score_picks,
)
from scopeline.cryoem.cleaner.discover import (  # noqa: F401 - re-exported
    COORD_EXTENSIONS,
    MICROGRAPH_EXTENSIONS,
    coordinate_files,
    find_items,
    header_pixel_size,
    item_files,
    match_items,
    read_micrograph,
)
from scopeline.cryoem.cleaner.predict import BadRegionModel, weights_digest
from scopeline.cryoem.cleaner.score import inside_image
from scopeline.errors import ConfigError, InputError, describe
from scopeline.io.atomic import atomic_path, write_json
from scopeline.io.coords import read_coordinates, write_coordinates
from scopeline.outputs import default_optics, write_status_sets, write_table
from scopeline.parallel import validate_workers
from scopeline.present.report import write_html_report
from scopeline.stream import Item, StreamOptions
from scopeline.tools import ToolOutputs, ToolSpec, open_run, run_tool

SCORE_COLUMNS = ["micrograph", "x", "y", "good_region_score", "kept", "status", "pick"]
MICROGRAPH_COLUMNS = [
    "micrograph", "status", "error", "n_picks", "n_kept", "n_outside", "coords_file", "image_file",
    "coordinate_scale", "seconds", "flagged_fraction", "warning",
]
REPORT_EVERY = 8  # micrographs between report rewrites while the run goes on


# --------------------------------------------------------------------------- measuring


@functools.lru_cache(maxsize=2)
def _model(path: str | None, device: str, threads: int):
    """The model, loaded once per process (this one, or each Dask worker)."""
    return BadRegionModel(None if path is None else Path(path), device, threads)


def clean_one(item: Item, model, params: CleanParams, out_dir: Path, thumbnail: bool) -> dict:
    """Journal record for one micrograph (scores of its picks); never raises (problems make
    a ``failed`` record). Writes the measurement's own products: mask and thumbnail."""
    meta = item.meta
    start = time.monotonic()
    record = {
        "key": item.key,
        "micrograph": Path(meta["micrograph"] or meta["other"] or meta["coords"]).name,
        "coords_file": str(meta["coords"]) if meta["coords"] else None,
        "status": "failed",
        "error": None,
        "row": meta.get("row") or ({"rlnMicrographName": str(meta["micrograph"])} if meta["micrograph"] else None),
    }
    try:
        if meta["coords"] is not None:
            table, fmt = read_coordinates(meta["coords"])
            record.update(n_picks=len(table), x=table["x"].tolist(), y=table["y"].tolist(), format=fmt)
        if meta["problem"]:
            raise InputError(meta["micrograph"] or meta["other"] or meta["coords"], meta["problem"])
        image_path = Path(meta["other"] or meta["micrograph"])
        record["image_file"] = str(image_path)
        image, pixel_size = read_micrograph(image_path)
        scale = _coordinate_scale(meta, params, pixel_size)
        record["coordinate_scale"] = scale
        record["pixel_size"] = (pixel_size * scale) if pixel_size else None  # of the coordinates' micrograph
        box = params.box_size * scale
        if box > min(image.shape):
            raise InputError(
                image_path, f"box size {box:.0f} px is larger than the micrograph {image.shape[1]}x{image.shape[0]}",
                "give the box size in pixels of the picking micrographs",
            )
        prob, small = bad_region_probability(image, box, model, params)
        x, y = table["x"].to_numpy(float) * scale, table["y"].to_numpy(float) * scale
        inside = inside_image(x, y, image.shape)
        scores = score_picks(prob, x, y, box, image.shape)
        record.update(status="ok", scores=scores.tolist(), n_outside=int((~inside).sum()),
                      flagged_fraction=round(flagged_fraction(prob), 4))
        if (~inside).any():
            record["error"] = f"{image_path}: {int((~inside).sum())} of {len(x)} picks lie outside the image"
        if params.save_masks:
            save_mask(out_dir / "masks" / f"{meta['stem']}.mrc", prob, image.shape, pixel_size)
        if thumbnail:
            from scopeline.cryoem.cleaner.plots import thumbnail as draw_thumbnail
            from scopeline.present.figures import save_figure

            kept = decide_micrograph(record, params)["kept"]
            sx, sy = image.shape[1] / prob.shape[1], image.shape[0] / prob.shape[0]
            save_figure(draw_thumbnail(small, prob, (x[inside] + 0.5) / sx - 0.5, (y[inside] + 0.5) / sy - 0.5,
                                       kept[inside], box / sx, record["micrograph"]),
                        out_dir / "thumbnails" / f"{meta['stem']}.png", dpi=80)
    except Exception as exc:  # noqa: BLE001 - every problem becomes this micrograph's error
        record.update(status="failed", error=describe(exc, meta["micrograph"] or meta["coords"]))
    record["seconds"] = round(time.monotonic() - start, 3)
    return record


def measure_item(item: Item, params: CleanParams, out_dir: str, thumbnail: bool) -> dict:
    """:func:`clean_one` with the process's model (for Dask workers)."""
    model = _model(None if params.model is None else str(params.model), params.device, params.threads)
    return clean_one(item, model, params, Path(out_dir), thumbnail)


def _coordinate_scale(meta: dict, params: CleanParams, other_pixel_size: float | None) -> float:
    """Factor from coordinate pixels to the pixels of the image the model sees."""
    if meta["other"] is None:
        return 1.0
    picked = params.pixel_size or (header_pixel_size(meta["micrograph"]) if meta["micrograph"] else None)
    other = params.other_pixel_size or other_pixel_size
    if not picked or not other:
        raise ConfigError(
            meta["other"], "pixel sizes unknown, cannot rescale coordinates to the other micrographs",
            "pass --pixel-size and --other-pixel-size",
        )
    return float(picked) / float(other)


def save_mask(path: Path, prob: np.ndarray, shape: tuple[int, int], pixel_size: float | None) -> None:
    """The probability mask resized to the micrograph, float32 MRC, 1 = bad region."""
    import mrcfile

    full = cv2.resize(prob.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.clip(full, 0, 1).astype(np.float32))
            if pixel_size:
                mrc.voxel_size = pixel_size


def write_cleaned_coordinates(out_dir: Path, record: dict, params: CleanParams, kept: np.ndarray) -> None:
    """Kept picks of one micrograph in its input format and file name under ``coords/``."""
    table, fmt = read_coordinates(record["coords_file"])
    cleaned = table[np.asarray(kept, bool)].copy()
    cleaned.attrs = table.attrs
    box = params.box_size
    if params.output_scale == "other" and record.get("coordinate_scale", 1.0) != 1.0:
        scale = record["coordinate_scale"]
        cleaned["x"], cleaned["y"], box = cleaned["x"] * scale, cleaned["y"] * scale, box * scale
    write_coordinates(Path(out_dir) / "coords" / Path(record["coords_file"]).name, cleaned, fmt, box)


# --------------------------------------------------------------------------- outputs


class CleanOutputs(ToolOutputs):
    """Decides and regenerates the tables, STAR sets, cleaned coordinates, histogram and
    report from all records, the threshold and the overrides."""

    tool = "clean"

    def __init__(self, out_dir: Path, params: CleanParams, context: dict | None = None,
                 warn: Callable[[str], None] = lambda message: None):
        super().__init__(out_dir, params, context, warn)
        self.out = self.out_dir
        self._coords_written: dict[str, tuple] = {}  # key -> the kept picks written

    def decide(self, records: list[dict], closed: bool) -> list[dict]:
        """One row per micrograph (pure)."""
        return [decide_micrograph(r, self.params) for r in records]

    def write(self, rows: list[dict], records: list[dict], closed: bool = False) -> dict:
        score_rows, all_scores = [], []
        for r in rows:
            n = len(r.get("x") or [])
            scores = np.asarray(r.get("scores") or [np.nan] * n, float)
            measured = r["status"] != "failed"
            for i, (x, y) in enumerate(zip(r.get("x") or [], r.get("y") or [])):
                status = "failed" if not measured else ("ok" if np.isfinite(scores[i]) else "outside")
                score = None if not np.isfinite(scores[i]) else round(float(scores[i]), 5)
                score_rows.append({"micrograph": r["micrograph"], "x": x, "y": y, "good_region_score": score,
                                   "kept": bool(r["kept"][i]), "status": status, "pick": i})
            all_scores.append(scores)
            if measured:
                self._write_coords(r)
        mic_rows = [{c: r.get(c) for c in MICROGRAPH_COLUMNS} for r in rows]
        write_table(self.out / "scores.csv", score_rows, SCORE_COLUMNS)
        write_table(self.out / "micrographs.csv", mic_rows, MICROGRAPH_COLUMNS)
        optics, groups = default_optics(rows, "micrographs")
        counts = write_status_sets(self.out, [r for r in rows if r.get("row")], "micrographs", "micrographs",
                                   optics, name_label="rlnMicrographName", optics_groups=groups)
        scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
        flagged = [r for r in rows if r.get("warning")]
        summary = {
            "threshold": self.params.threshold,
            "n_micrographs": len(rows),
            "n_ok": sum(r["status"] != "failed" for r in rows),
            "n_accepted": counts["accepted"],
            "n_discarded": counts["discarded"],
            "n_failed": sum(r["status"] == "failed" for r in rows),
            "n_flagged_mostly_bad": len(flagged),
            "n_overridden": sum(bool(r.get("override")) for r in rows),
            "n_picks": len(score_rows),
            "n_scored": int(np.isfinite(scores).sum()),
            "n_kept": sum(row["kept"] for row in score_rows),
            "n_removed": sum(not row["kept"] and row["good_region_score"] is not None for row in score_rows),
            "closed": closed,
        }
        write_json(self.out / "summary.json", summary)
        write_json(self.out / "params.json", self.params.model_dump(mode="json"))
        if closed or len(records) % REPORT_EVERY == 0:
            self.report(rows, scores, summary)
        return summary

    def _write_coords(self, row: dict) -> None:
        """Cleaned coordinates of a micrograph, when its kept picks changed since written."""
        kept = tuple(np.flatnonzero(row["kept"]).tolist()) + (self.params.output_scale,)
        if self._coords_written.get(row["key"]) == kept:
            return
        write_cleaned_coordinates(self.out, row, self.params, row["kept"])
        self._coords_written[row["key"]] = kept

    def report(self, rows: list[dict], scores: np.ndarray, summary: dict) -> None:
        from scopeline.cryoem.cleaner.plots import score_histogram
        from scopeline.present.figures import save_figure

        histogram = save_figure(score_histogram(scores, self.params.threshold), self.out / "score_histogram.png")
        thumbs = sorted((self.out / "thumbnails").glob("*.png"))
        warnings = [f"{r['micrograph']}: {r['warning']}" for r in rows if r.get("warning")]
        warnings += [r["error"] for r in rows if r.get("error")]
        failed = pd.DataFrame([{"micrograph": r["micrograph"], "error": r["error"]} for r in rows if r["status"] == "failed"])
        write_html_report(self.out / "report.html", "scopeline clean", summary, [histogram, *thumbs], warnings,
                          {"failed micrographs": failed} if len(failed) else None)


# --------------------------------------------------------------------------- running


def run_clean(
    micrographs: Sequence[str | Path],
    coords: Sequence[str | Path],
    out_dir: str | Path,
    params: CleanParams,
    other_micrographs: Sequence[str | Path] | None = None,
    *,
    stream: StreamOptions | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    warn: Callable[[str], None] = lambda message: None,
) -> dict:
    """Clean every micrograph's picks; return the summary (also in ``DIR/summary.json``).

    Parameters
    ----------
    micrographs : sequence of str or Path
        Micrographs (MRC/TIFF): files, folders, globs or a STAR file.
    coords : sequence of str or Path
        Coordinate files, folders or globs, matched to micrographs by stem
        (``mic_autopick.star`` -> ``mic.mrc``).
    out_dir : str or Path
        Output folder.
    params : CleanParams
        Box size, threshold and model parameters.
    other_micrographs : sequence of str or Path, optional
        Run the model on these instead, coordinates rescaled by the pixel-size ratio.
    stream : StreamOptions, optional
        Batches (default ``params.batch_size``), ``--watch`` (keeps polling for new files),
        ``min_file_age`` (default 10 s when watching, else 0).
    scheduler : str, optional
        Address of a Dask scheduler.
    workers : int, optional
        Local worker processes, each with its own model; default (None) and 0 run in this
        process (the model already uses ``params.threads`` threads).
    warn : callable
        Receives the one-line error of each failed micrograph, and the guard's warning, as
        they happen.

    Returns
    -------
    dict
        The summary (``n_accepted``, ``n_kept``, ...).
    """
    validate_workers(workers)
    out = Path(out_dir)
    stream = stream or StreamOptions(batch_size=params.batch_size)
    min_age = stream.file_age
    _model(None if params.model is None else str(params.model), params.device, params.threads)  # a bad --model stops here
    parallel = bool(scheduler) or bool(workers)
    thumbnails_left = [params.thumbnails]

    def poll() -> list[Item]:
        items = find_items(micrographs, coords, other_micrographs, min_age, allow_empty=stream.watch)
        # while watching, an item still missing its partner file may get it later
        return [it for it in items if not (stream.watch and it.meta["problem"])]

    def measure(batch: list[Item], mapper) -> list[dict]:
        args = []
        for item in batch:
            thumbnail = thumbnails_left[0] > 0 and not item.meta["problem"]
            thumbnails_left[0] -= thumbnail
            args.append((item, params, str(out), thumbnail))
        records = mapper(measure_item, args)
        for record in records:
            if record["status"] == "failed" or record.get("error"):
                warn(record["error"])
            if record.get("flagged_fraction") is not None and record["flagged_fraction"] > GUARD_FRACTION:
                warn(f"{record['micrograph']}: {decide_micrograph(record, params)['warning']}")
        return records

    def leftovers(records: list[dict], journal) -> list[dict]:
        if not stream.watch:
            return records
        # files that never found their partner are failures, not silence
        done = {r["key"] for r in records}
        late = [measure_item(it, params, str(out), False)
                for it in find_items(micrographs, coords, other_micrographs, allow_empty=True)
                if it.meta["problem"] and it.key not in done]
        journal.append(late)
        return records + late

    return run_tool(TOOL, out, params, poll=poll, measure=measure, item_files=item_files,
                    stream=stream, scheduler=scheduler, workers=workers if parallel else 0,
                    warn=warn, after=leftovers)


def rethreshold(out_dir: str | Path, threshold: float) -> dict:
    """Apply a new threshold to the saved scores of ``out_dir`` without re-running the model:
    rewrites scores.csv, micrographs.csv, the STAR sets, coords/, summary.json, report.html
    and params.json (the same as ``open_run(out_dir).redecide(threshold=threshold)``)."""
    out = Path(out_dir)
    if not -1 <= threshold <= 1:
        raise ConfigError(None, f"--threshold {threshold} is outside [-1, 1]", "give a score between 0 and 1, or -1 to keep all")
    if not (out / ".scopeline" / "run.json").is_file():
        raise InputError(out, "not a scopeline clean output folder (.scopeline/run.json missing)",
                         "give the --out folder of a `scopeline clean` run")
    run = open_run(out)
    if run.tool != "clean":
        raise InputError(out, f"a scopeline {run.tool} output folder, not a clean one")
    if not run.records():
        raise InputError(out, "no saved scores found (journal empty)")
    summary = run.redecide(threshold=threshold)
    if summary is None:
        raise ConfigError(out, "the clean run on this folder is still going on",
                          "the new threshold applies at its next update")
    return summary


def measurement_identity(params: CleanParams) -> dict[str, str]:
    """What changes the scores besides the parameters: the content of the weights file (an
    upgrade of the shipped model, or a model retrained at the same path, is measured afresh)
    and the revision of the region rules (a scopeline whose rules decide otherwise does not
    reuse scores measured under the old ones)."""
    from scopeline.cryoem.cleaner.regions import RULES_REVISION

    return {"model_weights": weights_digest(params.model), "region_rules": str(RULES_REVISION)}


TOOL = ToolSpec(name="clean", params_model=CleanParams, measure_fields=MEASURE_FIELDS, outputs=CleanOutputs,
                measurement_identity=measurement_identity)
