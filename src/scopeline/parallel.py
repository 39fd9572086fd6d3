"""Dask client: a local cluster by default, an existing scheduler with ``--scheduler``."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator


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
              memory_limit: str | None = None) -> Iterator:
    """Yield ``mapper(func, args_list) -> results`` that runs ``func(*args)`` for each
    argument tuple on Dask (local cluster, or ``scheduler``) and returns results in order.

    ``workers=0`` (and no scheduler) runs serially in this process, without Dask.
    """
    if workers == 0 and not scheduler:
        yield lambda func, args_list: [func(*args) for args in args_list]
        return
    with dask_client(scheduler=scheduler, workers=workers, memory_limit=memory_limit) as client:

        def mapper(func, args_list):
            if not args_list:
                return []
            columns = list(zip(*args_list))
            futures = client.map(func, *columns, pure=False)
            return client.gather(futures)

        yield mapper
