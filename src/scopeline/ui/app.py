"""The routes of ``scopeline serve`` (a thin adapter over :mod:`scopeline.tools`)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import anyio
from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from ..errors import ScopelineError
from ..tools import DECISIONS, Run, open_run
from . import forms
from . import runs as runs_view
from .config import ServeConfig
from .qc import register_qc
from .security import PathRefused, SecurityMiddleware, relative_name, safe_path

HERE = Path(__file__).parent
PER_PAGE = 50
MAX_PER_PAGE = 500
WARNINGS_SHOWN = 50  # the latest warnings on the run page


class RunNotFound(Exception):
    """The folder is allowed but holds no cryo-EM run (answered 404)."""


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    """Runs ``app.state.startup`` hooks when the server starts, ``shutdown`` ones when it stops."""
    for hook in app.state.startup:
        await anyio.to_thread.run_sync(hook)
    try:
        yield
    finally:
        for hook in reversed(app.state.shutdown):
            await anyio.to_thread.run_sync(hook)


def create_app(config: ServeConfig, live_interval_s: float = 1.0, rescan_s: float = 5.0) -> FastAPI:
    """The FastAPI application of ``scopeline serve``.

    Parameters
    ----------
    config : ServeConfig
        Address, token and the allowed folders (use :meth:`ServeConfig.checked` first).
    live_interval_s : float
        How often (s) the live feed looks whether a run changed.
    rescan_s : float
        How often (s) the ``--watch`` sessions are looked at again for tools to start.
    """
    app = FastAPI(title="scopeline", docs_url=None, redoc_url=None, openapi_url=None, lifespan=_lifespan)
    app.state.startup, app.state.shutdown = [], []  # hooks (live QC jobs start and stop with the server)
    app.add_middleware(SecurityMiddleware, config=config)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["rel"] = lambda p: relative_name(config, Path(p))

    @app.exception_handler(PathRefused)
    async def _refused(request: Request, exc: PathRefused):
        return PlainTextResponse(f"forbidden: {exc}", status_code=403)

    @app.exception_handler(RunNotFound)
    async def _not_found(request: Request, exc: RunNotFound):
        return PlainTextResponse(f"not found: {exc}", status_code=404)

    def open_allowed(path: str, write: bool = False) -> Run:
        folder = safe_path(config, path, write=write)
        if runs_view.run_kind(folder) not in ("dose", "maxshift", "clean"):
            raise RunNotFound(f"{path} holds no dose, maxshift or clean run")
        try:
            return open_run(folder)
        except ScopelineError as exc:
            raise RunNotFound(exc.one_line()) from exc

    async def decided(run: Run) -> list[dict]:
        return await anyio.to_thread.run_sync(run.decide)

    @app.get("/healthz", response_class=PlainTextResponse)
    async def healthz():
        return "ok"

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request):
        found = await anyio.to_thread.run_sync(runs_view.find_runs, config.roots)
        return templates.TemplateResponse(request, "index.html", {
            "runs": found, "roots": config.roots, "watch": config.watch})

    @app.get("/run", response_class=HTMLResponse)
    async def run_page(request: Request, path: str):
        run = open_allowed(path)
        rows = await decided(run)
        return templates.TemplateResponse(request, "run.html", {
            "run": run, "path": relative_name(config, run.out_dir.resolve()),
            "counts": runs_view.counts(rows), "fields": runs_view.decision_fields(run),
            "running": run.running, "outputs": runs_view.output_files(run.out_dir)})

    @app.get("/files/{path:path}")
    async def files(path: str):
        """A file under the allowed folders (the run's tables, STAR sets, report and its
        figures), sandboxed: an HTML file cannot script the UI."""
        target = safe_path(config, path)
        if any(part.startswith(".") for part in Path(path).parts) or not target.is_file():
            raise RunNotFound(f"{path} is not a file the UI serves")
        return FileResponse(target, headers={"Content-Security-Policy": "sandbox", "Cache-Control": "no-cache"})

    @app.get("/run/counts", response_class=HTMLResponse)
    async def run_counts(request: Request, path: str):
        run = open_allowed(path)
        return templates.TemplateResponse(request, "_counts.html", {
            "counts": runs_view.counts(await decided(run)), "running": run.running,
            "path": relative_name(config, run.out_dir.resolve())})

    @app.get("/run/items", response_class=HTMLResponse)
    async def run_items(request: Request, path: str, page: int = 1,
                        per_page: int = Query(PER_PAGE, ge=1, le=MAX_PER_PAGE), status: str = ""):
        run = open_allowed(path)
        table = runs_view.table_page(await decided(run), run.tool, page, per_page, status or None)
        return templates.TemplateResponse(request, "_items.html", {
            "table": table, "path": relative_name(config, run.out_dir.resolve())})

    @app.get("/run/warnings", response_class=HTMLResponse)
    async def run_warnings(request: Request, path: str):
        run = open_allowed(path)
        lines = runs_view.warnings(run.out_dir)
        return templates.TemplateResponse(request, "_warnings.html", {
            "lines": lines[-WARNINGS_SHOWN:], "total": len(lines),
            "path": relative_name(config, run.out_dir.resolve())})

    @app.get("/run/data")
    async def run_data(path: str):
        run = open_allowed(path)
        rows = await decided(run)
        return JSONResponse(runs_view.plot_data(rows, run.tool, run.params.model_dump(mode="json")))

    @app.post("/run/redecide", response_class=HTMLResponse)
    async def redecide(request: Request):
        form = await request.form()
        run = open_allowed(str(form.get("path", "")), write=True)
        errors: dict[str, str] = {}
        thresholds = forms.collect(type(run.params), form, errors=errors,
                                   only={f["name"] for f in runs_view.decision_fields(run)})
        if errors:
            problems = "; ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
            return forms.error_fragment(problems)
        try:
            summary = await anyio.to_thread.run_sync(lambda: run.redecide(**thresholds))
        except ScopelineError as exc:
            return forms.error_fragment(exc.one_line())
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            return forms.error_fragment(problems)
        message = ("re-decided: outputs rewritten" if summary is not None
                   else "saved: the running run applies it at its next update")
        return HTMLResponse(f'<p class="ok">{message}</p>', headers={"HX-Trigger": "redecided"})

    @app.post("/run/override")
    async def override(path: str = Form(...), key: str = Form(...), decision: str = Form(...)):
        run = open_allowed(path, write=True)
        if decision not in (*DECISIONS, "rule"):
            return PlainTextResponse("decision must be accepted, discarded or rule", status_code=400)
        if key not in {r.get("key") for r in run.records()}:
            return PlainTextResponse(f"no item {key!r} in this run", status_code=404)

        def apply():
            run.set_override(key, None if decision == "rule" else decision)
            run.redecide()  # finished run: outputs rewritten now; running: at its next update

        try:
            await anyio.to_thread.run_sync(apply)
        except ScopelineError as exc:
            return PlainTextResponse(exc.one_line(), status_code=409)
        return Response(status_code=204, headers={"HX-Trigger": "redecided"})

    @app.get("/run/events")
    async def run_events(request: Request, path: str, once: bool = False):
        run = open_allowed(path)

        async def feed():
            last = None
            while True:
                running = run.running
                stamp = (runs_view.state_stamp(run), bool(running))  # the run's end is news too
                if stamp != last:
                    last = stamp
                    fresh = open_allowed(path)  # thresholds may have been changed meanwhile
                    counts = runs_view.counts(await decided(fresh))
                    counts["running"] = bool(running)
                    yield f"event: counts\ndata: {json.dumps(counts)}\n\n"
                if not running or once:
                    yield "event: done\ndata: {}\n\n"
                    return
                if await request.is_disconnected():
                    return
                await anyio.sleep(live_interval_s)

        return StreamingResponse(feed(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # miniscope: parameters, preview, runs (jobs), reports; the unit explorer
    from .explorer import register_explorer
    from .miniscope_pages import register_miniscope

    register_miniscope(app, templates, config)
    register_explorer(app, templates, config)

    register_qc(app, templates, config, open_allowed, rescan_s=rescan_s)  # live QC, item pages, export
    return app
