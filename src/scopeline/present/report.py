"""The one HTML report writer of every tool.

Cryo-EM tools write one self-contained page per run (:func:`write_html_report`: summary
table, warnings, figures embedded as PNG, tables); the miniscope pipeline writes one page per
step (:func:`write_step_page`) and an index (:func:`write_index`). Pages share one style and
are written atomically.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Mapping, Sequence

from ..io.atomic import write_text

STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
         "img{max-width:100%}figure img{border:1px solid #ccc}.warn{color:#a40}"
         "pre{background:#f4f4f4;padding:8px}")


def page(title: str, body: str) -> str:
    """A complete HTML page with the shared style."""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def summary_table(summary: Mapping[str, object], max_chars: int | None = None) -> str:
    """Key / value rows; non-string values as JSON, cut at ``max_chars``."""
    rows = []
    for key, value in summary.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if max_chars and len(text) > max_chars:
            text = text[:max_chars] + " ..."
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(text)}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _embedded_image(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}">'
            f"<figcaption>{html.escape(path.name)}</figcaption></figure>")


def write_html_report(
    path: str | Path,
    title: str,
    summary: Mapping[str, object],
    images: Sequence[str | Path] = (),
    warnings: Sequence[str] = (),
    tables: Mapping[str, "pandas.DataFrame"] | None = None,  # noqa: F821
) -> None:
    """One self-contained page (figures embedded): summary, warnings, figures, tables.

    Written atomically; images that do not exist are skipped.
    """
    parts = [f"<h1>{html.escape(title)}</h1>", f"<h2>Summary</h2>{summary_table(summary)}"]
    if warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        parts.append(f"<h2 class='warn'>Warnings</h2><ul class='warn'>{items}</ul>")
    existing = [Path(p) for p in images if Path(p).exists()]
    if existing:
        parts.append("<h2>Figures</h2>" + "".join(_embedded_image(p) for p in existing))
    for name, df in (tables or {}).items():
        parts.append(f"<h2>{html.escape(name)}</h2>" + df.to_html(index=False, na_rep="", border=0))
    write_text(path, page(title, "\n".join(parts)))


def write_step_page(out_dir: Path, step: str, title: str, summary: dict, figures: list, params: dict) -> Path:
    """``OUT/report/<step>.html`` with a pipeline step's summary, figures (``(png name,
    caption)`` pairs, beside the page) and parameters."""
    body = [f"<p><a href='../report.html'>index</a></p><h1>{html.escape(title)}</h1>",
            summary_table(summary, max_chars=300)]
    for png, caption in figures:
        body.append(f"<figure><img src='{html.escape(png)}'><figcaption>{html.escape(caption)}"
                    "</figcaption></figure>")
    body.append("<h2>Parameters</h2><pre>" + html.escape(json.dumps(params, indent=2)) + "</pre>")
    path = Path(out_dir) / "report" / f"{step}.html"
    write_text(path, page(f"{step} - scopeline miniscope", "\n".join(body)))
    return path


def write_index(out_dir: Path, step_names: list[str]) -> Path:
    """``OUT/report.html`` linking the page of every completed pipeline step."""
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
    write_text(path, page("scopeline miniscope report", body))
    return path


__all__ = ["write_html_report", "write_step_page", "write_index", "page", "summary_table", "STYLE"]
