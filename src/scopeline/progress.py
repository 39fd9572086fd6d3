"""Progress bars for long work (rich), silent when output is not a terminal or disabled."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None):
        self._progress = progress
        self._task = task

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def update_total(self, total: float | None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=total)


def progress_enabled() -> bool:
    if os.environ.get("SCOPELINE_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(total: float | None, description: str, enabled: bool | None = None) -> Iterator[_Bar]:
    """``with progress_bar(n, "dose") as bar: ... bar.advance()``."""
    if enabled is None:
        enabled = progress_enabled()
    if not enabled:
        yield _Bar(None, None)
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield _Bar(progress, task)
