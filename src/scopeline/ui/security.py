"""The UI's security rules, one place.

- **Token**: when the config has a token (always when bound beyond loopback), every
  request carries it as ``Authorization: Bearer T``, ``?token=T`` (a GET is answered by a
  redirect to the same address without it, setting an HttpOnly, SameSite=Strict cookie that
  the page's links and scripts then carry) or that cookie; else 401.
- **Host / Origin**: a server bound to loopback answers only ``Host: 127.0.0.1 | localhost
  | [::1]`` (a DNS-rebinding page cannot reach it), and a state-changing request whose
  ``Origin`` is another site (or ``null``: a sandboxed frame, a file) is refused (403): a web
  page elsewhere cannot drive the UI. A request without ``Origin`` (a script) is let through.
- **Paths**: every path the UI reads or writes goes through :func:`safe_path`: resolved
  (``..`` and symlinks followed) and inside one of the folders given on the command line,
  else 403; what it writes (decisions, overrides, exports, live QC outputs) only under
  ``--runs``: the ``--watch`` sessions are read only.
- No endpoint runs a command given by a request: the only subprocesses are the jobs of
  :mod:`scopeline.ui.jobs` (``python -m scopeline.cli``, never a shell): the live QC tools,
  with arguments the server builds from the command line's folders, and miniscope runs,
  with arguments built from validated form values and paths that passed :func:`safe_path`.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from .config import ServeConfig, is_loopback

COOKIE = "scopeline_token"  # + "_<port>": cookies do not tell the ports of one host apart
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class PathRefused(Exception):
    """A path outside the folders the UI may touch (answered 403)."""


def safe_path(config: ServeConfig, raw: str | Path, write: bool = False) -> Path:
    """``raw`` resolved, when it lies inside one of ``config.roots`` (with ``write``: inside
    ``--runs``; the ``--watch`` sessions are read only).

    A relative path is taken relative to ``--runs``. ``..``, absolute paths and symlinks
    are resolved first, so a link inside a root that points outside is refused.

    Raises
    ------
    PathRefused
        The resolved path lies outside every allowed folder (or the name is unusable), or
        ``write`` and it lies outside ``--runs``.
    """
    text = str(raw)
    if not text or "\x00" in text:
        raise PathRefused(f"{text!r} is not a usable path")
    candidate = Path(text).expanduser()
    if not candidate.is_absolute():
        candidate = config.roots[0] / candidate
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as exc:  # symlink loop, unreadable
        raise PathRefused(f"{text}: {exc}") from exc
    roots = config.roots[:1] if write else config.roots
    if any(resolved == root or resolved.is_relative_to(root) for root in roots):
        return resolved
    if write and any(resolved.is_relative_to(root) for root in config.roots):
        raise PathRefused(f"{text} lies in a --watch folder, which the UI only reads (it writes under --runs)")
    raise PathRefused(f"{text} lies outside the folders given to scopeline serve")


def relative_name(config: ServeConfig, path: Path) -> str:
    """How the UI names ``path`` in links: relative to ``--runs`` when inside it, else absolute."""
    root = config.roots[0]
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def cookie_name(config: ServeConfig) -> str:
    """The token's cookie; one per port, so two servers on one host keep their own."""
    return f"{COOKIE}_{config.port}"


def _host_only(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class SecurityMiddleware(BaseHTTPMiddleware):
    """Token, Host and Origin checks of every request (see the module docstring)."""

    def __init__(self, app, config: ServeConfig):
        super().__init__(app)
        self.config = config

    def _token_given(self, request: Request) -> tuple[bool, bool]:
        """(authorised, came in the query): which of the three ways carried the token."""
        token = self.config.token
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and secrets.compare_digest(auth[7:].strip(), token):
            return True, False
        query = request.query_params.get("token")
        if query is not None and secrets.compare_digest(query, token):
            return True, True
        cookie = request.cookies.get(cookie_name(self.config))
        if cookie is not None and secrets.compare_digest(cookie, token):
            return True, False
        return False, False

    async def dispatch(self, request: Request, call_next) -> Response:
        if is_loopback(self.config.host):
            host = _host_only(request.headers.get("host", ""))
            if not is_loopback(host):
                return PlainTextResponse("refused: this server answers only on this machine's "
                                         "loopback address", status_code=403)
        if request.method not in SAFE_METHODS:
            origin = request.headers.get("origin")
            if origin and urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
                return PlainTextResponse("refused: request from another site", status_code=403)
        from_query = False
        if self.config.token is not None:
            ok, from_query = self._token_given(request)
            if not ok:
                return PlainTextResponse("unauthorised: give the token printed by `scopeline serve` "
                                         "(Authorization: Bearer T, or ?token=T)", status_code=401,
                                         headers={"WWW-Authenticate": "Bearer"})
        if from_query and request.method == "GET":
            # keep the token out of the address bar and history: the cookie carries it now
            query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
        else:
            response = await call_next(request)
        if from_query:
            response.set_cookie(cookie_name(self.config), self.config.token, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response
