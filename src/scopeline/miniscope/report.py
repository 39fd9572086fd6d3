"""Miniscope report: one HTML page per step (OUT/report/<step>.html) and an index
(OUT/report.html), plus the figures of steps 1-4."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from ..io.atomic import write_text

_STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
          "img{max-width:100%;border:1px solid #ccc}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}pre{background:#f4f4f4;padding:8px}")


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>\n")


def _table(summary: dict) -> str:
    rows = []
    for key, value in summary.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > 300:
            text = text[:300] + " ..."
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(text)}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def write_step_page(out_dir: Path, step: str, title: str, summary: dict, figures: list, params: dict) -> Path:
    """OUT/report/<step>.html with the step's summary, figures and parameters."""
    body = [f"<p><a href='../report.html'>index</a></p><h1>{html.escape(title)}</h1>", _table(summary)]
    for png, caption in figures:
        body.append(f"<figure><img src='{html.escape(png)}'><figcaption>{html.escape(caption)}"
                    "</figcaption></figure>")
    body.append("<h2>Parameters</h2><pre>" + html.escape(json.dumps(params, indent=2)) + "</pre>")
    path = Path(out_dir) / "report" / f"{step}.html"
    write_text(path, _page(f"{step} - scopeline miniscope", "\n".join(body)))
    return path


def write_index(out_dir: Path, step_names: list[str]) -> Path:
    """OUT/report.html linking the page of every completed step."""
    out_dir = Path(out_dir)
    items = []
    for name in step_names:
        marker = out_dir / "steps" / name / "complete.json"
        if marker.exists():
            info = json.loads(marker.read_text())
            items.append(f"<li><a href='report/{name}.html'>{name}</a> ({info.get('seconds', 0):.1f} s, "
                         f"{html.escape(info.get('finished', ''))})</li>")
        else:
            items.append(f"<li>{name}: not run</li>")
    body = "<h1>scopeline miniscope report</h1><ol>" + "".join(items) + "</ol>"
    path = out_dir / "report.html"
    write_text(path, _page("scopeline miniscope report", body))
    return path


# -- figures ---------------------------------------------------------------------------

def _figure(*shape, size=(10, 4)):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*shape, figsize=size, squeeze=False)


def frames_figure(before: np.ndarray, after: np.ndarray, titles=("before", "after")):
    """Side by side frames (e.g. raw vs preprocessed, or mean frames)."""
    fig, axes = _figure(1, 2, size=(10, 5))
    for ax, image, title in zip(axes[0], (before, after), titles):
        ax.imshow(image, cmap="gray")
        ax.set_title(title)
        ax.axis("off")
    return fig


def motion_figure(shifts: np.ndarray, frame_index: np.ndarray, dropped: np.ndarray):
    """Shift (dy, dx) per frame with the frames dropped by QC marked."""
    fig, axes = _figure(1, 1, size=(10, 4))
    ax = axes[0, 0]
    ax.plot(frame_index, shifts[:, 0], lw=0.8, label="dy")
    ax.plot(frame_index, shifts[:, 1], lw=0.8, label="dx")
    if len(dropped):
        mask = np.isin(frame_index, dropped)
        for column in (0, 1):
            ax.plot(frame_index[mask], shifts[mask, column], "rx", ms=5)
        ax.plot([], [], "rx", label=f"dropped ({len(dropped)})")
    ax.set_xlabel("frame")
    ax.set_ylabel("shift (px)")
    ax.legend(loc="best")
    return fig


def line_split_figure(edge_stat: np.ndarray, threshold: float, removed: np.ndarray):
    fig, axes = _figure(1, 1, size=(10, 3))
    ax = axes[0, 0]
    ax.plot(edge_stat, lw=0.6)
    ax.axhline(threshold, color="r", ls="--", label="threshold")
    ax.plot(removed, edge_stat[removed], "rx", label=f"removed ({len(removed)})")
    ax.set_xlabel("frame")
    ax.set_ylabel("left-edge statistic")
    ax.legend(loc="best")
    return fig


def variance_figure(cumulative: np.ndarray):
    fig, axes = _figure(1, 1, size=(6, 4))
    ax = axes[0, 0]
    ax.plot(np.arange(len(cumulative)), 100 * cumulative, "o-")
    ax.set_xlabel("components")
    ax.set_ylabel("cumulative variance explained (%)")
    ax.grid(True)
    return fig


def components_figure(mean_frame: np.ndarray, footprints: np.ndarray, title: str):
    """Contours of each footprint over the mean frame."""
    fig, axes = _figure(1, 1, size=(7, 7))
    ax = axes[0, 0]
    ax.imshow(mean_frame, cmap="gray")
    for a in footprints:
        peak = a.max()
        if peak > 0:  # contour drawn over the footprint's box (1 px margin) only: same line, far faster
            rows, cols = np.flatnonzero(a.max(axis=1) > 0), np.flatnonzero(a.max(axis=0) > 0)
            y0, y1 = max(rows[0] - 1, 0), min(rows[-1] + 2, a.shape[0])
            x0, x1 = max(cols[0] - 1, 0), min(cols[-1] + 2, a.shape[1])
            ax.contour(np.arange(x0, x1), np.arange(y0, y1), a[y0:y1, x0:x1] > 0.3 * peak, levels=[0.5],
                       colors="r", linewidths=0.6)
    ax.set_title(f"{title} ({len(footprints)})")
    ax.axis("off")
    return fig
