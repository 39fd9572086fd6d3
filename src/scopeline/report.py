"""One self-contained HTML report per run: a summary table, figures, warnings."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Mapping, Sequence

from .io.atomic import write_text


def _image_tag(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}"><figcaption>{html.escape(path.name)}</figcaption></figure>'


def write_html_report(
    path: str | Path,
    title: str,
    summary: Mapping[str, object],
    images: Sequence[str | Path] = (),
    warnings: Sequence[str] = (),
    tables: Mapping[str, "pandas.DataFrame"] | None = None,  # noqa: F821
) -> None:
    """Write ``path`` atomically; images that do not exist are skipped."""
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in summary.items()
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        "img{max-width:100%}.warn{color:#a40}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<h2>Summary</h2><table>{rows}</table>",
    ]
    if warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        parts.append(f"<h2 class='warn'>Warnings</h2><ul class='warn'>{items}</ul>")
    existing = [Path(p) for p in images if Path(p).exists()]
    if existing:
        parts.append("<h2>Figures</h2>" + "".join(_image_tag(p) for p in existing))
    for name, df in (tables or {}).items():
        parts.append(f"<h2>{html.escape(name)}</h2>" + df.to_html(index=False, na_rep="", border=0))
    parts.append("</body></html>")
    write_text(path, "\n".join(parts))
