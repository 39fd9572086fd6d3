"""Routes of the facility live QC (issue 13): the live page, item pages, export selection.

``register_qc(app, templates, config, open_allowed)`` adds them to the app made by
:func:`scopeline.ui.app.create_app` and, with ``--watch``, starts the live QC jobs
(:class:`scopeline.ui.live.LiveQC`) when the server starts and stops them when it stops.

    GET  /live                  the sessions, their jobs (state, log tail) and counts per tool
    GET  /live/jobs             the same, as an htmx partial (refreshed every 2 s)
    GET  /item?path=RUN&key=K   one movie / micrograph of a run
    GET  /item/data             its plot data (JSON)
    GET  /item/image.png        clean: the micrograph with kept / removed picks over the mask
    POST /run/export            write the run's STAR / CSV sets now (finished run) and link them
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import anyio
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.templating import Jinja2Templates

from ..errors import ScopelineError
from ..tools import Run, open_run
from . import forms
from . import items as items_view
from . import runs as runs_view
from .config import ServeConfig
from .live import LiveQC
from .security import PathRefused, relative_name, safe_path

LOG_LINES = 30  # log lines shown per job
SET_SUFFIXES = (".star", ".csv")  # the selection's files


class ItemNotFound(Exception):
    """No such item in the run (answered 404)."""


def register_qc(app: FastAPI, templates: Jinja2Templates, config: ServeConfig,
                open_allowed: Callable[..., Run], rescan_s: float = 5.0) -> LiveQC:
    """Add the live QC routes to ``app``; returns the :class:`LiveQC` (started with the app)."""
    live = LiveQC(config, rescan_s=rescan_s)
    app.state.live = live
    app.state.startup.append(live.start)
    app.state.shutdown.append(live.stop)

    @app.exception_handler(ItemNotFound)
    async def _no_item(request: Request, exc: ItemNotFound):
        return PlainTextResponse(f"not found: {exc}", status_code=404)

    def read_path(raw: str) -> Path:
        return safe_path(config, raw)

    def writable(folder) -> bool:
        try:
            safe_path(config, folder, write=True)
            return True
        except PathRefused:
            return False

    templates.env.globals["writable"] = writable

    def session_view() -> list[dict]:
        """Per session: its plans, each with its job and the counts of its run folder."""
        sessions: dict[str, list[dict]] = {}
        for plan in live.plans:
            job = live.job(plan)
            entry = {"plan": plan, "job": job, "log": job.log_tail(LOG_LINES) if job else [],
                     "run": None, "counts": None}
            if plan.out_dir is not None and runs_view.run_kind(plan.out_dir) == plan.tool:
                try:
                    entry["counts"] = runs_view.counts(open_run(plan.out_dir).decide())
                    entry["run"] = relative_name(config, plan.out_dir.resolve())
                except ScopelineError:
                    pass
            sessions.setdefault(plan.session, []).append(entry)
        return [{"name": k, "tools": v} for k, v in sessions.items()]

    @app.get("/live", response_class=HTMLResponse)
    async def live_page(request: Request):
        view = await anyio.to_thread.run_sync(session_view)
        return templates.TemplateResponse(request, "live.html", {
            "sessions": view, "watch": config.watch, "live_root": relative_name(config, live.root)})

    @app.get("/live/jobs", response_class=HTMLResponse)
    async def live_jobs(request: Request):
        view = await anyio.to_thread.run_sync(session_view)
        return templates.TemplateResponse(request, "_live_jobs.html", {"sessions": view})

    # ------------------------------------------------------------------ items

    async def item_row(path: str, key: str) -> tuple[Run, dict]:
        run = open_allowed(path)
        rows = await anyio.to_thread.run_sync(run.decide)
        for i, row in enumerate(rows):
            if row.get("key") == key:
                return run, {**row, "index": i}
        raise ItemNotFound(f"no item {key!r} in this run")

    @app.get("/item", response_class=HTMLResponse)
    async def item_page(request: Request, path: str, key: str):
        run, row = await item_row(path, key)
        mask = items_view.mask_path(run.out_dir, row) if run.tool == "clean" else None
        return templates.TemplateResponse(request, "item.html", {
            "run": run, "row": row, "key": key, "name": runs_view.item_name(row),
            "path": relative_name(config, run.out_dir.resolve()), "mask": mask,
            "values": [(c, row.get(c)) for c in runs_view.COLUMNS.get(run.tool, ()) if c in row]})

    @app.get("/item/data")
    async def item_data(path: str, key: str):
        run, row = await item_row(path, key)
        if run.tool == "dose":
            data = items_view.dose_item(row, run.params.max_diff)
        elif run.tool == "maxshift":
            data = await anyio.to_thread.run_sync(lambda: items_view.maxshift_item(row, run.params, read_path))
        else:
            data = {"kind": run.tool}
        data.update(status=row.get("status"), name=runs_view.item_name(row))
        return JSONResponse(data)

    @app.get("/item/image.png")
    async def item_image(path: str, key: str):
        run, row = await item_row(path, key)
        if run.tool != "clean":
            raise ItemNotFound("only clean runs have micrograph images")
        if row.get("status") == "failed" or not row.get("image_file"):
            raise ItemNotFound("this micrograph was not measured (failed): no image")
        try:
            png, shown = await anyio.to_thread.run_sync(
                lambda: items_view.clean_image(row, run.out_dir, run.params.box_size, read_path))
        except PathRefused:
            raise
        except Exception as exc:  # noqa: BLE001 - the file went missing or is unreadable
            raise ItemNotFound(f"micrograph not readable: {exc}") from exc
        headers = {"Cache-Control": "no-cache", **{f"X-Picks-{k.title()}": str(v) for k, v in shown.items()}}
        return Response(png, media_type="image/png", headers=headers)

    # ------------------------------------------------------------------ export selection

    @app.post("/run/export", response_class=HTMLResponse)
    async def export(request: Request, path: str = Form(...)):
        run = open_allowed(path, write=True)
        try:
            summary = await anyio.to_thread.run_sync(run.redecide)
        except ScopelineError as exc:
            return forms.error_fragment(exc.one_line(), 409)
        rel = relative_name(config, run.out_dir.resolve())
        files = [n for n in runs_view.output_files(run.out_dir) if n.endswith(SET_SUFFIXES)]
        message = ("written now with the current thresholds and manual decisions" if summary is not None
                   else "the run is going on: the sets follow at its next update (thresholds and manual "
                        "decisions saved)")
        return templates.TemplateResponse(request, "_export.html", {
            "files": files, "path": rel, "message": message, "written": summary is not None},
            headers={"HX-Trigger": "redecided"})

    return live
