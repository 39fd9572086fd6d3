"""``scopeline clean``: score picked coordinates by how clean their region is, and remove
those on carbon, contamination, crystalline ice or ethane.

One micrograph is one item: read its coordinates and image -> downsample so a box is
16 px, robust-normalise -> U-Net bad-region probability (tiled) -> per-pick
``good_region_score = 1 - mean probability in the box`` -> keep when ``score > threshold``.
Records go to the stream journal; every output is regenerated from the journal and the
threshold, which is how ``rethreshold`` changes the decision without re-running the model.

Outputs in ``DIR``: ``scores.csv`` (micrograph, x, y, good_region_score, kept, status),
``micrographs.csv`` (status / error / counts per micrograph), ``coords/`` (cleaned
coordinates, input format and file name), ``masks/<stem>.mrc`` (float32, micrograph
shape, 1 = bad), ``thumbnails/<stem>.png``, ``score_histogram.png``, ``report.html``,
``summary.json``, ``params.json``.
"""

from __future__ import annotations

import glob
import time
from pathlib import Path
from typing import Callable, Literal, Sequence

import cv2
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from scopeline.cryoem.cleaner.predict import BadRegionModel, predict_probability
from scopeline.cryoem.cleaner.preprocess import downsample_factor, downsample, robust_normalise
from scopeline.cryoem.cleaner.score import good_region_scores, inside_image, keep_decision
from scopeline.errors import ConfigError, InputError, describe
from scopeline.io.atomic import atomic_path, ensure_output_dir, write_json
from scopeline.io.coords import micrograph_key, read_coordinates, write_coordinates
from scopeline.io.sets import MICROGRAPH_LABEL, movie_set, natural_key, require_matches
from scopeline.outputs import write_table
from scopeline.present.report import write_html_report
from scopeline.stream import Item, Journal, StreamOptions, run_stream

DEFAULT_THRESHOLD = 0.65  # balanced on validation seeds: see docs/clean.md
MICROGRAPH_EXTENSIONS = (".mrc", ".tif", ".tiff")
COORD_EXTENSIONS = (".pos", ".star", ".box", ".csv", ".txt")
SCORE_COLUMNS = ["micrograph", "x", "y", "good_region_score", "kept", "status", "pick"]
MICROGRAPH_COLUMNS = [
    "micrograph", "status", "error", "n_picks", "n_kept", "n_outside", "coords_file", "image_file",
    "coordinate_scale", "seconds",
]


class CleanParams(BaseModel):
    """Parameters of ``scopeline clean``."""

    model_config = ConfigDict(extra="forbid")

    box_size: float = Field(gt=0, description="particle box (px of the coordinates' micrographs)")
    threshold: float = Field(DEFAULT_THRESHOLD, ge=-1, le=1, description="keep picks with score > T; -1 keeps all")
    save_masks: bool = False
    thumbnails: int = Field(0, ge=0, description="overlay images for the first N micrographs")
    batch_size: int = Field(16, ge=1)
    model: Path | None = Field(None, description="ONNX (.onnx) or torch (.pt) weights; default: shipped")
    device: Literal["auto", "cpu", "cuda", "torch-cpu"] = "auto"
    threads: int = Field(2, ge=1)
    tile: int = Field(256, ge=64)
    overlap: int = Field(32, ge=0)
    invert_contrast: bool = Field(False, description="micrographs have bright particles on dark")
    pixel_size: float | None = Field(None, gt=0, description="A/px of the coordinates' micrographs")
    other_pixel_size: float | None = Field(None, gt=0, description="A/px of --other-micrographs")
    output_scale: Literal["coordinates", "other"] = Field(
        "coordinates", description="write cleaned coordinates at the input scale or the other micrographs' scale"
    )


def read_micrograph(path: str | Path) -> tuple[np.ndarray, float | None]:
    """A 2-D float32 micrograph and its pixel size (A/px or None)."""
    from scopeline.io.movies import read_image

    image, pixel_size = read_image(path)
    if image.ndim != 2:
        raise InputError(path, f"expected a 2-D micrograph, got shape {image.shape}")
    return image, pixel_size


def header_pixel_size(path: str | Path) -> float | None:
    """Pixel size from a micrograph header without reading the image (MRC), else None."""
    path = Path(path)
    if path.suffix.lower() == ".mrc":
        import mrcfile

        try:
            with mrcfile.open(path, header_only=True, permissive=True) as mrc:
                size = float(mrc.voxel_size.x)
            return size if size > 0 and abs(size - 1.0) > 1e-6 else None  # 1.0 = unset
        except (OSError, ValueError):
            return None
    try:
        return read_micrograph(path)[1]
    except Exception:  # noqa: BLE001 - only the pixel size is wanted here
        return None


def _expand(inputs: Sequence[str | Path], extensions: Sequence[str], allow_empty: bool = False) -> list[Path]:
    """Files named by paths, folders or globs, with one of ``extensions``; missing -> error,
    an empty folder or a glob matching nothing too unless ``allow_empty`` (watching)."""
    found: list[Path] = []
    for raw in inputs:
        text = str(raw)
        path = Path(text)
        if path.is_dir():
            here = sorted((p for p in path.iterdir() if p.suffix.lower() in extensions), key=lambda p: natural_key(p.name))
            require_matches(text, len(here), "files", extensions, allow_empty)
            found += here
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(text):
            here = sorted((Path(p) for p in glob.glob(text, recursive=True)), key=lambda p: natural_key(str(p)))
            require_matches(text, len(here), "file", allow_empty=allow_empty)
            found += here
        else:
            raise InputError(text, "input not found", "give existing files, a folder or a glob")
    return list({p.resolve(): p for p in found}.values())


def coordinate_files(inputs: Sequence[str | Path], allow_empty: bool = False) -> list[Path]:
    """Coordinate files named by ``inputs``; a RELION index STAR (``autopick.star`` with
    ``rlnMicrographCoordinates``) stands for the per-micrograph files it lists."""
    from scopeline.io.sets import resolve_relion_path
    from scopeline.io.star import read_star

    files: list[Path] = []
    for path in _expand(inputs, COORD_EXTENSIONS, allow_empty):
        listed = None
        if path.suffix.lower() == ".star":
            try:
                listed = next((b for b in read_star(path).values() if "rlnMicrographCoordinates" in b.columns), None)
            except InputError:
                listed = None  # an unreadable file is reported when its micrograph is processed
        if listed is None:
            files.append(path)
        else:
            files += [resolve_relion_path(str(name), path) for name in listed["rlnMicrographCoordinates"]]
    return files


def match_items(micrographs: list[Path], coords: list[Path], others: list[Path] | None) -> list[Item]:
    """One item per micrograph stem: its coordinate file and (optionally) other micrograph.

    An item lacking a coordinate file, a micrograph, or its other micrograph carries the
    problem in ``meta["problem"]`` and is recorded as failed.
    """
    by_mic = {p.stem: p for p in micrographs}
    by_other = {p.stem: p for p in (others or [])}
    by_coord: dict[str, Path] = {}
    for c in coords:
        key = micrograph_key(c) if micrograph_key(c) in by_mic or micrograph_key(c) in by_other else c.stem
        by_coord.setdefault(key, c)
    stems = list(by_mic) + [s for s in by_other if s not in by_mic] + [s for s in by_coord if s not in by_mic and s not in by_other]
    items = []
    for stem in stems:
        mic, coord, other = by_mic.get(stem), by_coord.get(stem), by_other.get(stem)
        problem = None
        if coord is None:
            problem = "no coordinate file matches this micrograph"
        elif others is not None and other is None:
            problem = "no micrograph in --other-micrographs matches these coordinates"
        elif others is None and mic is None:
            problem = "no micrograph matches this coordinate file"
        source = mic or other or coord
        items.append(
            Item(
                key=str(Path(source).resolve()) + "|" + stem,
                meta={"stem": stem, "micrograph": mic, "coords": coord, "other": other, "problem": problem},
            )
        )
    return items


def clean_one(item: Item, model: BadRegionModel, params: CleanParams, out_dir: Path, thumbnail: bool) -> dict:
    """Journal record for one micrograph; never raises (problems make a ``failed`` record)."""
    meta = item.meta
    start = time.monotonic()
    record = {
        "key": item.key,
        "micrograph": Path(meta["micrograph"] or meta["other"] or meta["coords"]).name,
        "coords_file": str(meta["coords"]) if meta["coords"] else None,
        "status": "failed",
        "error": None,
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
        box = params.box_size * scale
        if box > min(image.shape):
            raise InputError(
                image_path, f"box size {box:.0f} px is larger than the micrograph {image.shape[1]}x{image.shape[0]}",
                "give the box size in pixels of the picking micrographs",
            )
        prob, small = bad_region_probability(image, box, model, params)
        sx, sy = image.shape[1] / prob.shape[1], image.shape[0] / prob.shape[0]
        x, y = table["x"].to_numpy(float) * scale, table["y"].to_numpy(float) * scale
        inside = inside_image(x, y, image.shape)
        scores = np.full(len(x), np.nan)
        scores[inside] = good_region_scores(prob, x[inside], y[inside], box, sx, sy)
        record.update(status="ok", scores=scores.tolist(), n_outside=int((~inside).sum()))
        if (~inside).any():
            record["error"] = f"{image_path}: {int((~inside).sum())} of {len(x)} picks lie outside the image"
        kept = keep_decision(scores, params.threshold)
        write_cleaned_coordinates(out_dir, record, params, kept)
        if params.save_masks:
            save_mask(out_dir / "masks" / f"{meta['stem']}.mrc", prob, image.shape, pixel_size)
        if thumbnail:
            from scopeline.cryoem.cleaner.plots import thumbnail as draw_thumbnail
            from scopeline.present.figures import save_figure

            save_figure(draw_thumbnail(small, prob, (x[inside] + 0.5) / sx - 0.5, (y[inside] + 0.5) / sy - 0.5,
                                       kept[inside], box / sx, record["micrograph"]),
                        out_dir / "thumbnails" / f"{meta['stem']}.png", dpi=80)
    except Exception as exc:  # noqa: BLE001 - every problem becomes this micrograph's error
        record.update(status="failed", error=describe(exc, meta["micrograph"] or meta["coords"]))
    record["seconds"] = round(time.monotonic() - start, 3)
    return record


def bad_region_probability(
    image: np.ndarray, box: float, model: BadRegionModel, params: CleanParams
) -> tuple[np.ndarray, np.ndarray]:
    """(bad-region probability, normalised image), both at model scale (box ~16 px)."""
    if not np.isfinite(image).all():
        raise ValueError("micrograph contains NaN or Inf values")
    small = robust_normalise(downsample(image, downsample_factor(box)))
    if params.invert_contrast:
        small = -small
    return predict_probability(small, model, params.tile, params.overlap), small


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
    cleaned = table[kept].copy()
    cleaned.attrs = table.attrs
    box = params.box_size
    if params.output_scale == "other" and record.get("coordinate_scale", 1.0) != 1.0:
        scale = record["coordinate_scale"]
        cleaned["x"], cleaned["y"], box = cleaned["x"] * scale, cleaned["y"] * scale, box * scale
    write_coordinates(Path(out_dir) / "coords" / Path(record["coords_file"]).name, cleaned, fmt, box)


class CleanOutputs:
    """Regenerates the tables, histogram and report from all records and the threshold."""

    def __init__(self, out_dir: Path, params: CleanParams):
        self.out = Path(out_dir)
        self.params = params

    def update(self, records: list[dict], closed: bool = False) -> dict:
        threshold = self.params.threshold
        score_rows, mic_rows, all_scores = [], [], []
        for r in records:
            scores = np.asarray(r.get("scores") or [np.nan] * len(r.get("x") or []), float)
            kept = keep_decision(scores, threshold) if r["status"] == "ok" else np.zeros(len(scores), bool)
            for i, (x, y) in enumerate(zip(r.get("x") or [], r.get("y") or [])):
                status = r["status"] if r["status"] != "ok" else ("ok" if np.isfinite(scores[i]) else "outside")
                score = None if not np.isfinite(scores[i]) else round(float(scores[i]), 5)
                score_rows.append({"micrograph": r["micrograph"], "x": x, "y": y, "good_region_score": score,
                                   "kept": bool(kept[i]), "status": status, "pick": i})
            all_scores.append(scores)
            mic_rows.append({**{c: r.get(c) for c in MICROGRAPH_COLUMNS}, "n_kept": int(kept.sum())})
        write_table(self.out / "scores.csv", score_rows, SCORE_COLUMNS)
        write_table(self.out / "micrographs.csv", mic_rows, MICROGRAPH_COLUMNS)
        scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
        summary = {
            "threshold": threshold,
            "n_micrographs": len(records),
            "n_ok": sum(r["status"] == "ok" for r in records),
            "n_failed": sum(r["status"] == "failed" for r in records),
            "n_picks": len(score_rows),
            "n_scored": int(np.isfinite(scores).sum()),
            "n_kept": sum(row["kept"] for row in score_rows),
            "n_removed": sum(not row["kept"] and row["good_region_score"] is not None for row in score_rows),
            "closed": closed,
        }
        write_json(self.out / "summary.json", summary)
        if closed or len(records) % 8 == 0:
            self.report(records, scores, summary)
        return summary

    def report(self, records: list[dict], scores: np.ndarray, summary: dict) -> None:
        from scopeline.cryoem.cleaner.plots import score_histogram
        from scopeline.present.figures import save_figure

        histogram = save_figure(score_histogram(scores, self.params.threshold), self.out / "score_histogram.png")
        thumbs = sorted((self.out / "thumbnails").glob("*.png"))
        warnings = [r["error"] for r in records if r.get("error")]
        failed = pd.DataFrame([{"micrograph": r["micrograph"], "error": r["error"]} for r in records if r["status"] == "failed"])
        write_html_report(self.out / "report.html", "scopeline clean", summary, [histogram, *thumbs], warnings,
                          {"failed micrographs": failed} if len(failed) else None)


def run_clean(
    micrographs: Sequence[str | Path],
    coords: Sequence[str | Path],
    out_dir: str | Path,
    params: CleanParams,
    other_micrographs: Sequence[str | Path] | None = None,
    stream: StreamOptions | None = None,
    warn: Callable[[str], None] = lambda message: None,
    min_file_age: float | None = None,
) -> dict:
    """Clean every micrograph's picks; returns the summary (also in ``DIR/summary.json``).

    ``micrographs``/``coords``/``other_micrographs``: files, folders or globs (micrographs
    also a STAR file). Coordinates match micrographs by stem (``mic_autopick.star`` ->
    ``mic.mrc``). With ``other_micrographs`` the model runs on those, coordinates rescaled
    by the pixel-size ratio. ``stream.watch`` keeps polling for new files; ``min_file_age``
    (default 10 s when watching, else 0) skips files still being written. ``warn`` gets the
    one-line error of each failed micrograph as it happens.
    """
    out = Path(out_dir)
    ensure_output_dir(out)
    stream = stream or StreamOptions(batch_size=params.batch_size)
    if min_file_age is None:
        min_file_age = 10.0 if stream.watch else 0.0
    write_json(out / "params.json", params.model_dump(mode="json"))
    model = BadRegionModel(params.model, params.device, params.threads)
    outputs = CleanOutputs(out, params)
    done_thumbnails = [0]

    def poll() -> list[Item]:
        items = find_items(micrographs, coords, other_micrographs, min_file_age, allow_empty=stream.watch)
        # while watching, an item still missing its partner file may get it later
        return [it for it in items if not (stream.watch and it.meta["problem"])]

    def process(batch: list[Item]) -> list[dict]:
        records = []
        for item in batch:
            want_thumbnail = done_thumbnails[0] < params.thumbnails and not item.meta["problem"]
            record = clean_one(item, model, params, out, want_thumbnail)
            done_thumbnails[0] += want_thumbnail and record["status"] == "ok"
            if record["status"] == "failed" or record.get("error"):
                warn(record["error"])
            records.append(record)
        return records

    journal = scores_journal(out, params)
    fresh: set[str] = set()
    records = run_stream(poll, lambda batch: _remember(process(batch), fresh), journal, stream, outputs.update,
                         description="clean")
    for r in records:  # resumed from the journal: decide again with this run's threshold
        if r["key"] not in fresh and r["status"] == "ok":
            write_cleaned_coordinates(out, r, params, keep_decision(np.asarray(r["scores"], float), params.threshold))
    if stream.watch:  # files that never found their partner are failures, not silence
        leftovers = [it for it in find_items(micrographs, coords, other_micrographs, allow_empty=True)
                     if it.meta["problem"]]
        done = {r["key"] for r in records}
        late = [clean_one(it, model, params, out, False) for it in leftovers if it.key not in done]
        journal.append(late)
        records = records + late
    return outputs.update(records, closed=True)


def _remember(records: list[dict], keys: set[str]) -> list[dict]:
    keys.update(r["key"] for r in records)
    return records


SCORE_AFFECTING = ("box_size", "model", "tile", "overlap", "invert_contrast", "pixel_size", "other_pixel_size", "output_scale")


def scores_journal(out_dir: Path, params: CleanParams) -> Journal:
    """The journal of scores for these parameters: changing the box or the model starts a
    new one, changing the threshold (or masks, thumbnails) does not."""
    import hashlib
    import json

    key = json.dumps({k: str(getattr(params, k)) for k in SCORE_AFFECTING}, sort_keys=True)
    return Journal(Path(out_dir) / ".scopeline" / f"clean_{hashlib.sha1(key.encode()).hexdigest()[:12]}.jsonl")


def find_items(micrographs, coords, other_micrographs, min_age: float = 0.0,
               allow_empty: bool = False) -> list[Item]:
    """Items for the current contents of the inputs (polled again when watching); files
    modified less than ``min_age`` seconds ago are taken as still being written. An input
    naming nothing is an error unless ``allow_empty`` (watching)."""
    sets = movie_set(micrographs, MICROGRAPH_EXTENSIONS, min_age=min_age, label=MICROGRAPH_LABEL,
                     allow_empty=allow_empty) if micrographs else None
    mics = [Path(it.key) for it in sets.items] if sets else []
    others = (_settled(_expand(other_micrographs, MICROGRAPH_EXTENSIONS, allow_empty), min_age)
              if other_micrographs is not None else None)
    return match_items(mics, _settled(coordinate_files(coords, allow_empty), min_age), others)


def _settled(paths: list[Path], min_age: float) -> list[Path]:
    if min_age <= 0:
        return paths
    now = time.time()
    return [p for p in paths if p.exists() and now - p.stat().st_mtime >= min_age]


def rethreshold(out_dir: str | Path, threshold: float) -> dict:
    """Apply a new threshold to the saved scores of ``out_dir`` without re-running the model:
    rewrites scores.csv, micrographs.csv, coords/, summary.json, report.html and params.json."""
    out = Path(out_dir)
    params_path = out / "params.json"
    if not params_path.is_file():
        raise InputError(out, "not a scopeline clean output folder (params.json missing)")
    if not -1 <= threshold <= 1:
        raise ConfigError(None, f"threshold {threshold} is outside [-1, 1]", "give a score between 0 and 1, or -1 to keep all")
    params = CleanParams.model_validate_json(params_path.read_text()).model_copy(update={"threshold": threshold})
    records = scores_journal(out, params).load()
    if not records:
        raise InputError(out, "no saved scores found (journal empty)")
    for r in records:
        if r["status"] == "ok":
            write_cleaned_coordinates(out, r, params, keep_decision(np.asarray(r["scores"], float), threshold))
    write_json(params_path, params.model_dump(mode="json"))
    return CleanOutputs(out, params).update(records, closed=True)
