"""What ``scopeline serve`` was started with: address, token and the allowed folders."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError
from ..stream import DEFAULT_MIN_FILE_AGE_S

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything, treat it as reachable


class LiveOptions(BaseModel):
    """Options of the live QC jobs started for ``--watch`` (``scopeline serve``'s options).

    Parameters
    ----------
    box_size : float or None
        Particle box (px of the picked micrographs) for ``scopeline clean``; without it the
        cleaner is not started (it cannot guess the box).
    poll_interval : float
        Seconds between two looks of each job at its input (``--poll-interval``). Default 5.
    min_file_age : float
        Files modified less than this many seconds ago are still being written
        (``--min-file-age``). Default 10.
    workers : int or None
        ``--workers`` of each job (None: the tool's default; 0 = no Dask).
    """

    model_config = ConfigDict(frozen=True)

    box_size: float | None = Field(None, gt=0)
    poll_interval: float = Field(5.0, ge=0)
    min_file_age: float = Field(DEFAULT_MIN_FILE_AGE_S, ge=0)
    workers: int | None = Field(None, ge=0)


class ServeConfig(BaseModel):
    """Settings of ``scopeline serve``.

    Parameters
    ----------
    host : str
        Address to bind. Default ``127.0.0.1`` (this machine only).
    port : int
        TCP port. Default 8765.
    token : str or None
        Secret every request must carry (``Authorization: Bearer T``, ``?token=T`` or the
        cookie set after it). Required when ``host`` is not loopback; see :meth:`checked`.
    runs : Path
        Folder where the run folders live (default: the current folder).
    watch : list of Path
        Session folders (or growing RELION STAR files) given with ``--watch``: readable by
        the UI, never written; the live QC jobs watch them (:mod:`scopeline.ui.live`).
    live : LiveOptions
        How the live QC jobs run.
    """

    model_config = ConfigDict(frozen=True)

    host: str = DEFAULT_HOST
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    token: str | None = None
    runs: Path = Path(".")
    watch: tuple[Path, ...] = ()
    live: LiveOptions = Field(default_factory=lambda: LiveOptions())

    @property
    def roots(self) -> tuple[Path, ...]:
        """The folders the UI may read or write, resolved (symlinks followed)."""
        return tuple(dict.fromkeys(Path(p).expanduser().resolve() for p in (self.runs, *self.watch)))

    @property
    def needs_token(self) -> bool:
        return self.token is not None or not is_loopback(self.host)

    def checked(self) -> tuple["ServeConfig", bool]:
        """This config made safe to serve: folders checked, and a generated token when the
        address is not loopback and none was given. Returns ``(config, generated)``.

        Raises
        ------
        ConfigError
            A folder does not exist, or the token is empty.
        """
        if not Path(self.runs).expanduser().is_dir():
            raise ConfigError("--runs", f"{self.runs} is not a folder", "give an existing folder")
        runs = Path(self.runs).expanduser().resolve()
        for watched in self.watch:
            path = Path(watched).expanduser()
            if not (path.is_dir() or (path.is_file() and path.suffix == ".star")):
                raise ConfigError("--watch", f"{watched} is neither a folder nor a STAR file",
                                  "give an existing session folder or a RELION STAR file")
            if path.is_dir() and runs.is_relative_to(path.resolve()):
                raise ConfigError("--runs", f"{self.runs} lies inside the watched {watched} (live QC "
                                  "writes under --runs, and a session is only read)",
                                  "give --runs a folder outside the session")
        if self.token is not None and not self.token.strip():
            raise ConfigError("--token", "the token is empty", "give a long random string, or omit --token")
        if self.needs_token and self.token is None:
            return self.model_copy(update={"token": secrets.token_urlsafe(32)}), True
        return self, False

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "[::]") else host
        query = f"/?token={self.token}" if self.token else "/"
        return f"http://{shown}:{self.port}{query}"
