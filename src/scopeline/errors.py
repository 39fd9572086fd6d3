"""Errors that reach the user as one line naming the file, the problem and the fix."""

from __future__ import annotations

from pathlib import Path


class ScopelineError(Exception):
    """A problem the user can act on.

    ``str(err)`` is a single line: ``"<path>: <problem> (fix: <fix>)"``. The CLI prints it
    and exits non-zero without a traceback; per-item processing records it as the item's
    ``error`` and marks the item ``failed``.
    """

    def __init__(self, path: str | Path | None, problem: str, fix: str | None = None):
        self.path = None if path is None else str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(self.one_line())

    def __reduce__(self):  # picklable, so errors raised in Dask workers arrive intact
        return (type(self), (self.path, self.problem, self.fix))

    def one_line(self) -> str:
        text = f"{self.path}: {self.problem}" if self.path else self.problem
        if self.fix:
            text += f" (fix: {self.fix})"
        return " ".join(text.split())


class InputError(ScopelineError):
    """An input file is missing, unreadable or inconsistent."""


class ConfigError(ScopelineError):
    """Parameters are inconsistent or something needed is not given anywhere."""


class OutputError(ScopelineError):
    """An output cannot be written: read-only or missing permission, disk full, a file where
    a folder should be. It stops the whole run (it is not one item's failure); ``path`` names
    the folder or file and ``fix`` what to do (see :func:`scopeline.io.atomic.output_errors`).
    """


def describe(exc: BaseException, path: str | Path | None = None) -> str:
    """One-line description of any exception, for the ``error`` column of a table."""
    if isinstance(exc, ScopelineError):
        return exc.one_line()
    text = f"{type(exc).__name__}: {exc}"
    if path is not None:
        text = f"{path}: {text}"
    return " ".join(text.split())


class WorkersLostError(ScopelineError):
    """Every Dask worker is gone while work is pending: the run stops instead of waiting."""
