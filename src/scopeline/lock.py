"""One run at a time per output folder: a lock file in ``OUT/.scopeline/lock``.

The lock records the owner's pid, host and command. A second run on a folder in use stops
with one line naming that process; a lock left by a process that no longer exists (same
host, pid dead) is stale and taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from .errors import ConfigError

LOCK_NAME = "lock"


def lock_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / ".scopeline" / LOCK_NAME


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_lock(out_dir: str | Path) -> dict | None:
    """The lock's owner (``pid``, ``host``, ``tool``, ``since``) or None when unlocked or stale."""
    path = lock_path(out_dir)
    try:
        owner = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, json.JSONDecodeError):
        return None if not path.exists() else {"pid": None, "host": None, "tool": "?", "since": None}
    if owner.get("host") == socket.gethostname() and owner.get("pid") and not _alive(int(owner["pid"])):
        return None
    return owner


@contextlib.contextmanager
def run_lock(out_dir: str | Path, tool: str) -> Iterator[dict]:
    """Hold the output folder's lock for the duration of the block.

    Raises
    ------
    ConfigError
        When another live process holds it (one line: its tool, pid, host, start time).
    """
    path = lock_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "tool": tool,
          "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _attempt in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError as exists:
            owner = read_lock(out_dir)
            if owner is None:  # stale: its process is gone
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                continue
            if owner.get("pid") is None:  # being written right now by another process
                time.sleep(0.05)
                continue
            raise ConfigError(Path(out_dir), f"in use by another scopeline {owner.get('tool')} run "
                              f"(pid {owner.get('pid')} on {owner.get('host')}, since {owner.get('since')})",
                              f"wait for it to finish or give another --out; if that process is gone, "
                              f"delete {path}") from exists
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(me, handle)
        break
    else:
        raise ConfigError(path, "cannot take the output folder's lock", f"delete {path} if no run uses it")
    try:
        yield me
    finally:
        with contextlib.suppress(OSError):
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == me["pid"]:
                os.unlink(path)
