"""``scopeline serve``: a local browser UI over the Python API (no science of its own).

FastAPI + Jinja2 templates + htmx, server-sent events for live counts, Plotly.js plots fed
by JSON endpoints. Every JavaScript file is shipped in ``static/vendor`` (nothing from a
CDN). The pieces::

    config.py     ServeConfig: host, port, token, the folders the UI may touch
    security.py   the token check (header, query, cookie), Host/Origin checks, safe_path
    runs.py       finding run folders; counts, item pages and plot data of a cryo-EM run
    app.py        create_app(config): the routes and templates
    server.py     serve(config): uvicorn on the configured address

``fastapi``, ``uvicorn`` and ``jinja2`` come with the ``[ui]`` extra; importing
:mod:`scopeline.ui` needs none of them (the app is imported lazily).
"""

from .config import ServeConfig

__all__ = ["ServeConfig", "create_app", "serve"]


def create_app(config: ServeConfig, **options):
    """The FastAPI application for ``config`` (see :func:`scopeline.ui.app.create_app`)."""
    from .app import create_app as _create

    return _create(config, **options)


def serve(config: ServeConfig, announce=print) -> None:
    """Run the UI with uvicorn until interrupted (see :func:`scopeline.ui.server.serve`)."""
    from .server import serve as _serve

    _serve(config, announce=announce)
