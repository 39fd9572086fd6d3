"""A watchdog for a Dask cluster whose workers all died: instead of waiting for ever for a
worker to run the queued tasks, the work is cancelled after a bounded wait, so the
caller can stop with one line.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from .errors import ConfigError

#: Seconds a cluster may have no worker at all before its work is cancelled (the
#: environment variable SCOPELINE_WORKER_TIMEOUT overrides it).
DEFAULT_WORKER_TIMEOUT = 60.0


def worker_timeout(value: float | None = None) -> float:
    """``value``, else SCOPELINE_WORKER_TIMEOUT, else :data:`DEFAULT_WORKER_TIMEOUT` (seconds)."""
    if value is not None:
        return float(value)
    text = os.environ.get("SCOPELINE_WORKER_TIMEOUT")
    try:
        return float(text) if text else DEFAULT_WORKER_TIMEOUT
    except ValueError:
        raise ConfigError(None, f"SCOPELINE_WORKER_TIMEOUT={text}: not a number of seconds") from None


@dataclass
class WorkerWatch:
    """State of :func:`watch_workers`: ``tripped`` once the work was cancelled."""

    address: str
    timeout: float
    tripped: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)

    def error(self) -> ConfigError:
        """The one-line error to raise once ``tripped``."""
        return ConfigError(None, f"every Dask worker of {self.address} died (no worker for {self.timeout:g} s); "
                           "the run stopped", "check the workers' memory and logs, restart them and run again "
                           "(finished steps are reused)")


def _n_workers(client) -> int | None:
    try:
        return len(client.scheduler_info().get("workers", {}))
    except Exception:  # noqa: BLE001 - an unreachable scheduler counts as no worker
        return 0


def _cancel_all(client) -> None:
    from distributed import Future

    with contextlib.suppress(Exception):
        client.cancel([Future(key, client) for key in list(client.futures)], force=True)


@contextlib.contextmanager
def watch_workers(client, timeout: float = DEFAULT_WORKER_TIMEOUT, poll: float = 1.0) -> Iterator[WorkerWatch]:
    """Watch ``client``'s cluster while the body runs; when it has had no worker for
    ``timeout`` seconds, cancel every future of the client (the blocked ``compute`` then
    raises) and set ``watch.tripped``.

    Parameters
    ----------
    client : distributed.Client or None
        The client whose work runs in the body; None (a local dask scheduler) watches
        nothing.
    timeout : float
        Seconds without any worker before the work is cancelled.
    poll : float
        Seconds between looks at the scheduler.

    Yields
    ------
    WorkerWatch
        ``tripped`` tells, after an exception in the body, whether this was the cause;
        ``error()`` is the one-line error to raise then.
    """
    address = getattr(getattr(client, "scheduler", None), "address", None) or "the Dask scheduler"
    watch = WorkerWatch(str(address), float(timeout))
    if client is None:
        yield watch
        return

    def run() -> None:
        since = None
        while not watch._stop.wait(poll):
            if _n_workers(client):
                since = None
                continue
            since = since or time.monotonic()
            if time.monotonic() - since >= watch.timeout:
                watch.tripped = True
                _cancel_all(client)
                since = None

    thread = threading.Thread(target=run, name="scopeline-worker-watch", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        watch._stop.set()
        thread.join()
