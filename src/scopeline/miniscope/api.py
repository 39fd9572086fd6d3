"""Entry points of ``scopeline miniscope`` (the CLI is a thin layer over these)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

from pydantic import BaseModel

from ..errors import ConfigError
from ..io.atomic import ensure_output_dir, output_error, write_json
from ..parallel import watch_workers
from ..parallel import worker_timeout as _worker_timeout
from .params import MiniscopeParams, load_params, save_params
from .pipeline import StepRecord, available_steps, run_steps

LOCAL_SCHEDULERS = ("threads", "synchronous", "processes")


@dataclass
class RunResult:
    out_dir: Path
    steps: list[StepRecord] = field(default_factory=list)
    params_path: Path | None = None
    report_path: Path | None = None

    @property
    def ran(self) -> list[str]:
        return [s.name for s in self.steps if s.status == "ran"]

    @property
    def reused(self) -> list[str]:
        return [s.name for s in self.steps if s.status == "reused"]


def write_default_params(path: str | Path) -> Path:
    """Write every parameter with its documented default to ``path`` (JSON), a file to
    edit and pass back as ``params`` (``load_params``) or ``--params``.

    Returns
    -------
    Path
        ``path``.
    """
    save_params(MiniscopeParams(), path)
    return Path(path)


def step_names() -> list[str]:
    """The pipeline's step names in order (for ``from_step`` / ``to_step``)."""
    return [s.name for s in available_steps()]


@contextlib.contextmanager
def _scheduler(scheduler: str | None, workers: int | None, memory_limit: str | None) -> Iterator[object]:
    """A distributed client, or None when dask's local ``scheduler`` ("threads" /
    "synchronous" / "processes") or ``workers=0`` (in-process, dask's threads) runs the work.

    With an address, the client of that cluster. With ``workers`` = N >= 1, a local
    cluster of N worker processes sharing the cores. By default (``workers`` None) a
    local cluster of ONE in-process worker with a thread per core: every heavy kernel
    (video decoding, OpenCV filters, numba, FFT, BLAS, LZ4) releases the GIL, and threads
    share the chunks without copying them between processes -- on 2 cores a 6,000-frame
    run took 183 s this way against 247 s with two worker processes. BLAS is held to one
    thread per task thread for the whole run, and so is the LZ4 (blosc) codec: several
    threads per task only fight for the same cores."""
    import dask
    from threadpoolctl import threadpool_limits

    cores = max(1, os.cpu_count() or 1)
    if scheduler in LOCAL_SCHEDULERS or (workers == 0 and not scheduler):
        with dask.config.set(scheduler=scheduler or "threads", num_workers=workers or None):
            yield None
        return
    from ..parallel import dask_client

    if scheduler:
        with dask_client(scheduler=scheduler) as client:
            yield client
        return
    if workers:
        with threadpool_limits(1), _blosc_threads(1), dask_client(
                workers=workers, threads_per_worker=max(1, cores // workers), processes=True,
                memory_limit=memory_limit) as client:
            yield client
        return
    with threadpool_limits(1), _blosc_threads(1), dask_client(workers=1, threads_per_worker=cores,
                                                               processes=False, memory_limit=memory_limit) as client:
        yield client


def check_run_options(*, workers: int | None = None, scheduler: str | None = None, fps: float | None = None,
                      fraction: float | None = None, on_bad_video: str = "stop", memory_limit: str | None = None,
                      worker_timeout: float | None = None, from_step: str | None = None,
                      to_step: str | None = None) -> None:
    """Raise a one-line ``ConfigError`` naming the first option whose value is not allowed."""
    def bad(option: str, value, allowed: str, problem: str = "not allowed") -> ConfigError:
        return ConfigError(None, f"{option} {value}: {problem} (allowed: {allowed})")

    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise bad("--workers", workers, "an integer >= 0; 0 = in-process, no cluster")
    if scheduler is not None and scheduler not in LOCAL_SCHEDULERS and not _looks_like_address(scheduler):
        raise bad("--scheduler", scheduler, f"a scheduler address such as tcp://host:8786, or one of "
                  f"{', '.join(LOCAL_SCHEDULERS)}")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise bad("--fps", fps, "a frame rate > 0 (frames/s)")
    if fraction is not None and not (math.isfinite(fraction) and 0 < fraction <= 1):
        raise bad("--fraction", fraction, "a number in (0, 1]")
    if on_bad_video not in ("stop", "skip"):
        raise bad("--on-bad-video", on_bad_video, "stop, skip")
    if memory_limit is not None and memory_limit != "auto":
        from dask.utils import parse_bytes

        try:
            if parse_bytes(memory_limit) <= 0:
                raise ValueError
        except (ValueError, TypeError):
            raise bad("--memory-limit", memory_limit, "a size such as 4GB or 500MiB, or auto") from None
    for option, step in (("--from", from_step), ("--to", to_step)):
        if step is not None and step not in step_names():
            raise bad(option, step, ", ".join(step_names()), "unknown step")
    if worker_timeout is not None and not worker_timeout > 0:
        raise bad("worker_timeout", worker_timeout, "seconds > 0")


def _looks_like_address(text: str) -> bool:
    return "://" in text or bool(re.fullmatch(r"[\w.\-\[\]:]+:\d+", text))


@contextlib.contextmanager
def _blosc_threads(n: int) -> Iterator[None]:
    """Run with the blosc codec's thread count set to ``n`` (restored afterwards)."""
    from numcodecs import blosc

    before = blosc.get_nthreads()
    blosc.set_nthreads(n)
    try:
        yield
    finally:
        blosc.set_nthreads(before)


def _logger(out_dir: Path) -> tuple[logging.Logger, list[logging.Handler]]:
    log = logging.getLogger("scopeline.miniscope")
    log.setLevel(logging.INFO)
    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out_dir / "logs" / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    console = logging.StreamHandler(sys.stderr)  # warnings (a skipped video) are said on the console too
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("warning: %(message)s"))
    log.addHandler(console)
    return log, [handler, console]


def run_pipeline(
    input_dir: str | Path,
    out_dir: str | Path,
    params: BaseModel | None = None,
    from_step: str | None = None,
    to_step: str | None = None,
    fraction: float | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    memory_limit: str | None = None,
    on_bad_video: Literal["stop", "skip"] = "stop",
    fps: float | None = None,
    worker_timeout: float | None = None,
) -> RunResult:
    """Run the miniscope pipeline on the videos in ``input_dir`` into ``out_dir``.

    Stored step results are reused unless their parameters or upstream results changed.

    Parameters
    ----------
    input_dir : str or Path
        Folder of videos (AVI or TIFF stacks) matched by ``params.load.pattern``, read in
        natural order (``2.avi`` before ``10.avi``).
    out_dir : str or Path
        Output folder: ``store.zarr``, ``steps/``, ``export/``, ``params.json``,
        ``report.html``. Checked to be writable before any work.
    params : MiniscopeParams, optional
        Every parameter (default: the documented defaults).
    from_step, to_step : str, optional
        Re-run from this step; stop after that one (names: :func:`step_names`).
    fraction : float, optional
        In (0, 1]: process only this first part of the recording.
    scheduler : str, optional
        Address of a running Dask scheduler (e.g. ``tcp://host:8786``), or one of dask's
        local schedulers "threads" / "synchronous" / "processes". Paths are made absolute
        before work is sent, so relative ones work with any scheduler.
    workers : int, optional
        Local worker processes: 0 = in-process (dask's threads, no cluster); N = a local
        cluster of N processes; None (default) = one in-process worker with a thread per
        core (the fastest on one machine).
    memory_limit : str, optional
        Memory limit per local worker, e.g. ``"4GB"``.
    on_bad_video : {"stop", "skip"}
        An unreadable video stops the run, or is skipped (said on the console; its frames
        keep their place in the timeline).
    fps : float, optional
        Frame rate of the recording (frames/s); default ``params.config.fps``.
    worker_timeout : float, optional
        Seconds the run waits when every Dask worker died before it stops (default:
        the environment variable SCOPELINE_WORKER_TIMEOUT, else 60).

    Returns
    -------
    RunResult
        The steps run and reused, and where the parameters and the report are.

    Raises
    ------
    ConfigError, InputError
        One line naming the option, file or folder and the fix.
    """
    worker_timeout = _worker_timeout(worker_timeout)
    check_run_options(workers=workers, scheduler=scheduler, fps=fps, fraction=fraction, on_bad_video=on_bad_video,
                      memory_limit=memory_limit, worker_timeout=worker_timeout, from_step=from_step, to_step=to_step)
    input_dir, out_dir = Path(os.path.abspath(input_dir)), Path(os.path.abspath(out_dir))  # workers have other cwds
    params = MiniscopeParams() if params is None else MiniscopeParams.model_validate(params.model_dump())
    if fps is not None:
        params.config.fps = fps
    params.config.input_dir = str(input_dir)
    params.config.output_dir = str(out_dir)
    ensure_output_dir(out_dir)
    try:
        save_params(params, out_dir / "params.json")
        log, handlers = _logger(out_dir)
    except OSError as exc:
        raise _output_problem(exc, out_dir) or exc from None
    try:
        with _scheduler(scheduler, workers, memory_limit) as client, watch_workers(client, worker_timeout) as watch:
            context = {"client": client, "fps": params.config.fps, "fraction": fraction,
                       "input_dir": input_dir, "on_bad_video": on_bad_video}
            try:
                records = run_steps(out_dir, params, from_step=from_step, to_step=to_step, context=context, log=log)
            except Exception as exc:
                if watch.tripped:
                    raise watch.error() from None
                error = _output_problem(exc, out_dir)
                if error is not None:
                    raise error from None
                raise
        write_json(out_dir / "run.json", {"steps": [r.__dict__ for r in records], "fraction": fraction,
                                          "on_bad_video": on_bad_video})
    except OSError as exc:
        raise _output_problem(exc, out_dir) or exc from None
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()
    return RunResult(out_dir, records, out_dir / "params.json", out_dir / "report.html")


def run_from(
    out_dir: str | Path,
    step: str,
    params: BaseModel | None = None,
    *,
    to_step: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    memory_limit: str | None = None,
    worker_timeout: float | None = None,
) -> RunResult:
    """Re-run an earlier run from ``step`` on, e.g. with changed parameters.

    Parameters
    ----------
    out_dir : str or Path
        The output folder of an earlier :func:`run_pipeline` (its ``params.json`` gives
        the input folder and, unless ``params`` is given, the parameters).
    step : str
        First step to re-run; the steps before it must have up-to-date stored results.
    params : MiniscopeParams, optional
        New parameters (default: those of the earlier run).
    to_step, scheduler, workers, memory_limit, worker_timeout
        As in :func:`run_pipeline`.

    Returns
    -------
    RunResult
    """
    out_dir = Path(out_dir)
    stored = load_params(out_dir / "params.json")
    if not stored.config.input_dir:
        raise ConfigError(out_dir / "params.json", "no config.input_dir recorded", "use run_pipeline with the input")
    run_json = out_dir / "run.json"
    previous = json.loads(run_json.read_text()) if run_json.exists() else {}
    return run_pipeline(stored.config.input_dir, out_dir, params or stored, from_step=step, to_step=to_step,
                        fraction=previous.get("fraction"), scheduler=scheduler, workers=workers,
                        memory_limit=memory_limit, on_bad_video=previous.get("on_bad_video", "stop"),
                        worker_timeout=worker_timeout)


def preview_pipeline(input_dir: str | Path, params: BaseModel | None = None, n_frames: int = 500,
                     out_dir: str | Path | None = None) -> dict:
    """Guide step 2f: the early steps (load .. seed search) on the first ``n_frames``, in memory.

    Parameters
    ----------
    input_dir : str or Path
        Folder of videos.
    params : MiniscopeParams, optional
        The pipeline's parameters (defaults when None).
    n_frames : int
        Frames read from the start of the recording, 10 to 2,000.
    out_dir : str or Path, optional
        With it, ``out_dir/preview/`` gets ``preview.json`` and the figures (denoise,
        crop, seeds, motion PNGs); nothing else is written.

    Returns
    -------
    dict
        The statistics (:attr:`scopeline.miniscope.preview_steps.StepPreview.stats`).
    """
    from .preview_steps import preview_steps, write_preview

    params = MiniscopeParams() if params is None else MiniscopeParams.model_validate(params.model_dump())
    result = preview_steps(input_dir, params, n_frames)
    if out_dir is not None:
        write_preview(result, out_dir)
    return result.stats


def export_run(out_dir: str | Path, curation: bool = True) -> dict:
    """Write ``OUT/export`` again from the run's stored result, without re-running a step.

    Parameters
    ----------
    out_dir : str or Path
        A run whose export step has finished.
    curation : bool
        Apply ``OUT/curation.json`` (rejections and merges made in the unit explorer of
        ``scopeline serve``, see :mod:`scopeline.miniscope.curation`); False writes every
        unit the export step kept.

    Returns
    -------
    dict
        ``units_before``, ``units_exported``, ``rejected``, ``merged``, ``export_dir``.
    """
    from .curation import Curation
    from .export_curated import export_curated

    return export_curated(out_dir, None if curation else Curation())


def _output_problem(exc: BaseException, folder: Path):
    """The one-line error for a full disk or a read-only/forbidden ``folder`` (None for any
    other error): also when it reaches us from a Dask worker."""
    if isinstance(exc, OSError):
        converted = output_error(exc, folder)
        if converted is not exc:
            return converted
    return None
