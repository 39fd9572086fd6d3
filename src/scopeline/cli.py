"""The ``scopeline`` command: a thin adapter from the command line to the Python API."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from .cryoem.cleaner.cleaning import CleanParams
from .cryoem.dose import DoseParams
from .cryoem.maxshift import MaxShiftParams
from .errors import ConfigError, ScopelineError


class _Commands(TyperGroup):
    """Also accepts the spelling ``scopeline clean train ...`` for ``clean-train`` (issue 10)."""

    ALIASES = {("clean", "train"): "clean-train"}

    def parse_args(self, ctx, args):
        if tuple(args[:2]) in self.ALIASES:
            args = [self.ALIASES[tuple(args[:2])], *args[2:]]
        return super().parse_args(ctx, args)


app = typer.Typer(
    help="Quality control and processing of cryo-EM and miniscope movies.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, cls=_Commands,
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
            raise typer.Exit(2) from None
        except (KeyboardInterrupt, typer.Exit):
            raise
        except Exception as exc:  # noqa: BLE001
            if os.environ.get("SCOPELINE_DEBUG"):
                raise
            err.print(f"[bold red]error:[/] {type(exc).__name__}: {exc} "
                      "(set SCOPELINE_DEBUG=1 for the traceback)", soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


# Options shared by the streaming cryo-EM tools; defaults written once, in StreamOptions.
def _stream_default(name: str):
    from .stream import StreamOptions

    return StreamOptions.__dataclass_fields__[name].default


def _default(model, name: str):
    """A parameter's default, from its pydantic model (written once, there)."""
    return model.model_fields[name].default


WatchOpt = typer.Option(False, "--watch", help="Keep polling the input for new items until it is closed.")
IdleOpt = typer.Option(_stream_default("idle_timeout"), "--idle-timeout", help="With --watch: stop after this many seconds without a new item.")
StopOpt = typer.Option(None, "--stop-file", help="With --watch: stop once this file exists.")
PollOpt = typer.Option(_stream_default("poll_interval"), "--poll-interval", help="With --watch: seconds between polls of the input.")
BatchOpt = typer.Option(_stream_default("batch_size"), "--batch-size", help="Items per processing batch (>= 1).")
SchedulerOpt = typer.Option(None, "--scheduler", help="Address of an existing Dask scheduler (default: a local cluster).")
WorkersOpt = typer.Option(None, "--workers", help="Worker processes (0 = in this process, no Dask; default: see the tool's docs).")


def _min_age_opt():
    from .stream import DEFAULT_MIN_FILE_AGE_S

    return typer.Option(None, "--min-file-age", help=f"Skip files modified less than this many seconds ago (still being written); default {DEFAULT_MIN_FILE_AGE_S:g} with --watch, else 0.")


MinAgeOpt = _min_age_opt()


def _stream_options(watch, idle_timeout, stop_file, poll_interval, batch_size, min_file_age=None):
    from .stream import StreamOptions

    return StreamOptions(watch=watch, idle_timeout=idle_timeout, stop_file=stop_file,
                         poll_interval=poll_interval, batch_size=batch_size, min_file_age=min_file_age)


def _params(params_model, /, **values):
    """``model(**values)``; a bad value ends in one line naming the option and what is allowed."""
    from pydantic import ValidationError

    from .errors import ConfigError

    try:
        return params_model(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error.get("loc") else "?"
        option = "--" + field.replace("_", "-")
        value = values.get(field, error.get("input"))
        raise ConfigError(None, f"{option} {value} is not allowed: {error['msg'].lower()}",
                          f"give {option} a value that satisfies this (see --help)") from None


def _warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {message}", soft_wrap=True)


@app.command()
@friendly_errors
def dose(
    inputs: List[str] = typer.Argument(..., help="Movie files, globs, a folder, a RELION STAR or a Scipion .sqlite."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Å/px (default: input set, then movie header)."),
    dose_per_frame: Optional[float] = typer.Option(None, "--dose-per-frame", help="Expected e/Å² per frame (metadata)."),
    samples: int = typer.Option(_default(DoseParams, "samples"), "--samples", help="Movies measured before the reference dose is set."),
    max_diff: float = typer.Option(_default(DoseParams, "max_diff"), "--max-diff", help="Accepted band around the reference dose, ± %."),
    window: int = typer.Option(_default(DoseParams, "window"), "--window", help="Movies per anomaly window."),
    max_faulty: float = typer.Option(_default(DoseParams, "max_faulty"), "--max-faulty", help="Warn when more than this % of a window is outside the band."),
    gain: Optional[Path] = typer.Option(None, "--gain", help="Gain reference (MRC/TIFF) multiplied into frames."),
    eer_fractions: Optional[int] = typer.Option(None, "--eer-fractions", help="EER: sum raw frames into this many fractions (dose is per fraction; default 40, or the nearest divisor)."),
    watch: bool = WatchOpt, idle_timeout: float = IdleOpt, stop_file: Optional[Path] = StopOpt,
    poll_interval: float = PollOpt, batch_size: int = BatchOpt,
    scheduler: Optional[str] = SchedulerOpt, workers: Optional[int] = WorkersOpt,
    min_file_age: Optional[float] = MinAgeOpt,
):
    """Estimate each movie's dose, set a reference, accept or discard movies, warn on anomalies.

    Runs on a local Dask cluster with one worker per core unless --workers or --scheduler say otherwise."""
    from .cryoem.dose_analysis import run_dose
    from .parallel import validate_workers

    params = _params(DoseParams, pixel_size=pixel_size, dose_per_frame=dose_per_frame, samples=samples,
                     max_diff=max_diff, window=window, max_faulty=max_faulty, gain=gain, eer_fractions=eer_fractions)
    stream = _stream_options(watch, idle_timeout, stop_file, poll_interval, batch_size, min_file_age)
    validate_workers(workers)
    summary = run_dose(inputs, out_dir, params, stream=stream, scheduler=scheduler, workers=workers, warn=_warn)
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
    rejection: str = typer.Option(_default(MaxShiftParams, "rejection"), "--rejection", help="Reject by: frame | movie | and | or."),
    max_frame_shift: float = typer.Option(_default(MaxShiftParams, "max_frame_shift"), "--max-frame-shift", help="Largest allowed step between consecutive frames (Å)."),
    max_movie_shift: float = typer.Option(_default(MaxShiftParams, "max_movie_shift"), "--max-movie-shift", help="Largest allowed total path (Å)."),
    early_dose: float = typer.Option(_default(MaxShiftParams, "early_dose"), "--early-dose", help="Cumulative dose (e/Å²) up to which motion counts as early."),
    max_early_shift: Optional[float] = typer.Option(None, "--max-early-shift", help="Also reject movies whose early motion exceeds this (Å)."),
    dose_per_frame: Optional[float] = typer.Option(None, "--dose-per-frame", help="e/Å² per frame when the files do not say (for early/late)."),
    micrographs: Optional[Path] = typer.Option(None, "--micrographs", help="STAR of micrographs to split with the movie decisions."),
    use_accumulated_motion: bool = typer.Option(_default(MaxShiftParams, "use_accumulated_motion"), "--use-accumulated-motion", help="corrected_micrographs.star: use RELION's rlnAccumMotionTotal/Early/Late instead of the motion STARs (the largest frame step is then unknown: use --rejection movie). Rows whose motion STAR is missing use them anyway, with a warning."),
    watch: bool = WatchOpt, idle_timeout: float = IdleOpt, stop_file: Optional[Path] = StopOpt,
    poll_interval: float = PollOpt, batch_size: int = BatchOpt,
    scheduler: Optional[str] = SchedulerOpt, workers: Optional[int] = WorkersOpt,
    min_file_age: Optional[float] = MinAgeOpt,
):
    """Reject aligned movies whose frame-to-frame jumps or total drift exceed limits.

    Runs in this process unless --workers >= 1 or --scheduler is given."""
    from .cryoem.maxshift_run import run_maxshift

    params = _params(MaxShiftParams, rejection=rejection, max_frame_shift=max_frame_shift,
                     max_movie_shift=max_movie_shift, early_dose=early_dose,
                     max_early_shift=max_early_shift, pixel_size=pixel_size,
                     dose_per_frame=dose_per_frame, use_accumulated_motion=use_accumulated_motion)
    stream = _stream_options(watch, idle_timeout, stop_file, poll_interval, batch_size, min_file_age)
    summary = run_maxshift(inputs, out_dir, params, micrographs=micrographs, stream=stream,
                           scheduler=scheduler, workers=workers, warn=_warn)
    out.print(_counts(summary) + f"; outputs in {out_dir}")


@app.command()
@friendly_errors
def clean(
    micrographs: List[str] = typer.Option(..., "--micrographs", help="Micrographs (MRC/TIFF): files, folders, globs or a STAR (repeatable)."),
    coords: List[str] = typer.Option(..., "--coords", help="Coordinates: Xmipp .pos, RELION .star (*_autopick.star), EMAN .box, CSV; files, folders or globs (repeatable)."),
    box_size: float = typer.Option(..., "--box-size", help="Particle box in pixels of the coordinates' micrographs."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Keep picks whose good-region score > T; -1 keeps all and only scores (default: the shipped model's)."),
    save_masks: bool = typer.Option(False, "--save-masks", help="Write DIR/masks/<micrograph>.mrc (1 = bad region)."),
    thumbnails: int = typer.Option(_default(CleanParams, "thumbnails"), "--thumbnails", help="Overlay images for the first N micrographs."),
    min_kept: int = typer.Option(_default(CleanParams, "min_kept"), "--min-kept", help="A micrograph keeping fewer picks than this goes to micrographs_discarded.star."),
    other_micrographs: Optional[List[str]] = typer.Option(None, "--other-micrographs", help="Run the model on these micrographs instead (matched by name), coordinates rescaled by the pixel-size ratio."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="Å/px of the coordinates' micrographs (default: header)."),
    other_pixel_size: Optional[float] = typer.Option(None, "--other-pixel-size", help="Å/px of --other-micrographs (default: header)."),
    output_scale: str = typer.Option(_default(CleanParams, "output_scale"), "--output-scale", help="Write cleaned coordinates at the scale of the 'coordinates' or of the 'other' micrographs."),
    invert_contrast: bool = typer.Option(False, "--invert-contrast", help="Micrographs have bright particles on a dark background."),
    region_seed: float = typer.Option(_default(CleanParams, "region_seed"), "--region-seed", help="Off (0) by default. E.g. 0.8: a candidate bad region counts only if it holds a core (one box) at least this probable: removes false alarms on clean ice for a model confident on real carbon (docs/clean.md)."),
    region_step: float = typer.Option(_default(CleanParams, "region_step"), "--region-step", help="A candidate bad region counts only if the image steps across its boundary this many times the field's own fluctuation (default 6): removes false alarms on smoothly darker ice; 0 turns it off (docs/clean.md)."),
    region_dark_part: bool = typer.Option(_default(CleanParams, "region_dark_part"), "--region-dark-part/--no-region-dark-part", help="Where the candidate regions cover most of the micrograph, of a region stepping darker only what is darker than the ice around the step stays bad (default on; docs/clean.md, session 9)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model weights (.onnx or .pt; default: the shipped model)."),
    device: str = typer.Option(_default(CleanParams, "device"), "--device", help="auto | cpu | cuda | torch-cpu."),
    threads: int = typer.Option(_default(CleanParams, "threads"), "--threads", help="Inference threads (per worker)."),
    watch: bool = WatchOpt, idle_timeout: float = IdleOpt, stop_file: Optional[Path] = StopOpt,
    poll_interval: float = PollOpt, batch_size: int = BatchOpt,
    scheduler: Optional[str] = SchedulerOpt, workers: Optional[int] = WorkersOpt,
    min_file_age: Optional[float] = MinAgeOpt,
):
    """Remove picked coordinates that fall on carbon, contamination and other bad regions.

    Runs in this process unless --workers >= 1 or --scheduler is given."""
    from .cryoem.cleaner.clean import run_clean

    extra = {} if threshold is None else {"threshold": threshold}
    params = _params(CleanParams, box_size=box_size, save_masks=save_masks, thumbnails=thumbnails,
                     min_kept=min_kept, batch_size=batch_size, model=model, device=device, threads=threads,
                     invert_contrast=invert_contrast, region_seed=region_seed, region_step=region_step,
                     region_dark_part=region_dark_part, pixel_size=pixel_size,
                     other_pixel_size=other_pixel_size, output_scale=output_scale, **extra)
    stream = _stream_options(watch, idle_timeout, stop_file, poll_interval, batch_size, min_file_age)
    summary = run_clean(micrographs, coords, out_dir, params, other_micrographs=other_micrographs or None,
                        stream=stream, scheduler=scheduler, workers=workers, warn=_warn)
    out.print(_counts(summary) + f"; outputs in {out_dir}")


@app.command("clean-train")
@friendly_errors
def clean_train(
    images: Path = typer.Option(..., "--images", help="Folder of your micrographs (MRC/TIFF/PNG/JPG)."),
    labels: Path = typer.Option(..., "--labels", help="Folder of label masks named like the micrographs (mic01.png or mic01_class.png)."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder: cleaner_unet.onnx (pass it to `clean --model`), .pt, train_log.json."),
    box_size: float = typer.Option(..., "--box-size", help="Particle box in pixels of these micrographs."),
    label_format: str = typer.Option("classes", "--label-format", help="classes: 0 good, 1 particle, 2 contamination, 3 carbon, 4 ignore, 5+ other bad; binary: 0 good, non-zero bad."),
    steps: int = typer.Option(300, "--steps", help="Training steps per member (batches of 8 crops)."),
    minutes: float = typer.Option(30.0, "--minutes", help="Stop early after this many minutes (all members together)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from this checkpoint (.pt; default: the shipped model)."),
    members: Optional[int] = typer.Option(None, "--members", min=1, help="Networks fine-tuned, each from its own member of --init (default: as many as it holds; the shipped model: see docs/clean.md)."),
):
    """Fine-tune the micrograph cleaner on your own labelled micrographs."""
    from .cryoem.cleaner.train import fine_tune_on_labels
    from .errors import ConfigError

    if label_format not in ("classes", "binary"):
        raise ConfigError("--label-format", f"unknown label format {label_format!r}", "give classes or binary")
    summary = fine_tune_on_labels(images, labels, out_dir, box_size, label_format, steps, minutes, init,
                                  log=lambda t: None, members=members)
    members = len(summary.get("members", [])) or 1
    out.print(f"{summary['steps_done']} steps ({members} member{'s' if members > 1 else ''}) in {summary['seconds']:.0f} s "
              f"on {len(summary['real_micrographs'])} micrographs; use --model {out_dir / 'cleaner_unet.onnx'}")


@app.command()
@friendly_errors
def rethreshold(
    out_dir: Path = typer.Argument(..., help="Output folder of an earlier `scopeline clean` run."),
    threshold: float = typer.Option(..., "--threshold", help="New threshold on the good-region score (-1 keeps all)."),
):
    """Re-apply a new threshold to the saved scores of a `clean` run, without the model."""
    from .cryoem.cleaner.clean import rethreshold as apply_threshold

    summary = apply_threshold(out_dir, threshold)
    out.print(_counts(summary) + f"; outputs in {out_dir}")


def _counts(summary: dict) -> str:
    return ", ".join(f"{k.removeprefix('n_').replace('_', ' ')} {v}" for k, v in summary.items()
                     if k.startswith("n_") and isinstance(v, int))


miniscope_app = typer.Typer(help="Miniscope calcium imaging: raw video to footprints (A), calcium (C) and spikes (S).",
                             no_args_is_help=True)
app.add_typer(miniscope_app, name="miniscope")


def _miniscope_params(params_file: Optional[Path]):
    from .miniscope.params import MiniscopeParams, load_params

    return load_params(params_file) if params_file else MiniscopeParams()


@miniscope_app.command("run")
@friendly_errors
def miniscope_run(
    input_dir: Path = typer.Argument(..., help="Folder of videos (AVI or TIFF stacks), matched by the regex in the parameters (default `.avi$`), in natural order."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder (zarr store, report, export)."),
    params_file: Optional[Path] = typer.Option(None, "--params", help="Parameters JSON (see `scopeline miniscope params`)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate of the recording."),
    from_step: Optional[str] = typer.Option(None, "--from", help="Re-run from this step."),
    to_step: Optional[str] = typer.Option(None, "--to", help="Stop after this step."),
    fraction: Optional[float] = typer.Option(None, "--fraction", help="Process only this first fraction of the recording (e.g. 0.1)."),
    on_bad_video: str = typer.Option("stop", "--on-bad-video", help="stop | skip: what to do with an unreadable video file (a skipped file's frames keep their place in the timeline)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Address of an existing Dask scheduler (tcp://host:8786), or threads | synchronous | processes (dask's local schedulers)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Local Dask worker processes (0 = in-process, no cluster; default: one in-process worker with a thread per core, the fastest on one machine)."),
    memory_limit: Optional[str] = typer.Option(None, "--memory-limit", help="Memory limit of the local Dask worker (e.g. 4GB)."),
):
    """Run the pipeline (every step, or --from/--to a range); stored steps are reused."""
    from .miniscope.api import run_pipeline

    result = run_pipeline(input_dir, out_dir, _miniscope_params(params_file), from_step=from_step,
                          to_step=to_step, fraction=fraction, scheduler=scheduler, workers=workers,
                          memory_limit=memory_limit, on_bad_video=on_bad_video, fps=fps)
    out.print(f"ran: {', '.join(result.ran) or '-'}; reused: {', '.join(result.reused) or '-'}")
    out.print(f"outputs in {out_dir} (report: {result.report_path})")


@miniscope_app.command("params")
@friendly_errors
def miniscope_params(path: Path = typer.Argument(..., help="Where to write the parameters JSON.")):
    """Write every parameter with its documented default to a JSON file to edit."""
    from .miniscope.api import write_default_params

    out.print(f"wrote {write_default_params(path)}")


@miniscope_app.command("steps")
@friendly_errors
def miniscope_steps():
    """List the pipeline steps in order (names for --from / --to)."""
    from .miniscope.api import step_names

    for name in step_names():
        out.print(name)


@miniscope_app.command("preview")
@friendly_errors
def miniscope_preview(
    input_dir: Path = typer.Argument(..., help="Folder of videos."),
    params_file: Optional[Path] = typer.Option(None, "--params", help="Parameters JSON."),
    n_frames: int = typer.Option(500, "--frames", help="Frames to preview (10 to 2,000)."),
    out_dir: Optional[Path] = typer.Option(
        None, "--out", help="Where to write the statistics and figures (OUT/preview/)."),
):
    """The early steps (load, preprocess, motion, crop, seed search) on the first frames, in
    memory: statistics on the console; with --out, preview.json and the figures."""
    from .miniscope.api import preview_pipeline

    stats = preview_pipeline(input_dir, _miniscope_params(params_file), n_frames, out_dir)
    for key, value in stats.items():
        out.print(f"{key}: {value}")


@miniscope_app.command("export")
@friendly_errors
def miniscope_export(
    run_dir: Path = typer.Argument(..., help="A finished run folder (its export step done)."),
    curation: bool = typer.Option(True, "--curation/--no-curation",
                                  help="Apply RUN/curation.json (the unit explorer's rejections and merges)."),
):
    """Write RUN/export again from the stored result (curation applied), without re-running."""
    from .miniscope.api import export_run

    summary = export_run(run_dir, curation=curation)
    merged = "; ".join("+".join(map(str, g)) for g in summary["merged"]) or "-"
    out.print(f"exported {summary['units_exported']} of {summary['units_before']} units "
              f"(rejected: {', '.join(map(str, summary['rejected'])) or '-'}; merged: {merged}) "
              f"to {summary['export_dir']}", soft_wrap=True)


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


def _stream_default_age() -> float:
    from .stream import DEFAULT_MIN_FILE_AGE_S

    return DEFAULT_MIN_FILE_AGE_S


@app.command()
@friendly_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; other than loopback needs a token."),
    port: int = typer.Option(8765, "--port", help="TCP port.", min=0, max=65535),
    token: Optional[str] = typer.Option(None, "--token", envvar="SCOPELINE_TOKEN",
                                        help="Secret every request must carry (generated and printed when "
                                             "--host is not loopback and none is given)."),
    watch: List[Path] = typer.Option([], "--watch", help="Session folder (or growing RELION STAR) to QC live: dose, maxshift and clean run on it as jobs of the server, outputs in RUNS/live (repeatable; read only)."),
    runs: Path = typer.Option(Path("."), "--runs", help="Folder where the run folders live (the only one the UI writes)."),
    box_size: Optional[float] = typer.Option(None, "--box-size", help="Live QC: particle box (px) for clean; without it the cleaner is not started."),
    poll_interval: float = typer.Option(5.0, "--poll-interval", help="Live QC: seconds between looks of each job at its input."),
    min_file_age: float = typer.Option(_stream_default_age(), "--min-file-age", help="Live QC: files younger than this many seconds are still being written."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Live QC: --workers of each job (0 = no Dask; default: the tool's)."),
):
    """Browser UI over the runs under --runs (the only folders it may touch: --runs and --watch)."""
    try:
        import fastapi  # noqa: F401
        import jinja2  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the [ui] extra is missing
        raise ConfigError(None, f"the browser UI needs the [ui] extra ({exc})", "pip install 'scopeline[ui]'") from exc
    from .ui import ServeConfig
    from .ui import serve as serve_ui
    from .ui.config import LiveOptions

    live = _params(LiveOptions, box_size=box_size, poll_interval=poll_interval, min_file_age=min_file_age,
                   workers=workers)
    config, generated = ServeConfig(host=host, port=port, token=token, runs=runs, watch=tuple(watch),
                                    live=live).checked()
    if generated:
        out.print(f"token (give it once; the browser keeps it in a cookie): {config.token}",
                  soft_wrap=True, markup=False)
    serve_ui(config, announce=lambda line: out.print(line, soft_wrap=True, markup=False))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
