"""STAR files: read with ``starfile``, write RELION-style atomically.

Blocks are named without the ``data_`` prefix. A non-loop ("simple") block is returned as a
one-row DataFrame so every block has the same type. Empty DataFrames with columns are
written as loops with labels and no rows, which RELION reads as an empty table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import InputError
from .atomic import atomic_write

STAR_VERSION_LINE = "# version 30001"


def read_star(path: str | Path) -> dict[str, pd.DataFrame]:
    """Every data block of a STAR file as ``{name: DataFrame}``."""
    import starfile

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "STAR file not found", "check the path")
    try:
        blocks = starfile.read(path, always_dict=True, parse_as_string=[])
    except Exception as exc:  # starfile raises a variety of parser errors
        raise InputError(path, f"not a readable STAR file ({type(exc).__name__}: {exc})") from exc
    out: dict[str, pd.DataFrame] = {}
    for name, block in blocks.items():
        if isinstance(block, pd.DataFrame):
            out[name] = block
        else:
            out[name] = pd.DataFrame([dict(block)])
    if not out:
        raise InputError(path, "STAR file has no data blocks")
    return out


def _format_value(value: object) -> str:
    if value is None:
        return "None"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "nan"
        return f"{float(value):.6f}" if abs(value) >= 1e-3 or value == 0 else f"{float(value):.6e}"
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    text = str(value)
    if text == "" or any(ch.isspace() for ch in text):
        return '"' + text.replace('"', "'") + '"'
    return text


def format_star(blocks: Mapping[str, pd.DataFrame], loop: bool = True) -> str:
    """Text of a STAR file; every block written as a loop (RELION reads 1-row loops)."""
    lines = ["", STAR_VERSION_LINE, ""]
    for name, df in blocks.items():
        lines += [f"data_{name}", "", "loop_"]
        for i, column in enumerate(df.columns, start=1):
            label = column if str(column).startswith("_") else f"_{column}"
            lines.append(f"{label} #{i}")
        columns = [df[c].tolist() for c in df.columns]
        for row in zip(*columns):
            lines.append(" ".join(_format_value(v) for v in row))
        lines += ["", ""]
    return "\n".join(lines)


def write_star(path: str | Path, blocks: Mapping[str, pd.DataFrame]) -> None:
    """Write blocks atomically in RELION style."""
    text = format_star(blocks)
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)
