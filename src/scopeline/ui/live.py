"""Live facility QC: the tools that apply to each ``--watch`` session, run as server jobs.

For every ``--watch`` target the server looks at what it holds (:func:`survey`, at most
:data:`MAX_DEPTH` folders deep, hidden folders and ``--runs`` left out) and plans one job per
tool (:func:`plan_jobs`):

- **dose** on movies (``.tif``/``.tiff``/``.eer``/``.mrcs`` anywhere below, as recursive
  globs so new acquisition folders are followed; ``.mrc`` files with more than one frame,
  by folder), or on a watched RELION movies STAR;
- **maxshift** on a RELION motion job (``corrected_micrographs.star``, the watched STAR
  itself when it is one), else on MotionCor2 ``*-Full.log`` files;
- **clean** on micrographs (single-frame ``.mrc``) with picks beside or below the session
  (``*_autopick.star``, ``.pos``, ``.box``), when ``--box-size`` was given.

Each runs ``scopeline <tool> ... --watch`` with its outputs in
``RUNS/live/<session>/<tool>`` (a restarted server resumes them from their journals) and
its log in ``RUNS/live/logs``. A tool that does not apply is not started; the page says why.
Until every tool runs, the session is looked at again every few seconds (movies may not
have arrived yet when the server starts). Jobs stop with the server (stop file first, so
each tool writes its final outputs).
"""

from __future__ import annotations

import atexit
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .config import ServeConfig
from .jobs import Job, JobManager

TOOLS = ("dose", "maxshift", "clean")
MAX_DEPTH = 4  # folders below a session that are looked at
LIVE_DIR = "live"  # RUNS/live/<session>/<tool>
STOP_GRACE_S = 10.0  # s after a poll interval for a job to close its input and write its final outputs
IDLE_TIMEOUT_S = 7 * 24 * 3600  # the server, not the tool, decides when watching ends
STREAM_MOVIE_EXT = (".tif", ".tiff", ".eer", ".mrcs")
COORD_PATTERNS = ("_autopick.star", "_manualpick.star", ".pos", ".box")


@dataclass
class Survey:
    """What a session holds (absolute paths)."""

    movie_ext: set[str] = field(default_factory=set)  # stream movie extensions found anywhere
    mrc_movie_dirs: list[Path] = field(default_factory=list)
    micrograph_dirs: list[Path] = field(default_factory=list)
    coord_globs: list[str] = field(default_factory=list)  # "DIR/*_autopick.star"
    motion_tables: list[Path] = field(default_factory=list)  # corrected_micrographs.star
    motioncor_logs: bool = False
    movies_star: Path | None = None  # a watched STAR listing movies


@dataclass
class Plan:
    """One tool for one session: started, or why not."""

    session: str
    tool: str
    reason: str  # what it runs on, or why it does not apply
    argv: list[str] | None = None  # None: does not apply
    cwd: Path | None = None
    out_dir: Path | None = None
    stop_file: Path | None = None

    @property
    def applies(self) -> bool:
        return self.argv is not None

    @property
    def job_name(self) -> str:
        return f"{self.session}-{self.tool}"


def _mrc_frames(path: Path) -> int | None:
    """Frames in an MRC file (its header's nz), None when unreadable (still being written)."""
    import mrcfile

    try:
        with mrcfile.open(path, header_only=True, permissive=True) as mrc:
            return int(mrc.header.nz)
    except Exception:  # noqa: BLE001 - any unreadable header: look again later
        return None


def _star_kind(path: Path) -> str | None:
    """``movies`` (a RELION movies STAR), ``micrographs`` (corrected_micrographs.star) or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return None
    if b"_rlnMicrographName" in head and (b"_rlnMicrographMetadata" in head or b"_rlnAccumMotion" in head):
        return "micrographs"
    if b"_rlnMicrographMovieName" in head:
        return "movies"
    return None


def survey(target: Path, skip: Path | None = None, max_depth: int = MAX_DEPTH) -> Survey:
    """What ``target`` (a session folder or a STAR file) holds; ``skip`` (``--runs``) is left out."""
    found = Survey()
    target = target.resolve()
    if target.is_file():
        kind = _star_kind(target)
        if kind == "movies":
            found.movies_star = target
        elif kind == "micrographs":
            found.motion_tables.append(target)
        return found
    base = len(target.parts)
    coord_globs: dict[str, None] = {}
    for here, dirs, files in os.walk(target, followlinks=False):
        folder = Path(here)
        dirs[:] = [] if len(folder.parts) - base >= max_depth else sorted(
            d for d in dirs if not d.startswith(".") and (skip is None or (folder / d).resolve() != skip))
        mrcs = sorted(f for f in files if f.lower().endswith(".mrc") and not f.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            lower = name.lower()
            suffix = os.path.splitext(lower)[1]
            if suffix in STREAM_MOVIE_EXT:
                found.movie_ext.add(suffix)
            elif lower == "corrected_micrographs.star":
                found.motion_tables.append(folder / name)
            elif lower.endswith("-full.log"):
                found.motioncor_logs = True
            for pattern in COORD_PATTERNS:
                if lower.endswith(pattern):
                    coord_globs.setdefault(str(folder / f"*{name[len(name) - len(pattern):]}"))
        for name in mrcs[:3]:  # the first readable header says what the folder holds
            frames = _mrc_frames(folder / name)
            if frames is None:
                continue
            (found.mrc_movie_dirs if frames > 1 else found.micrograph_dirs).append(folder)
            break
    found.coord_globs = list(coord_globs)
    return found


def _session_names(targets: tuple[Path, ...]) -> list[str]:
    """One folder name per ``--watch`` target (its name; ``-2``... when two share it)."""
    names: list[str] = []
    for t in targets:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", (t.stem if t.is_file() else t.name) or "session").strip("._-")
        name, n = stem or "session", 1
        while name in names:
            n += 1
            name = f"{stem}-{n}"
        names.append(name)
    return names


def _relion_project(star: Path) -> Path:
    """The RELION project folder of a job's STAR (``P/MotionCorr/job002/x.star`` -> ``P``)."""
    return star.parents[2] if re.fullmatch(r"job\d+", star.parent.name) and len(star.parents) > 2 else star.parent


def _plan(tool: str, inputs: list[str] | None, reason: str, *, session: str, target: Path, runs: Path,
          config: ServeConfig, extra: tuple = (), cwd: Path | None = None) -> Plan:
    """The plan of one tool: ``inputs`` None when it does not apply (``reason`` says why)."""
    if inputs is None:
        return Plan(session, tool, reason)
    live = config.live
    out = runs / LIVE_DIR / session / tool
    stop = runs / LIVE_DIR / "logs" / f"{session}-{tool}.stop"
    argv = [tool, *inputs, *extra, "--out", str(out), "--watch", "--idle-timeout", str(IDLE_TIMEOUT_S),
            "--poll-interval", f"{live.poll_interval:g}", "--min-file-age", f"{live.min_file_age:g}",
            "--stop-file", str(stop)]
    if live.workers is not None:
        argv += ["--workers", str(live.workers)]
    return Plan(session, tool, reason, argv, cwd or (target if target.is_dir() else target.parent), out, stop)


def plan_jobs(config: ServeConfig) -> list[Plan]:
    """The jobs of every ``--watch`` target: what applies, with its argv, or why not."""
    runs = Path(config.runs).expanduser().resolve()
    live = config.live
    plans: list[Plan] = []
    targets = tuple(Path(w).expanduser().resolve() for w in config.watch)
    for target, session in zip(targets, _session_names(targets)):
        found = survey(target, skip=runs)

        def plan(tool: str, inputs: list[str] | None, reason: str, extra: tuple = (), cwd: Path | None = None,
                 session=session, target=target) -> Plan:
            return _plan(tool, inputs, reason, session=session, target=target, runs=runs, config=config,
                         extra=extra, cwd=cwd)

        # dose: movies
        if found.movies_star is not None:
            plans.append(plan("dose", [str(found.movies_star)], f"movies listed in {found.movies_star.name}",
                              cwd=_relion_project(found.movies_star)))
        elif found.movie_ext or found.mrc_movie_dirs:
            inputs = [str(target / "**" / f"*{ext}") for ext in sorted(found.movie_ext)]
            inputs += [str(d) for d in found.mrc_movie_dirs]
            kinds = sorted(found.movie_ext | ({".mrc"} if found.mrc_movie_dirs else set()))
            plans.append(plan("dose", inputs, f"movies ({', '.join(kinds)})"))
        else:
            plans.append(plan("dose", None, "no movies (.tif, .tiff, .eer, .mrcs, multi-frame .mrc) "
                                            "or movies STAR found yet"))
        # maxshift: a RELION motion job, else MotionCor2 logs
        if found.motion_tables:
            table = max(found.motion_tables, key=lambda p: (p.stat().st_mtime, str(p)))  # the latest job
            plans.append(plan("maxshift", [str(table)], f"RELION motion job {table.parent.name}/{table.name}",
                              cwd=_relion_project(table)))
        elif found.motioncor_logs:
            plans.append(plan("maxshift", [str(target / "**" / "*-Full.log")], "MotionCor2 *-Full.log files"))
        else:
            plans.append(plan("maxshift", None, "no corrected_micrographs.star (RELION motion job) "
                                                "or MotionCor2 *-Full.log found yet"))
        # clean: micrographs with picks
        if not (found.micrograph_dirs and found.coord_globs):
            missing = "micrographs (single-frame .mrc)" if not found.micrograph_dirs else \
                "picks (*_autopick.star, .pos, .box)"
            plans.append(plan("clean", None, f"no {missing} found yet"))
        elif live.box_size is None:
            plans.append(plan("clean", None, "micrographs and picks found, but no box size: "
                                             "start the server with --box-size PX"))
        else:
            inputs = [a for d in found.micrograph_dirs for a in ("--micrographs", str(d))]
            inputs += [a for g in found.coord_globs for a in ("--coords", g)]
            plans.append(plan("clean", inputs, f"{len(found.micrograph_dirs)} micrograph folder(s) with picks",
                              extra=("--box-size", f"{live.box_size:g}", "--save-masks")))
    return plans


class LiveQC:
    """The live QC of a server: plans, jobs, and the rescan until every tool runs.

    Parameters
    ----------
    config : ServeConfig
        ``watch`` targets, ``runs`` (outputs and logs under ``RUNS/live``) and ``live`` options.
    rescan_s : float
        Seconds between two looks at sessions where some tool does not apply yet.
    """

    def __init__(self, config: ServeConfig, rescan_s: float = 5.0):
        self.config = config
        self.root = Path(config.runs).expanduser().resolve() / LIVE_DIR
        self.jobs = JobManager(self.root / "logs")
        self.rescan_s = rescan_s
        self.plans: list[Plan] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scan(self) -> list[Plan]:
        """Plan again and start every job that applies and was never started."""
        with self._lock:
            before = {p.job_name: p for p in self.plans}
            plans = []
            for p in plan_jobs(self.config):
                if self.jobs.get(p.job_name) is not None:
                    p = before.get(p.job_name, p)  # started once: show what it runs on
                elif p.applies:
                    p.out_dir.parent.mkdir(parents=True, exist_ok=True)
                    self.jobs.start(p.job_name, p.argv, cwd=p.cwd, stop_file=p.stop_file)
                plans.append(p)
            self.plans = plans
            return plans

    def job(self, plan: Plan) -> Job | None:
        return self.jobs.get(plan.job_name)

    def start(self) -> None:
        """First scan now, then again every ``rescan_s`` while some tool does not apply."""
        if not self.config.watch:
            return
        atexit.register(self.jobs.stop_all)  # also when the server dies without its shutdown
        self.scan()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="live-qc-scan", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.rescan_s):
            if all(p.applies for p in self.plans):
                return
            try:
                self.scan()
            except Exception:  # noqa: BLE001 - a vanished folder: look again next time
                continue

    def stop(self) -> None:
        """Stop rescanning and every job (stop files, SIGTERM, SIGKILL)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        # a tool sees its stop file at its next poll, then writes its final outputs
        self.jobs.stop_all(stop_file_grace_s=self.config.live.poll_interval + STOP_GRACE_S)
