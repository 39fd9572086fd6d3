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


#: stands in for ``'`` while starfile parses (it reads every ``'`` as ``"``)
_APOSTROPHE = "\ue000"
_RESERVED = ("data_", "loop_", "save_", "global_", "stop_")


def read_star(path: str | Path) -> dict[str, pd.DataFrame]:
    """Every data block of a STAR file as ``{name: DataFrame}``.

    Values are read by ``starfile``'s rules (``"..."`` quotes, ``""`` for a ``"`` inside
    them); a ``'`` inside a value (``it's.mrc``), which starfile alone turns into ``"``, is
    kept.
    """
    import starfile

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "STAR file not found", "check the path")
    try:
        data = path.read_bytes()
        if b"'" in data:
            blocks = _read_with_apostrophes(data.decode("utf-8"), path)
        else:
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


def split_star_line(line: str) -> list[str]:
    """The values of one STAR data line: plain tokens, ``"..."`` (``""`` inside stands for
    ``"``, as starfile/pandas read it) and ``'...'`` (CIF), a quote ending a value only when
    whitespace or the end of the line follows it."""
    tokens, i, n = [], 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        if line[i] in "\"'":
            quote, i, chars = line[i], i + 1, []
            while i < n:
                if line[i] == quote:
                    if quote == '"' and i + 1 < n and line[i + 1] == '"':
                        chars.append('"')
                        i += 2
                        continue
                    if i + 1 >= n or line[i + 1].isspace():
                        i += 1
                        break
                chars.append(line[i])
                i += 1
            tokens.append("".join(chars))
        else:
            start = i
            while i < n and not line[i].isspace():
                i += 1
            tokens.append(line[start:i])
    return tokens


def _read_with_apostrophes(text: str, path: Path) -> dict:
    """starfile.read on a copy whose ``'`` inside values are replaced by a stand-in, put back
    after parsing."""
    import tempfile

    import starfile

    lines = []
    for line in text.splitlines():
        stripped = line.lstrip()
        if "'" not in line or stripped.startswith("#"):
            lines.append(line)
        elif stripped.startswith("_"):  # a key-value line (parsed by shlex in starfile)
            label, _, rest = stripped.partition(" ")
            values = [v.replace("'", _APOSTROPHE) for v in split_star_line(rest)]
            lines.append(label + " " + " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                                                for v in values))
        else:
            lines.append(" ".join(quote_star_value(v.replace("'", _APOSTROPHE)) for v in split_star_line(line)))
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        copy.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
        blocks = starfile.read(copy, always_dict=True, parse_as_string=[])

    def restore(value):
        return value.replace(_APOSTROPHE, "'") if isinstance(value, str) else value

    out = {}
    for name, block in blocks.items():
        if isinstance(block, pd.DataFrame):
            block = block.copy()
            for column in block.columns:
                if block[column].dtype == object or pd.api.types.is_string_dtype(block[column]):
                    block[column] = block[column].map(restore)
            out[name] = block
        else:
            out[name] = {k: restore(v) for k, v in dict(block).items()}
    return out


def quote_star_value(text: str) -> str:
    """A string value as starfile reads it back: plain when it can be, else in ``"..."``
    with each ``"`` inside doubled (starfile's reader: pandas with ``"`` quotes)."""
    if (text == "" or any(ch.isspace() for ch in text) or text[0] in "\"'#_$;"
            or text.lower().startswith(_RESERVED)):
        return '"' + text.replace('"', '""') + '"'
    return text


def _format_value(value: object) -> str:
    if value is None:
        return "None"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "nan"
        return f"{float(value):.6f}" if abs(value) >= 1e-3 or value == 0 else f"{float(value):.6e}"
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    return quote_star_value(str(value))


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
