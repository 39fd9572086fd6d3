"""Entry points of ``scopeline miniscope`` (the CLI is a thin layer over these)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

from pydantic import BaseModel

from ..errors import ConfigError
from ..io.atomic import write_json
from .params import MiniscopeParams, save_params
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
    """Write every parameter with its default value to ``path`` (JSON)."""
    save_params(MiniscopeParams(), path)
    return Path(path)


def step_names() -> list[str]:
    return [s.name for s in available_steps()]


@contextlib.contextmanager
def _scheduler(scheduler: str | None, workers: int | None, memory_limit: str | None) -> Iterator[object]:
    """A distributed client, or a local dask scheduler when ``scheduler`` is "threads" /
    "synchronous" / "processes".

    With an address, the client of that cluster. By default a local cluster of ONE worker
    process with ``workers`` threads (default: one per core): every heavy kernel (video
    decoding, OpenCV filters, numba, FFT, BLAS, LZ4) releases the GIL, and threads share
    the chunks without copying them between processes -- on 2 cores a 6,000-frame run took
    183 s this way against 247 s with two worker processes. BLAS is held to one thread
    per task thread for the whole run, and so is the LZ4 (blosc) codec: several threads
    per task only fight for the same cores."""
    import dask
    from threadpoolctl import threadpool_limits

    if scheduler in LOCAL_SCHEDULERS:
        with dask.config.set(scheduler=scheduler, num_workers=workers):
            yield None
        return
    from ..parallel import dask_client

    if scheduler:
        with dask_client(scheduler=scheduler) as client:
            yield client
        return
    threads = workers or max(1, os.cpu_count() or 1)
    with threadpool_limits(1), _blosc_threads(1), dask_client(workers=1, threads_per_worker=threads,
                                                               processes=False, memory_limit=memory_limit) as client:
        yield client


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
) -> RunResult:
    """Run the miniscope pipeline on the videos in ``input_dir`` into ``out_dir``.

    Stored step results are reused unless their parameters or upstream results changed;
    ``from_step`` re-runs from that step, ``to_step`` stops after it. ``fraction`` (0-1]
    processes only the first part of the recording. ``scheduler``: None = local dask
    cluster (one worker process with ``workers`` threads, see ``_scheduler``), an address =
    that cluster, or "threads" /
    "synchronous" for dask's local schedulers. Writes OUT/params.json and OUT/report.html.
    """
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    params = MiniscopeParams() if params is None else MiniscopeParams.model_validate(params.model_dump())
    if fraction is not None and not 0 < fraction <= 1:
        raise ConfigError(None, f"--fraction must be in (0, 1], got {fraction}")
    if on_bad_video not in ("stop", "skip"):
        raise ConfigError(None, f"on_bad_video must be 'stop' or 'skip', got {on_bad_video!r}")
    if fps is not None:
        params.config.fps = fps
    params.config.input_dir = str(input_dir)
    params.config.output_dir = str(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_params(params, out_dir / "params.json")
    log, handlers = _logger(out_dir)
    try:
        with _scheduler(scheduler, workers, memory_limit) as client:
            context = {"client": client, "fps": params.config.fps, "fraction": fraction,
                       "input_dir": input_dir, "on_bad_video": on_bad_video}
            records = run_steps(out_dir, params, from_step=from_step, to_step=to_step, context=context, log=log)
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()
    write_json(out_dir / "run.json", {"steps": [r.__dict__ for r in records], "fraction": fraction,
                                      "on_bad_video": on_bad_video})
    return RunResult(out_dir, records, out_dir / "params.json", out_dir / "report.html")


def preview_pipeline(input_dir: str | Path, params: BaseModel | None = None, n_frames: int = 500,
                     out_dir: str | Path | None = None) -> dict:
    """Guide step 2f: statistics of steps 2a-2d on the first ``n_frames`` (see ``preview``)."""
    from .preview import preview

    params = MiniscopeParams() if params is None else MiniscopeParams.model_validate(params.model_dump())
    return preview(input_dir, params, n_frames, out_dir)
