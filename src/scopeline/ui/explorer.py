"""The unit explorer of a finished miniscope run (``/miniscope/explorer``).

Large data never travels whole: the footprints are drawn once, server-side, as outlines over
the mean frame (one PNG); click-to-unit uses a label image (one uint16 per pixel: row + 1,
0 = no unit) that the page reads as an ArrayBuffer; a unit's C and S traces are read lazily
from the run's zarr store (only that unit's row, only the frames asked for) and decimated to
the min and max of each pixel column of the plot (:func:`minmax_columns`). Curation goes to
``RUN/curation.json`` (:mod:`scopeline.miniscope.export_curated`) and is applied by a re-export.

Everything is read from ``OUT/store.zarr/export`` (every unit the export step kept, in the
processed frame), so the explorer still shows a rejected unit after a curated re-export.
"""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import numpy as np
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from ..errors import ScopelineError
from .config import ServeConfig
from .security import PathRefused, relative_name, safe_path

OUTLINE_LEVEL = 0.3  # a footprint's outline and its label pixels: above this fraction of its max
MAX_COLUMNS = 4000  # most plot columns a trace request may ask for
CACHE_RUNS = 4  # overviews kept in memory


class NotExplorable(Exception):
    """The folder is allowed but holds no finished miniscope result (answered 404)."""


# ----------------------------------------------------------------------------- pure parts
def minmax_columns(trace: np.ndarray, n_columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decimate ``trace`` to ``n_columns`` pixel columns: the first sample index of each
    column and the min and max of the samples in it (every sample falls in exactly one
    column, so no peak is lost). With fewer samples than columns each sample is a column.

    Returns
    -------
    starts, mins, maxs : ndarray (columns,)
    """
    trace = np.asarray(trace)
    n = len(trace)
    if n == 0:
        return np.zeros(0, int), np.zeros(0, trace.dtype), np.zeros(0, trace.dtype)
    n_columns = max(1, min(int(n_columns), n))
    starts = np.unique(np.linspace(0, n, n_columns + 1).astype(np.int64)[:-1])
    return starts, np.minimum.reduceat(trace, starts), np.maximum.reduceat(trace, starts)


def footprint_pixels(tiles) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The non-zero pixels of footprints given as tiles.

    ``tiles`` yields ``(first_row, y0, x0, tile (b, th, tw))``: a piece of the (units, h, w)
    stack (a zarr chunk: a few MB, so the work stays in the CPU cache; the stack itself, mostly
    zeros, is never held whole). Returns ``(rows, ys, xs, values, n_rows)``.
    """
    rows, ys, xs, values = [], [], [], []
    n = 0
    for first, y0, x0, tile in tiles:
        tile = np.asarray(tile)
        r, y, x = np.nonzero(tile > 0)
        rows.append(r + first)
        ys.append(y + y0)
        xs.append(x + x0)
        values.append(tile[r, y, x].astype(np.float32))
        n = max(n, first + len(tile))
    if not rows:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, np.zeros(0, np.float32), n
    return np.concatenate(rows), np.concatenate(ys), np.concatenate(xs), np.concatenate(values), n


def zarr_tiles(array):
    """``(first_row, y0, x0, tile)`` for every chunk of a zarr (units, h, w) array."""
    cu, cy, cx = array.chunks
    nu, h, w = array.shape
    for u in range(0, nu, cu):
        for y in range(0, h, cy):
            for x in range(0, w, cx):
                yield u, y, x, array[u : u + cu, y : y + cy, x : x + cx]


def label_blocks(blocks, shape: tuple[int, int], level: float = OUTLINE_LEVEL):
    """Label image, outlines and per-unit geometry from blocks of footprints
    (``(first_row, footprints (b, h, w))``); see :func:`label_pixels`."""
    return label_pixels(*footprint_pixels((first, 0, 0, block) for first, block in blocks), shape, level)


def label_pixels(r: np.ndarray, y: np.ndarray, x: np.ndarray, v: np.ndarray, n: int, shape: tuple[int, int],
                 level: float = OUTLINE_LEVEL):
    """Label image, outlines and per-unit geometry from the footprints' non-zero pixels
    (row ``r``, position ``y``, ``x``, value ``v``; ``n`` rows).

    A pixel belongs to the unit whose footprint, relative to its own max, is largest there
    among those above ``level``; the outlines are the borders of these regions (where a
    pixel's label differs from a 4-neighbour's), so touching units show apart.

    Returns
    -------
    labels : ndarray (h, w) int64, row + 1 (0: none)
    outline : ndarray (h, w) bool
    geometry : list of dict per row: centroid ``y``, ``x``, box ``[y0, y1, x0, x1]``, ``size``
        (pixels above ``level``); None / 0 for an empty footprint
    """
    peak = np.zeros(n, np.float32)
    np.maximum.at(peak, r, v)
    rel = v / np.where(peak > 0, peak, 1)[r]
    keep = rel > level
    r, y, x, v = r[keep], y[keep], x[keep], rel[keep]
    labels = np.zeros(shape[0] * shape[1], np.int64)
    order = np.lexsort((-r, v))  # ascending relative value (ties: lower row last): the largest is written last
    labels[(y * shape[1] + x)[order]] = r[order] + 1
    labels = labels.reshape(shape)
    total = np.bincount(r, weights=v, minlength=n)
    cy = np.bincount(r, weights=v * y, minlength=n) / np.where(total > 0, total, 1)
    cx = np.bincount(r, weights=v * x, minlength=n) / np.where(total > 0, total, 1)
    size = np.bincount(r, minlength=n)
    big = np.iinfo(np.int64).max
    y0, x0 = np.full(n, big), np.full(n, big)
    y1, x1 = np.full(n, -1), np.full(n, -1)
    np.minimum.at(y0, r, y)
    np.minimum.at(x0, r, x)
    np.maximum.at(y1, r, y)
    np.maximum.at(x1, r, x)
    geometry = [{"y": round(float(cy[i]), 2), "x": round(float(cx[i]), 2),
                 "box": [int(y0[i]), int(y1[i]) + 1, int(x0[i]), int(x1[i]) + 1], "size": int(size[i])}
                if size[i] else {"y": None, "x": None, "box": None, "size": 0} for i in range(n)]
    outline = np.zeros(shape, bool)
    outline[1:] |= labels[1:] != labels[:-1]
    outline[:-1] |= labels[:-1] != labels[1:]
    outline[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    outline[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    outline &= labels > 0
    return labels, outline, geometry


def overview_png(mean_frame: np.ndarray, outline: np.ndarray) -> bytes:
    """The mean frame (grey, 1st-99.5th percentile) with the footprint outlines (orange) as PNG."""
    from PIL import Image

    frame = np.nan_to_num(np.asarray(mean_frame, np.float32))
    lo, hi = np.percentile(frame, [1, 99.5]) if frame.size else (0, 1)
    grey = np.clip((frame - lo) / (hi - lo if hi > lo else 1), 0, 1)
    rgb = (np.repeat(grey[..., None], 3, axis=2) * 255).astype(np.uint8)
    rgb[outline] = (255, 150, 0)
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- run data
@dataclass
class Result:
    """One run's explorer data: lazily read arrays and the cached overview."""

    run_dir: Path
    stamp: tuple
    group: object  # zarr group of the store
    unit_ids: np.ndarray
    times: np.ndarray  # (frames,) s
    fps: float
    overview: dict | None = None
    cacheable: bool = True  # the overview may be cached in the run folder
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def n_frames(self) -> int:
        return int(self.group["export/C"].shape[1])

    def row_of(self, unit_id: int) -> int:
        rows = np.flatnonzero(self.unit_ids == unit_id)
        if not len(rows):
            raise NotExplorable(f"no unit {unit_id} in this run")
        return int(rows[0])

    def trace(self, name: str, row: int, f0: int, f1: int) -> np.ndarray:
        """Frames ``f0:f1`` of one unit's ``C`` or ``S`` (only the chunks holding them are read)."""
        return np.asarray(self.group[f"export/{name}"][row, f0:f1], np.float32)

    def build_overview(self) -> dict:
        """The overview (footprints PNG, label image, unit list): from memory, else from the
        run's cache file (``RUN/.scopeline-explorer.npz``, valid while the export step's
        completion marker is unchanged), else computed from the stored footprints (a pass
        over the dense ``export/A``: seconds for 1,000 units) and cached."""
        with self.lock:
            if self.overview is None:
                self.overview = read_overview_cache(self.run_dir, self.cache_key)
            if self.overview is None:
                A = self.group["export/A"]
                labels, outline, geometry = label_pixels(*footprint_pixels(zarr_tiles(A)), A.shape[1:])
                mean = self.group["crop/mean_frame"][...] if "crop/mean_frame" in self.group else np.zeros(A.shape[1:])
                snr = self.group["export/snr"][...] if "export/snr" in self.group else np.zeros(len(self.unit_ids))
                units = [{"id": int(u), "row": i, "snr": round(float(q), 2), **g}
                         for i, (u, q, g) in enumerate(zip(self.unit_ids, snr, geometry))]
                dtype = np.uint16 if len(self.unit_ids) < 65535 else np.uint32
                self.overview = {"png": overview_png(mean, outline), "labels": labels.astype(dtype),
                                 "units": units, "shape": list(A.shape[1:])}
                if self.cacheable:
                    write_overview_cache(self.run_dir, self.cache_key, self.overview)
            return self.overview

    @property
    def cache_key(self) -> str:
        import hashlib

        try:
            return hashlib.sha1((self.run_dir / "steps" / "export" / "complete.json").read_bytes()).hexdigest()
        except OSError:
            return ""


CACHE_FILE = ".scopeline-explorer.npz"


def read_overview_cache(run_dir: Path, key: str) -> dict | None:
    """The cached overview of ``run_dir`` when it was made for ``key``, else None."""
    path = run_dir / CACHE_FILE
    if not key or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            return {"png": data["png"].tobytes(), "labels": data["labels"], "units": json.loads(str(data["units"])),
                    "shape": data["shape"].tolist()}
    except (OSError, KeyError, ValueError):
        return None


def write_overview_cache(run_dir: Path, key: str, overview: dict) -> None:
    """Cache the overview beside the run (atomic; a read-only run folder is no error)."""
    from ..io.atomic import atomic_path

    if not key:
        return
    try:
        with atomic_path(run_dir / CACHE_FILE) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, key=np.array(key), png=np.frombuffer(overview["png"], np.uint8), labels=overview["labels"],
                     units=np.array(json.dumps(overview["units"])), shape=np.array(overview["shape"]))
    except OSError:
        pass


def warm_overview(run_dir: Path) -> None:
    """Build and cache the overview of a finished run (the server does it when its own run
    job ends, so the explorer opens at once)."""
    try:
        result = _open_result(run_dir, _stamp(run_dir))
        if read_overview_cache(run_dir, result.cache_key) is None:
            result.build_overview()
    except Exception:  # noqa: BLE001 - a warm-up only; the explorer reports problems itself
        pass


def _stamp(run_dir: Path) -> tuple:
    marker = run_dir / "steps" / "export" / "complete.json"
    try:
        st = marker.stat()
    except OSError:
        raise NotExplorable(f"{run_dir.name} has no finished export step: run the pipeline to the end first") from None
    return (st.st_mtime_ns, st.st_size)


def _open_result(run_dir: Path, stamp: tuple) -> Result:
    import zarr

    try:
        group = zarr.open_group(str(run_dir / "store.zarr"), mode="r")
        ids = np.asarray(group["export/unit_ids"][...], np.int64)
        group["export/C"], group["export/A"]
    except (KeyError, FileNotFoundError, ValueError) as exc:
        raise NotExplorable(f"{run_dir.name}: the store holds no export result ({exc})") from None
    fps = 30.0
    try:
        fps = float(json.loads((run_dir / "params.json").read_text())["config"]["fps"])
    except (OSError, KeyError, ValueError, TypeError):
        pass
    n = int(group["export/C"].shape[1])
    frames = np.arange(n)
    if "motion/frame_index" in group and group["motion/frame_index"].shape[0] == n:
        frames = np.asarray(group["motion/frame_index"][...])
    return Result(run_dir, stamp, group, ids, frames / fps, fps)


class Results:
    """The open results, newest first (a few runs at a time), reopened when their export
    step's marker changes (a re-run)."""

    def __init__(self, size: int = CACHE_RUNS):
        self.size = size
        self.items: OrderedDict[Path, Result] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, run_dir: Path) -> Result:
        stamp = _stamp(run_dir)
        with self.lock:
            found = self.items.get(run_dir)
            if found is not None and found.stamp == stamp:
                self.items.move_to_end(run_dir)
                return found
        result = _open_result(run_dir, stamp)
        with self.lock:
            self.items[run_dir] = result
            self.items.move_to_end(run_dir)
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return result


# ----------------------------------------------------------------------------- routes
def register_explorer(app: FastAPI, templates, config: ServeConfig) -> None:
    """Add the unit explorer's routes to ``app``."""
    from ..miniscope.curation import add_merge, set_decision, undo_merge
    from ..miniscope.export_curated import export_curated, read_curation, write_curation

    results = Results()
    curation_lock = threading.Lock()  # read-modify-write of curation.json within this server

    @app.exception_handler(NotExplorable)
    async def _not_explorable(request: Request, exc: NotExplorable):
        return PlainTextResponse(f"not found: {exc}", status_code=404)

    def run_folder(path: str, write: bool = False) -> Path:
        folder = safe_path(config, path, write=write)
        if not (folder / "store.zarr").is_dir():
            raise NotExplorable(f"{path} holds no miniscope result (store.zarr)")
        return folder

    async def result_of(path: str, write: bool = False) -> Result:
        folder = run_folder(path, write)
        result = await anyio.to_thread.run_sync(results.get, folder)
        try:  # the overview is cached beside the run only under --runs (--watch folders are read only)
            safe_path(config, folder, write=True)
        except PathRefused:
            result.cacheable = False
        return result

    async def overview_of(path: str) -> dict:
        result = await result_of(path)
        return await anyio.to_thread.run_sync(result.build_overview)

    def curation_json(folder: Path) -> dict:
        cur = read_curation(folder)
        return cur.model_dump(mode="json")

    def one_line(exc: Exception, status: int = 400) -> PlainTextResponse:
        text = exc.one_line() if isinstance(exc, ScopelineError) else str(exc)
        return PlainTextResponse(text, status_code=status)

    @app.get("/miniscope/explorer", response_class=HTMLResponse)
    async def explorer_page(request: Request, path: str):
        result = await result_of(path)
        rel = relative_name(config, result.run_dir)
        return templates.TemplateResponse(request, "explorer.html", {
            "path": rel, "n_units": len(result.unit_ids), "n_frames": result.n_frames, "fps": result.fps})

    @app.get("/miniscope/explorer/image")
    async def explorer_image(path: str):
        overview = await overview_of(path)
        return Response(overview["png"], media_type="image/png", headers={"Cache-Control": "no-cache"})

    @app.get("/miniscope/explorer/labels")
    async def explorer_labels(path: str):
        """The label image: little-endian uint16 (uint32 beyond 65,534 units), row-major,
        value = the unit's row + 1 (0: no unit)."""
        overview = await overview_of(path)
        labels = overview["labels"]
        h, w = labels.shape
        return Response(labels.astype(labels.dtype.newbyteorder("<")).tobytes(), media_type="application/octet-stream",
                        headers={"X-Height": str(h), "X-Width": str(w), "X-Dtype": labels.dtype.name,
                                 "Cache-Control": "no-cache"})

    @app.get("/miniscope/explorer/units")
    async def explorer_units(path: str):
        result = await result_of(path)
        overview = await anyio.to_thread.run_sync(result.build_overview)
        try:
            curation = curation_json(result.run_dir)
        except ScopelineError as exc:
            return one_line(exc, 409)
        return JSONResponse({"shape": overview["shape"], "units": overview["units"], "curation": curation,
                             "n_frames": result.n_frames, "fps": result.fps,
                             "duration_s": float(result.times[-1]) if len(result.times) else 0.0})

    @app.get("/miniscope/explorer/trace")
    async def explorer_trace(path: str, unit: int, width: int = 1000, t0: float | None = None,
                             t1: float | None = None):
        """One unit's C and S between ``t0`` and ``t1`` (s; default: all), decimated to
        ``width`` columns: C as the min and max of each column (interleaved: x repeats),
        S as each column's max."""
        if not 1 <= width <= MAX_COLUMNS:
            return PlainTextResponse(f"width must be 1..{MAX_COLUMNS} columns", status_code=400)
        result = await result_of(path)
        row = result.row_of(unit)
        times = result.times
        f0 = 0 if t0 is None else int(np.searchsorted(times, t0, side="left"))
        f1 = len(times) if t1 is None else int(np.searchsorted(times, t1, side="right"))
        if f1 <= f0:
            f0, f1 = max(0, min(f0, len(times) - 1)), max(0, min(f0, len(times) - 1)) + 1

        def read():
            C, S = result.trace("C", row, f0, f1), result.trace("S", row, f0, f1)
            starts, cmin, cmax = minmax_columns(C, width)
            _, _, smax = minmax_columns(S, width)
            x = times[f0 + starts]
            return {"unit": unit, "frames": [f0, f1], "columns": int(len(starts)),
                    "decimated": bool(len(starts) < f1 - f0),
                    "x": np.repeat(x, 2).round(4).tolist(),
                    "c": np.column_stack([cmin, cmax]).ravel().astype(float).round(5).tolist(),
                    "s": np.repeat(smax, 2).astype(float).round(5).tolist()}

        return JSONResponse(await anyio.to_thread.run_sync(read))

    async def change_curation(path: str, change) -> Response:
        result = await result_of(path, write=True)
        folder = result.run_dir

        def apply():
            with curation_lock:
                cur = change(read_curation(folder))
                write_curation(folder, cur)
                return cur.model_dump(mode="json")

        try:
            return JSONResponse(await anyio.to_thread.run_sync(apply))
        except ScopelineError as exc:
            return one_line(exc)

    def known(result: Result, unit: int) -> None:
        result.row_of(unit)

    @app.post("/miniscope/explorer/decide")
    async def explorer_decide(path: str = Form(...), unit: int = Form(...), decision: str = Form(...)):
        if decision not in ("accepted", "rejected", "undecided"):
            return PlainTextResponse("decision must be accepted, rejected or undecided", status_code=400)
        known(await result_of(path, write=True), unit)
        return await change_curation(path, lambda cur: set_decision(cur, unit, decision))

    @app.post("/miniscope/explorer/merge")
    async def explorer_merge(path: str = Form(...), units: str = Form(...)):
        try:
            ids = sorted({int(u) for u in units.replace(" ", "").split(",") if u})
        except ValueError:
            return PlainTextResponse("units: give unit ids separated by commas, e.g. 3,7", status_code=400)
        if len(ids) < 2:
            return PlainTextResponse("units: select two units or more to merge", status_code=400)
        result = await result_of(path, write=True)
        for u in ids:
            known(result, u)
        return await change_curation(path, lambda cur: add_merge(cur, ids))

    @app.post("/miniscope/explorer/unmerge")
    async def explorer_unmerge(path: str = Form(...), unit: int = Form(...)):
        known(await result_of(path, write=True), unit)
        return await change_curation(path, lambda cur: undo_merge(cur, unit))

    @app.post("/miniscope/explorer/export")
    async def explorer_export(path: str = Form(...)):
        """Re-export ``RUN/export`` with the curation applied (the Python API, no re-run)."""
        folder = (await result_of(path, write=True)).run_dir
        from .miniscope_pages import job_name

        jobs = getattr(app.state, "miniscope_jobs", None)
        job = jobs.get(job_name(folder)) if jobs is not None else None
        if job is not None and job.alive:
            return PlainTextResponse("a run of this folder is going on: re-export once it has ended", status_code=409)
        try:
            summary = await anyio.to_thread.run_sync(export_curated, folder)
        except ScopelineError as exc:
            return one_line(exc)
        summary["export_dir"] = relative_name(config, Path(summary["export_dir"]))
        return JSONResponse(summary)
