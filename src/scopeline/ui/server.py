"""Running the UI: uvicorn on the configured address."""

from __future__ import annotations

from .config import ServeConfig

GRACEFUL_SHUTDOWN_S = 3  # s: open requests get this long when the server stops


def serve(config: ServeConfig, announce=print) -> None:
    """Serve the UI until interrupted.

    ``config`` should come from :meth:`ServeConfig.checked` (a token exists whenever the
    address is not loopback). ``announce`` receives the URL to open (with the token).
    """
    import uvicorn

    from .app import create_app

    if config.needs_token and not config.token:
        raise ValueError("a server bound beyond loopback needs a token: use ServeConfig.checked()")
    announce(f"scopeline UI: open {config.url()}")
    # open live feeds (SSE) would hold a graceful shutdown forever: after a few seconds they
    # are closed, and the app's shutdown (the live QC jobs stop) runs
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="warning",
                server_header=False, proxy_headers=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
