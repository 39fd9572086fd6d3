"""Jobs of the server: ``scopeline`` commands run as subprocesses (live QC, miniscope runs).

A job is always ``[sys.executable, "-m", "scopeline.cli", *argv]``: no shell, and ``argv``
is built by the server from validated forms and the folders given on the command line,
never taken from a request. Each job runs in its own process group (so its Dask workers
stop with it), with ``SCOPELINE_NO_PROGRESS=1`` and its stdout and stderr in
``LOG_DIR/<name>.log`` (an earlier log of that name is kept as ``<name>.log.1``).

Stopping: :meth:`Job.cancel` first creates the job's stop file when it has one (a
``--watch`` tool then closes its input and writes its final outputs), then sends SIGTERM to
the process group, then SIGKILL after a few seconds. :meth:`JobManager.stop_all` does that
to every live job (the server calls it when it stops).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ConfigError

STATES = ("running", "finished", "failed", "cancelled")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
STOP_FILE_GRACE_S = 5.0  # how long a job with a stop file gets to close its input
TERM_GRACE_S = 3.0  # SIGTERM -> SIGKILL


def _package_root() -> str:
    """The folder holding the ``scopeline`` package this server runs: the job imports the same code."""
    return str(Path(__file__).resolve().parents[2])


class Job:
    """One subprocess of the server (made by :meth:`JobManager.start`).

    Attributes
    ----------
    name : str
        Unique among live jobs; also the log file's name.
    argv : list of str
        The ``scopeline`` arguments (after ``python -m scopeline.cli``).
    log_path : Path
        stdout and stderr of the job.
    started_at : datetime
        When it started (UTC).
    finished_at : datetime or None
        When it ended (UTC), None while running.
    stop_file : Path or None
        Created by :meth:`cancel` before any signal (a ``--watch`` tool's ``--stop-file``).
    """

    def __init__(self, name: str, argv: list[str], log_path: Path, proc: subprocess.Popen,
                 stop_file: Path | None = None):
        self.name, self.argv, self.log_path, self.stop_file = name, list(argv), log_path, stop_file
        self.started_at = datetime.now(timezone.utc)
        self.finished_at: datetime | None = None
        self._proc = proc
        self._cancelled = False
        self._lock = threading.Lock()
        # reap the process as soon as it ends (no zombie holding a run folder's lock)
        self._reaper = threading.Thread(target=self._reap, name=f"job-{name}", daemon=True)
        self._reaper.start()

    def _reap(self) -> None:
        self._proc.wait()
        self.finished_at = datetime.now(timezone.utc)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit status (negative: killed by that signal), None while running."""
        return self._proc.poll()

    @property
    def state(self) -> str:
        """``running``, ``finished`` (exit 0), ``failed`` (other exit) or ``cancelled``."""
        code = self._proc.poll()
        if code is None:
            return "running"
        if self._cancelled:
            return "cancelled"
        return "finished" if code == 0 else "failed"

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def cancel(self, grace_s: float = TERM_GRACE_S, stop_file_grace_s: float = STOP_FILE_GRACE_S) -> None:
        """Stop the job: its stop file (if any; waits up to ``stop_file_grace_s``), then
        SIGTERM to its process group, then SIGKILL after ``grace_s``. Returns once it ended.
        Cancelling a job that already ended changes nothing."""
        with self._lock:
            if not self.alive:
                return
            self._cancelled = True
            self._request_stop()
            if self.stop_file is not None and self._wait(stop_file_grace_s):
                self._signal_group(signal.SIGTERM)  # the workers of a tool that closed cleanly
                return
            self._terminate(grace_s)

    def _request_stop(self) -> None:
        if self.stop_file is not None:
            try:
                self.stop_file.parent.mkdir(parents=True, exist_ok=True)
                self.stop_file.touch()
            except OSError:
                pass

    def _terminate(self, grace_s: float) -> None:
        self._signal_group(signal.SIGTERM)
        if not self._wait(grace_s):
            self._signal_group(signal.SIGKILL)
            self._wait(None)
        self._signal_group(signal.SIGKILL)  # anything of the group left behind by the leader

    def _wait(self, seconds: float | None) -> bool:
        try:
            self._proc.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def log_tail(self, n_lines: int = 50) -> list[str]:
        """The last ``n_lines`` lines of the job's log (fewer when it has fewer)."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return [line.rstrip("\n") for line in deque(fh, maxlen=max(0, int(n_lines)))]
        except OSError:
            return []

    def info(self) -> dict:
        """JSON-able summary (name, argv, state, returncode, pid, started_at, finished_at, log)."""
        return {"name": self.name, "argv": self.argv, "state": self.state, "returncode": self.returncode,
                "pid": self.pid, "started_at": self.started_at.isoformat(timespec="seconds"),
                "finished_at": self.finished_at and self.finished_at.isoformat(timespec="seconds"),
                "log": str(self.log_path)}

    def __repr__(self) -> str:
        return f"Job({self.name!r}, {self.state}, pid={self.pid})"


class JobManager:
    """The server's jobs, by name.

    Parameters
    ----------
    log_dir : Path
        Where each job's ``<name>.log`` goes (created when needed).
    """

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, name: str, argv: list[str], *, cwd: Path | None = None,
              stop_file: Path | None = None) -> Job:
        """Run ``python -m scopeline.cli *argv`` as the job ``name``.

        Parameters
        ----------
        name : str
            Letters, digits, ``.``, ``_``, ``-`` (at most 100); no other live job may have it.
        argv : list of str
            Arguments of ``scopeline`` (built by the server, never taken from a request).
        cwd : Path, optional
            Working folder of the job.
        stop_file : Path, optional
            The ``--stop-file`` given in ``argv``: :meth:`Job.cancel` creates it first.

        Raises
        ------
        ConfigError
            A bad name, or a live job already has it.
        """
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ConfigError(None, f"job name {name!r} is not allowed", "use letters, digits, '.', '_', '-'")
        argv = [str(a) for a in argv]
        with self._lock:
            old = self._jobs.get(name)
            if old is not None and old.alive:
                raise ConfigError(None, f"a job named {name!r} is running (pid {old.pid})",
                                  "wait for it to end or cancel it first")
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.log_dir / f"{name}.log"
            if log_path.exists():
                os.replace(log_path, log_path.with_name(log_path.name + ".1"))
            if stop_file is not None:
                Path(stop_file).unlink(missing_ok=True)  # left by an earlier stop: it would end the job at once
            env = {**os.environ, "SCOPELINE_NO_PROGRESS": "1", "PYTHONUNBUFFERED": "1"}
            env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH")) if p)
            with open(log_path, "wb") as log:
                proc = subprocess.Popen([sys.executable, "-m", "scopeline.cli", *argv], cwd=cwd, env=env,
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True, close_fds=True)
            job = Job(name, argv, log_path, proc, stop_file=Path(stop_file) if stop_file else None)
            self._jobs[name] = job
            return job

    def get(self, name: str) -> Job | None:
        """The job of that name (the latest one), or None."""
        with self._lock:
            return self._jobs.get(name)

    def jobs(self) -> list[Job]:
        """Every job started, in start order (one per name: the latest)."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.started_at)

    def stop_all(self, grace_s: float = TERM_GRACE_S, stop_file_grace_s: float = STOP_FILE_GRACE_S) -> None:
        """Stop every live job (stop files, then SIGTERM to each process group, then SIGKILL
        after ``grace_s``), all at once; returns when none is left."""
        live = [j for j in self.jobs() if j.alive]
        for job in live:
            job._cancelled = True
            job._request_stop()
        deadline = time.monotonic() + stop_file_grace_s
        for job in live:
            if job.stop_file is not None:
                job._wait(max(0.0, deadline - time.monotonic()))
        for job in live:
            job._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for job in live:
            if not job._wait(max(0.0, deadline - time.monotonic())):
                job._signal_group(signal.SIGKILL)
                job._wait(None)
            job._signal_group(signal.SIGKILL)
