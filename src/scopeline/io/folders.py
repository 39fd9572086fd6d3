"""Output folders: check one can be written before the work starts, and turn an OS error
met while writing into it (disk full, read-only, no permission) into one line naming the
folder and the fix."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from ..errors import InputError

__all__ = ["check_writable", "output_error"]

_FIXES = {
    errno.ENOSPC: ("no space left on the device", "free space there or choose another --out; a re-run resumes"),
    errno.EDQUOT: ("disk quota exceeded", "free space there or choose another --out; a re-run resumes"),
    errno.EROFS: ("read-only file system", "choose a writable --out"),
    errno.EACCES: ("permission denied", "choose a writable --out or fix the folder's permissions"),
    errno.EPERM: ("permission denied", "choose a writable --out or fix the folder's permissions"),
}


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and check a file can be created in it.

    Parameters
    ----------
    folder : str or Path
        The output folder.

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    InputError
        One line naming the folder, the problem and the fix.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".scopeline-write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise output_error(exc, folder) or InputError(
            folder, f"cannot write in the output folder ({exc.strerror or exc})", "choose a writable --out") from None
    return folder


def output_error(exc: BaseException, folder: str | Path) -> InputError | None:
    """The one-line error for ``exc`` when it is a full disk, a read-only file system or a
    permission error (met while writing under ``folder``); None for any other error."""
    if not isinstance(exc, OSError) or exc.errno not in _FIXES:
        return None
    problem, fix = _FIXES[exc.errno]
    folder = Path(folder)
    where = folder
    if exc.errno in (errno.EACCES, errno.EPERM) and exc.filename:
        name = Path(exc.filename)
        if not _inside(name, folder):  # an input file that cannot be read
            return InputError(name, f"cannot read ({problem})", "fix the file's permissions")
    return InputError(where, f"cannot write the output folder: {problem}", fix)


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(folder))
        return True
    except ValueError:
        return False
