"""Dask client: a local cluster by default, an existing scheduler with ``--scheduler``.

:func:`gather_with_watchdog` waits for futures but stops, with one line, when every worker
has been gone for a bounded time (a cluster whose workers all died would otherwise hang
forever). Every tool that gathers Dask results uses it.
"""

from __future__ import annotations

import contextlib
import logging
import time
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
    from distributed import wait

    futures = list(futures)
    if not futures:
        return []
    without_since: float | None = None
    while True:
        try:
            wait(futures, timeout=poll_interval)  # returns as soon as all are done
            break
        except TimeoutError:
            pass
        try:
            n_workers = len(client.nthreads())
        except Exception:  # noqa: BLE001 - the scheduler itself is unreachable
            n_workers = 0
        now = time.monotonic()
        if n_workers:
            without_since = None
        elif without_since is None:
            without_since = now
        elif now - without_since >= no_worker_timeout:
            with contextlib.suppress(Exception):
                client.cancel([f for f in futures if not f.done()])
            address = getattr(getattr(client, "scheduler", None), "address", None) or "the local cluster"
            raise WorkersLostError(None, f"every Dask worker of {address} died; no worker for "
                                   f"{no_worker_timeout:g} s while {sum(not f.done() for f in futures)} "
                                   "task(s) were pending",
                                   "check the workers' memory and logs, then run the same command "
                                   "again to resume (or --workers 0 to run in this process)")
    return client.gather(futures)


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
