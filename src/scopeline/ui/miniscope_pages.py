"""Miniscope without code: the parameter forms (one per step, with the guide's
explanations), preview of the early steps, runs as jobs of the server (run, run from a
step, resume, cancel) with progress and log tail by server-sent events, and the per-step
report pages. A thin adapter over :mod:`scopeline.miniscope`: a run is
``scopeline miniscope run INPUT --out RUN --params FILE [--from STEP] [--to STEP] ...``
started by :class:`~scopeline.ui.jobs.JobManager` with arguments built here from validated
form values and folders inside the allowed roots, never taken from a request as such.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from pathlib import Path
from urllib.parse import quote

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from markupsafe import escape

from ..errors import ScopelineError
from . import forms
from . import runs as runs_view
from .config import ServeConfig
from .explorer import warm_overview
from .jobs import JobManager
from .security import PathRefused, relative_name, safe_path

UI_PARAMS = ".scopeline-ui-params.json"  # the parameters a run started from the UI was given (RUN/)
JOB_LOG_DIR = ".scopeline-jobs"  # under --runs: the jobs' output
LOG_LINES = 40
PREVIEW_FRAMES = 300


class MiniscopeNotFound(Exception):
    """An allowed path that holds no miniscope run or parameter file (answered 404)."""


_error = forms.error_fragment


def job_name(run_dir: Path) -> str:
    """The job name of a run folder (letters, digits, ``._-``; unique per folder)."""
    tag = re.sub(r"[^A-Za-z0-9._-]", "_", run_dir.name)[-40:] or "run"
    return f"miniscope-{tag}-{hashlib.sha1(str(run_dir).encode()).hexdigest()[:8]}"


def step_progress(run_dir: Path, log_lines: list[str], running: bool) -> list[dict]:
    """Each step's state: ``done`` / ``reused`` / ``running`` / ``pending`` / ``not run``,
    from the run log's lines of this job (``step X: running | reusing | done``) and the
    completion markers (``steps/X/complete.json``) for steps the log does not mention."""
    from ..miniscope import step_names

    said: dict[str, str] = {}
    for line in log_lines:
        m = re.search(r"step (\w+): (running|reusing|done)", line)
        if m:
            said[m.group(1)] = {"running": "running", "reusing": "reused", "done": "done"}[m.group(2)]
    out = []
    for name in step_names():
        state = said.get(name)
        if state == "running" and not running:
            state = "stopped"  # the job ended inside this step (failed or cancelled)
        if state is None:
            done = (run_dir / "steps" / name / "complete.json").is_file()
            state = "done" if done else ("pending" if running else "not run")
        out.append({"name": name, "state": state})
    return out


def register_miniscope(app: FastAPI, templates, config: ServeConfig) -> None:
    """Add the miniscope routes (parameters, preview, runs, reports) to ``app``."""
    from ..miniscope import guide
    from ..miniscope.api import check_run_options, step_names
    from ..miniscope.params import MiniscopeParams, load_params, save_params

    jobs = app.state.miniscope_jobs = JobManager(config.roots[0] / JOB_LOG_DIR)
    hooks = getattr(app.state, "shutdown", None)  # create_app's lifespan runs these when the server stops
    (hooks if hooks is not None else app.router.on_shutdown).append(jobs.stop_all)
    log_offsets: dict[Path, int] = {}  # run.log size when the run's job started
    warmed: set[Path] = set()

    @app.exception_handler(MiniscopeNotFound)
    async def _not_found(request: Request, exc: MiniscopeNotFound):
        return PlainTextResponse(f"not found: {exc}", status_code=404)

    def warm(folder: Path) -> None:
        """Make the unit explorer's overview in the background (once per finished run, and
        only under --runs, where it may be cached): opening the explorer is then instant."""
        if folder in warmed or not (folder / "steps" / "export" / "complete.json").is_file():
            return
        try:
            safe_path(config, folder, write=True)
        except PathRefused:
            return
        warmed.add(folder)
        threading.Thread(target=warm_overview, args=(folder,), name="explorer-warm", daemon=True).start()

    def miniscope_run(path: str, write: bool = False) -> Path:
        folder = safe_path(config, path, write=write)
        if runs_view.run_kind(folder) != "miniscope":
            raise MiniscopeNotFound(f"{path} holds no miniscope run (params.json and steps/)")
        return folder

    # ------------------------------------------------------------------ parameter pages
    def params_page(request: Request, params, *, run_folder: Path | None, source: Path | None, save_to: Path,
                    step: str | None):
        names = step_names()
        if step is not None and step not in names:
            raise MiniscopeNotFound(f"no step {step!r} (steps: {', '.join(names)})")
        steps = None
        explorable = reports = False
        if run_folder is not None:
            steps = [(name, (run_folder / "steps" / name / "complete.json").is_file()) for name in names]
            explorable = (run_folder / "steps" / "export" / "complete.json").is_file()
            reports = any(done for _, done in steps)
        input_dir = params.config.input_dir or ""
        return templates.TemplateResponse(request, "miniscope_params.html", {
            "fields": forms.form_fields(MiniscopeParams, params), "steps": steps, "step": step, "names": names,
            "step_guide": guide.STEPS, "field_guide": guide.FIELDS,
            "run_folder": run_folder and relative_name(config, run_folder),
            "source": source and relative_name(config, source), "save_to": relative_name(config, save_to),
            "input_dir": input_dir and (relative_name(config, Path(input_dir)) if _inside(Path(input_dir)) else
                                        input_dir),
            "explorable": explorable, "reports": reports, "preview_frames": PREVIEW_FRAMES})

    def _inside(path: Path) -> bool:
        try:
            safe_path(config, path)
            return True
        except Exception:  # noqa: BLE001 - outside the roots: shown as it is
            return False

    @app.get("/miniscope", response_class=HTMLResponse)
    async def miniscope_run_page(request: Request, path: str, step: str | None = None):
        folder = miniscope_run(path)
        warm(folder)  # a finished run: its explorer overview, while the user reads this page
        source = folder / "params.json"
        try:
            params = load_params(source)
        except ScopelineError as exc:
            raise MiniscopeNotFound(exc.one_line()) from exc
        return params_page(request, params, run_folder=folder, source=source,
                           save_to=folder.parent / f"{folder.name}_params.json", step=step)

    @app.get("/miniscope/params", response_class=HTMLResponse)
    async def miniscope_params(request: Request, path: str = "", step: str | None = None):
        if not path:
            return params_page(request, MiniscopeParams(), run_folder=None, source=None,
                               save_to=config.roots[0] / "params.json", step=step)
        source = safe_path(config, path)
        try:
            params = load_params(source)
        except ScopelineError as exc:
            raise MiniscopeNotFound(exc.one_line()) from exc
        return params_page(request, params, run_folder=None, source=source, save_to=source, step=step)

    def checked_params(form):
        params, errors = forms.parse_form(MiniscopeParams, form)
        if errors:
            items = "".join(f"<li><code>{escape(k)}</code>: {escape(v)}</li>" for k, v in sorted(errors.items()))
            return None, HTMLResponse(f'<ul class="error" data-errors="{len(errors)}">{items}</ul>', status_code=400)
        return params, None

    @app.post("/miniscope/params/check", response_class=HTMLResponse)
    async def miniscope_params_check(request: Request):
        params, problem = checked_params(await request.form())
        return problem or HTMLResponse('<p class="ok" data-errors="0">every parameter is valid</p>')

    @app.post("/miniscope/params/save", response_class=HTMLResponse)
    async def miniscope_params_save(request: Request):
        form = await request.form()
        params, problem = checked_params(form)
        if problem:
            return problem
        target = safe_path(config, str(form.get("save_to", "")), write=True)
        if target.suffix.lower() != ".json":
            return _error("save as a .json file")
        if runs_view.run_kind(target.parent) == "miniscope" and target.name == "params.json":
            return _error("a run's own params.json records what it ran with: save under another name")
        if target.exists() and "overwrite" not in form:
            return _error(f'{relative_name(config, target)} exists: tick "overwrite" to replace it', 409)
        if not target.parent.is_dir():
            return _error("that folder does not exist")
        try:
            await anyio.to_thread.run_sync(save_params, params, target)
        except (ScopelineError, OSError) as exc:
            return _error(str(exc))
        return HTMLResponse(f'<p class="ok">saved {escape(relative_name(config, target))}</p>')

    # ------------------------------------------------------------------ preview
    def input_folder(form, params) -> Path:
        raw = str(form.get("input_dir", "") or params.config.input_dir or "").strip()
        if not raw:
            raise _Refusal("input_dir: give the folder of the videos")
        folder = safe_path(config, raw)
        if not folder.is_dir():
            raise _Refusal(f"input_dir: {raw} is not a folder")
        return folder

    @app.post("/miniscope/preview", response_class=HTMLResponse)
    async def miniscope_preview(request: Request):
        """The early steps on the first frames (denoising, crop, seeds, motion) as PNGs made
        on the server; nothing is written."""
        from ..miniscope.preview_steps import FIGURES, MAX_PREVIEW_FRAMES, MIN_PREVIEW_FRAMES, figure_png, preview_steps

        form = await request.form()
        params, problem = checked_params(form)
        if problem:
            return problem
        try:
            folder = input_folder(form, params)
            n = int(str(form.get("preview_frames", PREVIEW_FRAMES)))
        except _Refusal as exc:
            return _error(str(exc))
        except ValueError:
            return _error(f"preview_frames: give a number of frames ({MIN_PREVIEW_FRAMES} to {MAX_PREVIEW_FRAMES})")

        def work():
            result = preview_steps(folder, params, n)
            return result, {name: base64.b64encode(figure_png(make(result))).decode("ascii")
                            for name, make in FIGURES.items()}

        try:
            result, pngs = await anyio.to_thread.run_sync(work)
        except ScopelineError as exc:
            return _error(exc.one_line())
        except (ValueError, OSError) as exc:
            return _error(f"preview failed: {exc}")
        return templates.TemplateResponse(request, "_miniscope_preview.html", {
            "stats": result.stats, "pngs": pngs})

    # ------------------------------------------------------------------ runs as jobs
    def run_state(folder: Path) -> dict:
        job = jobs.get(job_name(folder))
        log_file = folder / "logs" / "run.log"
        lines: list[str] = []
        if job is not None and log_file.is_file():
            with open(log_file, "rb") as fh:
                fh.seek(log_offsets.get(folder, 0))
                lines = fh.read().decode("utf-8", "replace").splitlines()
        running = bool(job and job.alive)
        if job is not None and job.state == "finished":
            warm(folder)
        return {"job": job.info() if job else None, "state": job.state if job else "idle",
                "returncode": job.returncode if job else None,
                "steps": step_progress(folder, lines, running),
                "log": lines[-LOG_LINES:] + (["--- job output ---", *job.log_tail(20)] if job else []),
                "explorable": (folder / "steps" / "export" / "complete.json").is_file() and not running}

    @app.post("/miniscope/run/start", response_class=HTMLResponse)
    async def miniscope_run_start(request: Request):
        """Start ``scopeline miniscope run`` as a job. ``action``: ``run`` (every step;
        up-to-date stored steps are reused, so it also resumes a crashed run), ``from``
        (re-run from ``from_step``), ``resume`` (the run's own params.json, unchanged) or
        ``new`` (a new run folder ``out`` for ``input_dir``)."""
        form = await request.form()
        action = str(form.get("action", ""))
        if action not in ("run", "from", "resume", "new"):
            return _error("action must be run, from, resume or new")
        try:
            argv, folder = await anyio.to_thread.run_sync(lambda: build_run(form, action))
        except _Refusal as exc:
            return _error(str(exc))
        except ScopelineError as exc:
            return _error(exc.one_line())
        name = job_name(folder)
        log_file = folder / "logs" / "run.log"
        warmed.discard(folder)
        try:
            log_offsets[folder] = log_file.stat().st_size if log_file.exists() else 0
            jobs.start(name, argv, cwd=config.roots[0])
        except ScopelineError as exc:
            return _error(exc.one_line(), 409)
        rel = relative_name(config, folder)
        headers = {"HX-Trigger": "run-started"}
        if action == "new":
            headers["HX-Redirect"] = f"/miniscope?path={quote(rel)}"
        return HTMLResponse(f'<p class="ok" id="run-started">started: scopeline {escape(" ".join(argv))}</p>',
                            headers=headers)

    def build_run(form, action: str) -> tuple[list[str], Path]:
        def number(key: str, kind):
            raw = str(form.get(key, "") or "").strip()
            if not raw:
                return None
            try:
                return kind(raw)
            except ValueError:
                raise _Refusal(f"{key}: {raw!r} is not a number") from None

        fraction, workers = number("fraction", float), number("workers", int)
        from_step = str(form.get("from_step", "") or "") or None if action == "from" else None
        to_step = str(form.get("to_step", "") or "") or None
        if action == "from" and not from_step:
            raise _Refusal("from_step: choose the step to run from")
        check_run_options(workers=workers, fraction=fraction, from_step=from_step, to_step=to_step)
        if action == "new":
            params, errors = forms.parse_form(MiniscopeParams, form)
            if errors:
                raise _Refusal("; ".join(f"{k}: {v}" for k, v in sorted(errors.items())))
            input_dir = input_folder(form, params)
            out_raw = str(form.get("out", "") or "").strip()
            if not out_raw:
                raise _Refusal("out: give a name for the new run folder")
            folder = safe_path(config, out_raw, write=True)
            if folder.exists() and any(folder.iterdir()) and runs_view.run_kind(folder) != "miniscope":
                raise _Refusal(f"out: {out_raw} exists and holds something else than a miniscope run")
            if not folder.parent.is_dir():
                raise _Refusal(f"out: the folder above {out_raw} does not exist")
            (folder / "steps").mkdir(parents=True, exist_ok=True)
            params.config.input_dir, params.config.output_dir = str(input_dir), str(folder)
            save_params(params, folder / "params.json")  # a run folder from now on (the run rewrites it)
            params_file = folder / UI_PARAMS
            save_params(params, params_file)
        else:
            folder = miniscope_run(str(form.get("path", "")), write=True)
            if action == "resume":
                params = load_params(folder / "params.json")
                params_file = folder / "params.json"
            else:
                params, errors = forms.parse_form(MiniscopeParams, form)
                if errors:
                    raise _Refusal("; ".join(f"{k}: {v}" for k, v in sorted(errors.items())))
                stored = load_params(folder / "params.json")
                params.config.input_dir = stored.config.input_dir  # the run's own input and output
                params.config.output_dir = stored.config.output_dir
                params_file = folder / UI_PARAMS
                save_params(params, params_file)
            if not params.config.input_dir:
                raise _Refusal("the run records no input folder (config.input_dir): start a new run instead")
            input_dir = safe_path(config, params.config.input_dir)
        argv = ["miniscope", "run", str(input_dir), "--out", str(folder), "--params", str(params_file)]
        if from_step:
            argv += ["--from", from_step]
        if to_step:
            argv += ["--to", to_step]
        if fraction is not None:
            argv += ["--fraction", repr(fraction)]
        if workers is not None:
            argv += ["--workers", str(workers)]
        return argv, folder

    @app.post("/miniscope/run/cancel", response_class=HTMLResponse)
    async def miniscope_run_cancel(request: Request):
        form = await request.form()
        folder = miniscope_run(str(form.get("path", "")), write=True)
        job = jobs.get(job_name(folder))
        if job is None or not job.alive:
            return _error("no run of this folder is going on", 409)
        await anyio.to_thread.run_sync(job.cancel)
        return HTMLResponse('<p class="ok">cancelled: finished steps are kept; "run" resumes from the '
                            'unfinished one</p>')

    @app.get("/miniscope/run/status")
    async def miniscope_run_status(path: str):
        folder = miniscope_run(path)
        return JSONResponse(await anyio.to_thread.run_sync(run_state, folder))

    @app.get("/miniscope/run/events")
    async def miniscope_run_events(request: Request, path: str, once: bool = False):
        """Server-sent events: ``progress`` (the status above) whenever it changes, every
        second while the job runs; ``done`` when it has ended."""
        folder = miniscope_run(path)

        async def feed():
            last = None
            while True:
                state = await anyio.to_thread.run_sync(run_state, folder)
                text = json.dumps(state)
                if text != last:
                    last = text
                    yield f"event: progress\ndata: {text}\n\n"
                if state["state"] != "running" or once:
                    yield "event: done\ndata: {}\n\n"
                    return
                if await request.is_disconnected():
                    return
                await anyio.sleep(1.0)

        return StreamingResponse(feed(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # ------------------------------------------------------------------ reports
    @app.get("/miniscope/report", response_class=HTMLResponse)
    async def miniscope_report(request: Request, path: str, step: str):
        """A step's report: its summary, figures and parameters (``steps/<step>/complete.json``,
        ``report/<step>_*.png``)."""
        folder = miniscope_run(path)
        if step not in step_names():
            raise MiniscopeNotFound(f"no step {step!r}")
        marker = folder / "steps" / step / "complete.json"
        if not marker.is_file():
            raise MiniscopeNotFound(f"step {step} of {path} has not finished")
        info = json.loads(marker.read_text())
        rel = relative_name(config, folder)
        figures = [{"src": f"/files/{rel}/report/{png}", "caption": caption}
                   for png, caption in info.get("outputs", {}).get("figures", [])
                   if (folder / "report" / png).is_file()]
        try:
            params = load_params(folder / "params.json")
            step_params = getattr(params, step).model_dump(mode="json")
        except (ScopelineError, AttributeError):
            step_params = {}
        done = [n for n in step_names() if (folder / "steps" / n / "complete.json").is_file()]
        return templates.TemplateResponse(request, "miniscope_report.html", {
            "path": rel, "step": step, "info": info, "summary": info.get("summary", {}), "figures": figures,
            "params": step_params, "done": done, "guide": guide.STEPS.get(step, ""),
            "jsons": info.get("outputs", {}).get("json", [])})


class _Refusal(Exception):
    """A form value the run cannot start with (answered 400 with the message)."""
