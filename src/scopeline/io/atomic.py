"""Atomic output: write to a temporary file beside the target, then rename over it.

Files are created with the permissions a plain ``open(path, "w")`` gives (``0o666`` less
the umask), so colleagues can read outputs wherever the umask lets them. A folder that cannot
be written (read-only, no permission, disk full, quota) raises :class:`~scopeline.errors.OutputError`:
one line naming the folder or file and the fix, with the temporary file removed, so nothing
half-written is left behind. :func:`output_errors` converts those ``OSError`` s for any
writer (zarr stores, NWB, Dask tasks), and :func:`ensure_output_dir` checks an output folder
before a run starts.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from pathlib import Path
from typing import IO, Any, Iterator

from ..errors import OutputError

#: errno values meaning "this folder cannot be written" / "the device is full".
READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
FIX_OUT = "choose another --out or fix the folder's permissions"
FIX_SPACE = "free space on that device or choose another --out"


def output_error(exc: OSError, path: str | Path) -> OutputError | OSError:
    """The one-line :class:`OutputError` for an ``OSError`` raised writing ``path`` (another
    ``OSError`` is returned unchanged). ``path`` is the output file or folder being written."""
    path = Path(path)
    if exc.errno in FULL_ERRNOS:
        what = "disk quota exceeded" if exc.errno == errno.EDQUOT else "no space left on device"
        return OutputError(path, f"{what} writing this output", FIX_SPACE)
    if exc.errno in READ_ONLY_ERRNOS:
        folder = path if path.is_dir() else path.parent
        what = "read-only file system" if exc.errno == errno.EROFS else "permission denied"
        return OutputError(folder, f"cannot write to this folder ({what})", FIX_OUT)
    return exc


@contextlib.contextmanager
def output_errors(path: str | Path) -> Iterator[None]:
    """Turn a read-only / full-disk ``OSError`` raised in the block into an :class:`OutputError`
    naming ``path``; other errors pass through."""
    try:
        yield
    except OSError as exc:
        converted = output_error(exc, path)
        if converted is exc:
            raise
        raise converted from exc


def make_dirs(folder: str | Path) -> Path:
    """``mkdir -p folder`` with one-line errors (a file in the way, read-only parent...)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(folder, "exists and is not a folder", "choose another --out") from None
    except NotADirectoryError:
        raise OutputError(folder, "a parent of this path is a file, not a folder",
                          "choose another --out") from None
    except OSError as exc:
        # The folder that could not be created lives in the first existing ancestor.
        parent = next((p for p in folder.parents if p.exists()), folder)
        converted = output_error(exc, parent)
        if converted is exc:
            raise
        raise converted from exc
    return folder


def ensure_output_dir(folder: str | Path) -> Path:
    """Create ``folder`` if needed and check a file can be written in it (before any work, so a
    read-only or full output folder stops the run at once with one line)."""
    folder = make_dirs(folder)
    with output_errors(folder):
        fd, probe = _create_temp(folder, ".scopeline-write-test", "")
        os.close(fd)
        os.unlink(probe)
    return folder


def _create_temp(folder: Path, prefix: str, suffix: str) -> tuple[int, str]:
    """Create a new, unique file in ``folder`` as ``open(..., "w")`` would (mode 0o666 less
    the umask, unlike :func:`tempfile.mkstemp`'s 0o600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = os.path.join(folder, f"{prefix}{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unique temporary file name", str(folder))


def make_temp_dir(path: str | Path) -> Path:
    """A new empty folder beside ``path`` (for writers that build a folder, e.g. a zarr store,
    then rename it into place), created like ``mkdir`` (0o777 less the umask, unlike
    :func:`tempfile.mkdtemp`'s 0o700)."""
    path = Path(path)
    make_dirs(path.parent)
    with output_errors(path.parent):
        for _ in range(100):
            tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
            try:
                tmp.mkdir(0o777)
                return tmp
            except FileExistsError:
                continue
    raise FileExistsError(errno.EEXIST, "no unique temporary folder name", str(path.parent))


def _remove(tmp: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
        os.unlink(tmp)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file in ``path``'s folder; on success rename it to ``path``.

    If the block raises, the temporary file is removed and ``path`` is untouched, so a
    reader never sees a half-written output. The file gets the permissions of a plain
    ``open(path, "w")``; a read-only or full folder raises :class:`OutputError`.
    """
    path = Path(path)
    make_dirs(path.parent)
    with output_errors(path):
        fd, tmp = _create_temp(path.parent, f".{path.name}.", ".tmp")
    try:
        with output_errors(path):
            with os.fdopen(fd, mode, **open_kwargs) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path for writers that want a filename (mrcfile, matplotlib...).

    The temporary name keeps ``path``'s suffix so format detection by extension works; the
    writer creates the file itself, so it gets the permissions of a plain write. A read-only
    or full folder raises :class:`OutputError` and no temporary file is left behind.
    """
    path = Path(path)
    make_dirs(path.parent)
    with output_errors(path):
        fd, tmp = _create_temp(path.parent, f".{path.stem}.", f".tmp{path.suffix}")
        os.close(fd)
        os.unlink(tmp)
    try:
        with output_errors(path):
            yield Path(tmp)
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = ["atomic_write", "atomic_path", "write_text", "write_json", "output_errors", "output_error",
           "ensure_output_dir", "make_dirs", "make_temp_dir"]
