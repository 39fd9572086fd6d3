"""Small helpers for dask tasks: sharing one array with many tasks, tree reductions."""

from __future__ import annotations


def share(value):
    """``value`` (e.g. a large array) for use by many dask tasks: sent once to every worker
    of a running distributed client, outside the task graph; else one delayed value."""
    import dask

    try:
        from distributed import default_client

        return default_client().scatter(value, broadcast=True, hash=False)  # a new key: no race with a released twin
    except (ImportError, ValueError):
        return dask.delayed(value)


def tree_reduce(parts: list, combine):
    """One delayed value combining the delayed ``parts`` pairwise (a tree), so the
    partial results of a long recording never all sit in memory at once."""
    import dask

    parts = list(parts)
    while len(parts) > 1:
        parts = [dask.delayed(combine)(*parts[i : i + 2]) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return parts[0]
