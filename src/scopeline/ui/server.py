"""Running the UI: uvicorn on the configured address."""

from __future__ import annotations

from .config import ServeConfig


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
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="warning",
                server_header=False, proxy_headers=False)
