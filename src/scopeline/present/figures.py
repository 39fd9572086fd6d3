"""Figures without global state.

Every figure function of scopeline returns a :class:`matplotlib.figure.Figure` made by
:func:`new_figure`: a figure with its own Agg canvas, not registered with ``pyplot``, so
nothing calls ``matplotlib.use`` or changes the backend of a notebook or application that
imports scopeline, figures need no ``plt.close`` and threads do not share pyplot's state.
Callers write a figure with :func:`save_figure` (atomic, like every output).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io.atomic import atomic_path


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.4, 4.8),
               squeeze: bool = True, **subplots: Any):
    """A new ``(Figure, axes)`` pair like ``pyplot.subplots`` but without pyplot.

    ``figsize`` is in inches; ``squeeze`` and the other keywords (``sharex``,
    ``subplot_kw``, ...) as for :meth:`matplotlib.figure.Figure.subplots`. ``nrows=0`` gives
    a figure without axes. ``constrained_layout=True`` is passed to the figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    layout = "constrained" if subplots.pop("constrained_layout", False) else None
    fig = Figure(figsize=figsize, layout=layout)
    FigureCanvasAgg(fig)
    if nrows == 0:
        return fig, None
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze, **subplots)


def save_figure(fig, path: str | Path, dpi: float = 100, **savefig: Any) -> Path:
    """Write ``fig`` to ``path`` atomically (format from the suffix, e.g. ``.png``); returns
    ``path``. Other keywords go to :meth:`~matplotlib.figure.Figure.savefig`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, **savefig)
    return path


__all__ = ["new_figure", "save_figure"]
