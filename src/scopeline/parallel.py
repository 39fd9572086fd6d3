"""Dask client: a local cluster by default, an existing scheduler with ``--scheduler``.

:func:`gather_with_watchdog` waits for futures but stops, with one line, when every worker
has been gone for a bounded time (a cluster whose workers all died would otherwise hang
forever). Every tool that gathers Dask results uses it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from .errors import ConfigError, WorkersLostError

NO_WORKER_TIMEOUT_S = 30.0  # how long a run waits with no Dask worker before it stops


def validate_workers(workers: int | None) -> None:
    """``--workers`` is a number of processes, 0 (in this process) or more.

    Raises
    ------
    ConfigError
        For a negative number, naming the option and the allowed values.
    """
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 0):
        raise ConfigError(None, f"--workers {workers} is not allowed",
                          "give 0 (in this process, no Dask) or a positive number of worker processes")


def gather_with_watchdog(client, futures: Sequence, no_worker_timeout: float = NO_WORKER_TIMEOUT_S,
                         poll_interval: float = 0.5) -> list:
    """``client.gather(futures)``, unless every worker is gone for ``no_worker_timeout`` s.

    Parameters
    ----------
    client : distributed.Client
        The client the futures belong to.
    futures : sequence of distributed.Future
        Results to wait for, returned in order.
    no_worker_timeout : float
        Seconds the scheduler may have no worker at all while futures are pending before
        the wait is abandoned (workers restarted by a nanny within that time are fine).
    poll_interval : float
        Seconds between checks of the scheduler's workers.

    Returns
    -------
    list
        The futures' results, in order (an exception raised by a task is re-raised).

    Raises
    ------
    WorkersLostError
        One line naming the scheduler, when no worker was seen for ``no_worker_timeout`` s.
        The pending futures are cancelled.
    """
    futures = list(futures)
    if not futures:
        return []
    with watch_workers(client, no_worker_timeout, poll_interval) as watch:
        try:
            return client.gather(futures)
        except BaseException:
            if watch.tripped:
                raise watch.error() from None
            raise


#: Seconds a cluster may have no worker at all before its work is cancelled (the
#: environment variable SCOPELINE_WORKER_TIMEOUT overrides it).
DEFAULT_WORKER_TIMEOUT = 60.0  # miniscope steps; gather_with_watchdog uses NO_WORKER_TIMEOUT_S


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

    def error(self) -> WorkersLostError:
        """The one-line error to raise once ``tripped``."""
        return WorkersLostError(None, f"every Dask worker of {self.address} died (no worker for {self.timeout:g} s); "
                                "the run stopped", "check the workers' memory and logs, restart them and run "
                                "the same command again to resume (or --workers 0 to run in this process)")


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


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    memory_limit: str | None = None,
    processes: bool = True,
) -> Iterator["distributed.Client"]:  # noqa: F821
    """Yield a ``distributed.Client``.

    ``scheduler`` is an address such as ``tcp://127.0.0.1:8786``: connect to that cluster.
    Otherwise start a local cluster with ``workers`` workers (default: one per core) and
    close it on exit.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler, timeout="30s")
        try:
            yield client
        finally:
            client.close()
        return
    import os

    validate_workers(workers)
    n = workers or max(1, os.cpu_count() or 1)
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=threads_per_worker,
        processes=processes,
        memory_limit=memory_limit or "auto",
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@contextlib.contextmanager
def map_items(scheduler: str | None = None, workers: int | None = None,
              memory_limit: str | None = None,
              no_worker_timeout: float = NO_WORKER_TIMEOUT_S) -> Iterator:
    """Yield ``mapper(func, args_list) -> results`` that runs ``func(*args)`` for each
    argument tuple on Dask (local cluster, or ``scheduler``) and returns results in order.

    ``workers=0`` (and no scheduler) runs serially in this process, without Dask. Results
    are gathered with :func:`gather_with_watchdog`.
    """
    validate_workers(workers)
    if workers == 0 and not scheduler:
        yield lambda func, args_list: [func(*args) for args in args_list]
        return
    with dask_client(scheduler=scheduler, workers=workers, memory_limit=memory_limit) as client:

        def mapper(func, args_list):
            if not args_list:
                return []
            columns = list(zip(*args_list))
            futures = client.map(func, *columns, pure=False)
            return gather_with_watchdog(client, futures, no_worker_timeout)

        yield mapper
