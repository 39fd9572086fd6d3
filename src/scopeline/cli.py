"""The ``scopeline`` command: a thin adapter from the command line to the Python API."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console

from .errors import ScopelineError

app = typer.Typer(
    help="Quality control and processing of cryo-EM and miniscope movies.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def friendly_errors(func: Callable) -> Callable:
    """Bad input ends the command with one line and a non-zero exit, no traceback
    (set SCOPELINE_DEBUG=1 to see it)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ScopelineError as exc:
            if os.environ.get("SCOPELINE_DEBUG"):
                raise
            err.print(f"[bold red]error:[/] {exc.one_line()}", soft_wrap=True)
            raise typer.Exit(2)
        except (KeyboardInterrupt, typer.Exit):
            raise
        except Exception as exc:  # noqa: BLE001
            if os.environ.get("SCOPELINE_DEBUG"):
                raise
            err.print(f"[bold red]error:[/] {type(exc).__name__}: {exc} "
                      "(set SCOPELINE_DEBUG=1 for the traceback)", soft_wrap=True)
            raise typer.Exit(1)

    return wrapper


# Options shared by the streaming cryo-EM tools.
WatchOpt = typer.Option(False, "--watch", help="Keep polling the input for new items until it is closed.")
IdleOpt = typer.Option(60.0, "--idle-timeout", help="With --watch: stop after this many seconds without a new item.")
StopOpt = typer.Option(None, "--stop-file", help="With --watch: stop once this file exists.")
PollOpt = typer.Option(5.0, "--poll-interval", help="With --watch: seconds between polls of the input.")
BatchOpt = typer.Option(16, "--batch-size", help="Items per processing batch.")
SchedulerOpt = typer.Option(None, "--scheduler", help="Address of an existing Dask scheduler (default: a local cluster).")
WorkersOpt = typer.Option(None, "--workers", help="Local Dask workers (default: one per core; 0 = no Dask, in-process).")
MinAgeOpt = typer.Option(None, "--min-file-age", help="Skip files modified less than this many seconds ago (still being written); default 10 with --watch, else 0.")


def _stream_options(watch, idle_timeout, stop_file, poll_interval, batch_size):
    from .stream import StreamOptions

    return StreamOptions(watch=watch, idle_timeout=idle_timeout, stop_file=stop_file,
                         poll_interval=poll_interval, batch_size=batch_size)


def _warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {message}", soft_wrap=True)


@app.command()
@friendly_errors
def dose(
    inputs: List[str] = typer.Argument(..., help="Movie files, globs, a folder, a RELION STAR or a Scipion .sqlite."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Å/px (default: input set, then movie header)."),
    dose_per_frame: Optional[float] = typer.Option(None, "--dose-per-frame", help="Expected e/Å² per frame (metadata)."),
    samples: int = typer.Option(20, "--samples", help="Movies measured before the reference dose is set."),
    max_diff: float = typer.Option(5.0, "--max-diff", help="Accepted band around the reference dose, ± %."),
    window: int = typer.Option(50, "--window", help="Movies per anomaly window."),
    max_faulty: float = typer.Option(30.0, "--max-faulty", help="Warn when more than this % of a window is outside the band."),
    gain: Optional[Path] = typer.Option(None, "--gain", help="Gain reference (MRC/TIFF) multiplied into frames."),
    eer_fractions: Optional[int] = typer.Option(None, "--eer-fractions", help="EER: sum raw frames into this many fractions (dose is per fraction; default 40, or the nearest divisor)."),
    watch: bool = WatchOpt, idle_timeout: float = IdleOpt, stop_file: Optional[Path] = StopOpt,
    poll_interval: float = PollOpt, batch_size: int = BatchOpt,
    scheduler: Optional[str] = SchedulerOpt, workers: Optional[int] = WorkersOpt,
    min_file_age: Optional[float] = MinAgeOpt,
):
    """Estimate each movie's dose, set a reference, accept or discard movies, warn on anomalies."""
    from .cryoem.dose import DoseParams
    from .cryoem.dose_analysis import run_dose

    params = DoseParams(pixel_size=pixel_size, dose_per_frame=dose_per_frame, samples=samples,
                        max_diff=max_diff, window=window, max_faulty=max_faulty, gain=gain, eer_fractions=eer_fractions)
    summary = run_dose(inputs, out_dir, params,
                       _stream_options(watch, idle_timeout, stop_file, poll_interval, batch_size),
                       scheduler=scheduler, workers=workers, warn=_warn, min_file_age=min_file_age)
    ref = summary["reference_dose"]
    out.print(f"reference dose {ref:.4g} e/Å²/frame ({summary['reference_source']})" if ref else "no reference dose (no movie measured)")
    out.print(f"accepted {summary['n_accepted']}, discarded {summary['n_discarded']}, "
              f"failed {summary['n_failed']}; outputs in {out_dir}")


@app.command()
@friendly_errors
def maxshift(
    inputs: List[str] = typer.Argument(..., help="RELION corrected_micrographs.star, motion STARs, MotionCor2 *-Full.log files, a CSV (movie,frame,x,y), a Scipion .sqlite, folders or globs."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Å/px of the shifts (default: from the files)."),
    rejection: str = typer.Option("or", "--rejection", help="Reject by: frame | movie | and | or."),
    max_frame_shift: float = typer.Option(10.0, "--max-frame-shift", help="Largest allowed step between consecutive frames (Å)."),
    max_movie_shift: float = typer.Option(45.0, "--max-movie-shift", help="Largest allowed total path (Å)."),
    early_dose: float = typer.Option(4.0, "--early-dose", help="Cumulative dose (e/Å²) up to which motion counts as early."),
    max_early_shift: Optional[float] = typer.Option(None, "--max-early-shift", help="Also reject movies whose early motion exceeds this (Å)."),
    dose_per_frame: Optional[float] = typer.Option(None, "--dose-per-frame", help="e/Å² per frame when the files do not say (for early/late)."),
    micrographs: Optional[Path] = typer.Option(None, "--micrographs", help="STAR of micrographs to split with the movie decisions."),
    watch: bool = WatchOpt, idle_timeout: float = IdleOpt, stop_file: Optional[Path] = StopOpt,
    poll_interval: float = PollOpt, batch_size: int = BatchOpt,
    scheduler: Optional[str] = SchedulerOpt, workers: Optional[int] = WorkersOpt,
    min_file_age: Optional[float] = MinAgeOpt,
):
    """Reject aligned movies whose frame-to-frame jumps or total drift exceed limits."""
    from .cryoem.maxshift import MaxShiftParams, run_maxshift

    params = MaxShiftParams(rejection=rejection, max_frame_shift=max_frame_shift,
                            max_movie_shift=max_movie_shift, early_dose=early_dose,
                            max_early_shift=max_early_shift, pixel_size=pixel_size,
                            dose_per_frame=dose_per_frame)
    summary = run_maxshift(inputs, out_dir, params, micrographs=micrographs,
                           stream_options=_stream_options(watch, idle_timeout, stop_file, poll_interval, batch_size),
                           scheduler=scheduler, workers=workers, min_file_age=min_file_age, warn=_warn)
    out.print(", ".join(f"{k.removeprefix('n_')} {v}" for k, v in summary.items()
                        if k.startswith("n_") and isinstance(v, int)) + f"; outputs in {out_dir}")


@app.command()
@friendly_errors
def demo(
    out_dir: Path = typer.Option(Path("scopeline-demo"), "--out", help="Folder for the demo data and outputs."),
    workers: Optional[int] = typer.Option(2, "--workers", help="Local Dask workers."),
):
    """Generate small synthetic data and run every tool on it."""
    from .demo import run_demo

    for line in run_demo(out_dir, workers=workers, echo=out.print):
        out.print(line)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
