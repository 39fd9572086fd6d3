"""Particle coordinates: Xmipp .pos, RELION .star, EMAN .box, CSV / plain text.

Every reader returns a DataFrame with columns ``x``, ``y`` (particle centre, pixels,
x = column, y = row) followed by the file's other columns unchanged, and the format name.
What is needed to write the same format back (STAR block names, other blocks, header) is
kept in ``df.attrs["coords"]``, so ``write_coordinates(path, df[keep], fmt, box)`` gives
a file the original tool reads.

EMAN .box stores the lower-left corner and the box width and height; they are converted
to and from centres (no axis flip).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from scopeline.errors import InputError
from scopeline.io.atomic import atomic_write
from scopeline.io.star import format_star, read_star

FORMATS = ("pos", "star", "box", "csv", "txt")
PICK_SUFFIXES = ("autopick", "manualpick", "pick", "picks", "coords", "coordinates", "particles")
XMIPP_HEADER = "# XMIPP_STAR_1 *\n#"


def coordinate_format(path: str | Path) -> str:
    """Format from the extension: pos, star, box, csv or txt (.txt/.dat/.coord)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in ("pos", "star", "box", "csv"):
        return suffix
    if suffix in ("txt", "dat", "coord", "coords", "tsv"):
        return "txt"
    raise InputError(path, f"unknown coordinate format '.{suffix}'", "use .pos, .star, .box, .csv or .txt")


def micrograph_key(path: str | Path) -> str:
    """The micrograph stem a coordinate file belongs to: ``mic01_autopick.star`` -> ``mic01``."""
    stem = Path(path).stem
    pattern = r"^(.*?)[_\-.](?:%s)$" % "|".join(PICK_SUFFIXES)
    match = re.match(pattern, stem, flags=re.IGNORECASE)
    return match.group(1) if match else stem


def read_coordinates(path: str | Path) -> tuple[pd.DataFrame, str]:
    """Read a coordinate file: (table with x, y centres + passthrough columns, format)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "coordinate file not found")
    fmt = coordinate_format(path)
    reader = {"pos": _read_pos, "star": _read_star, "box": _read_box, "csv": _read_text, "txt": _read_text}[fmt]
    df = reader(path)
    bad = ~np.isfinite(df[["x", "y"]].to_numpy(dtype=float)).all(axis=1)
    if bad.any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(bad)[:5])
        raise InputError(path, f"{int(bad.sum())} coordinate(s) are not finite numbers (row {rows})")
    return df, fmt


def write_coordinates(path: str | Path, df: pd.DataFrame, fmt: str, box_size: float | None = None) -> None:
    """Write ``df`` (x, y centres + passthrough columns) in ``fmt``, atomically."""
    writer = {"pos": _write_pos, "star": _write_star, "box": _write_box, "csv": _write_text, "txt": _write_text}
    if fmt not in writer:
        raise ValueError(f"unknown coordinate format {fmt!r}; expected one of {FORMATS}")
    if fmt == "txt":
        _write_text(path, df, header=bool(df.attrs.get("coords", {}).get("header", False)), sep=" ")
    elif fmt == "csv":
        _write_text(path, df, header=True, sep=",")
    elif fmt == "box":
        _write_box(path, df, box_size)
    else:
        writer[fmt](path, df)


def _centre_table(path: Path, table: pd.DataFrame, xcol: str, ycol: str) -> pd.DataFrame:
    try:
        x = pd.to_numeric(table[xcol], errors="raise").astype(float)
        y = pd.to_numeric(table[ycol], errors="raise").astype(float)
    except (ValueError, TypeError) as exc:
        raise InputError(path, f"coordinate columns {xcol}/{ycol} are not numeric ({exc})") from exc
    rest = table.drop(columns=[xcol, ycol])
    df = pd.concat([pd.DataFrame({"x": x.to_numpy(), "y": y.to_numpy()}), rest.reset_index(drop=True)], axis=1)
    return df


def _find_block(path: Path, blocks: dict[str, pd.DataFrame], xcol: str, ycol: str) -> str:
    for name, block in blocks.items():
        if xcol in block.columns and ycol in block.columns:
            return name
    raise InputError(path, f"no data block with columns {xcol} and {ycol}", "is this a coordinate file?")


def _read_star_columns(path: Path, xcol: str, ycol: str) -> pd.DataFrame:
    """The picks of the first block of a STAR file with ``xcol`` and ``ycol`` (RELION STAR,
    Xmipp .pos); every block is kept in ``attrs`` so the file can be written back whole."""
    blocks = read_star(path)
    name = _find_block(path, blocks, xcol, ycol)
    df = _centre_table(path, blocks[name], xcol, ycol)
    df.attrs["coords"] = {"block": name, "blocks": dict(blocks), "columns": (xcol, ycol)}
    return df


def _read_star(path: Path) -> pd.DataFrame:
    return _read_star_columns(path, "rlnCoordinateX", "rlnCoordinateY")


def _read_pos(path: Path) -> pd.DataFrame:
    return _read_star_columns(path, "xcoor", "ycoor")


def _star_blocks(df: pd.DataFrame, default_block: str, columns: tuple[str, str]) -> dict[str, pd.DataFrame]:
    meta = df.attrs.get("coords", {})
    block = meta.get("block", default_block)
    xcol, ycol = meta.get("columns", columns)
    table = df.rename(columns={"x": xcol, "y": ycol})
    blocks = dict(meta.get("blocks", {}))
    blocks[block] = table
    return blocks


def _write_star(path: str | Path, df: pd.DataFrame) -> None:
    text = format_star(_star_blocks(df, "", ("rlnCoordinateX", "rlnCoordinateY")))
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _write_pos(path: str | Path, df: pd.DataFrame) -> None:
    blocks = _star_blocks(df, "particles", ("xcoor", "ycoor"))
    table = blocks.get(df.attrs.get("coords", {}).get("block", "particles"))
    for col in ("xcoor", "ycoor"):  # Xmipp stores integer pixel positions
        table[col] = np.round(table[col].to_numpy(dtype=float)).astype(int)
    text = format_star(blocks).lstrip("\n")
    text = text.replace("# version 30001", XMIPP_HEADER, 1)
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _read_box(path: Path) -> pd.DataFrame:
    try:
        values = np.loadtxt(path, ndmin=2, dtype=float)
    except ValueError as exc:
        raise InputError(path, f"not an EMAN .box file ({exc})") from exc
    if values.size == 0:
        values = np.zeros((0, 4))
    if values.shape[1] < 4:
        raise InputError(path, f"EMAN .box needs 4 columns (x y width height), found {values.shape[1]}")
    extra = {f"box_col{i}": values[:, i] for i in range(4, values.shape[1])}
    return pd.DataFrame(
        {
            "x": values[:, 0] + values[:, 2] / 2,
            "y": values[:, 1] + values[:, 3] / 2,
            "box_width": values[:, 2],
            "box_height": values[:, 3],
            **extra,
        }
    )


def _write_box(path: str | Path, df: pd.DataFrame, box_size: float | None) -> None:
    n = len(df)
    if box_size is not None:
        width = np.full(n, float(box_size))
        height = width
    elif "box_width" in df.columns:
        width, height = df["box_width"].to_numpy(float), df["box_height"].to_numpy(float)
    else:
        raise ValueError("writing EMAN .box needs box_size")
    x0 = df["x"].to_numpy(float) - width / 2
    y0 = df["y"].to_numpy(float) - height / 2
    extra = [c for c in df.columns if c.startswith("box_col")]
    with atomic_write(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            fields = [_int_text(x0[i]), _int_text(y0[i]), _int_text(width[i]), _int_text(height[i])]
            fields += [_int_text(df[c].iloc[i]) for c in extra]
            handle.write("\t".join(fields) + "\n")


def _int_text(value: float) -> str:
    value = float(value)
    return str(int(round(value))) if abs(value - round(value)) < 1e-6 else f"{value:.2f}"


def _read_text(path: Path) -> pd.DataFrame:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        df = pd.DataFrame({"x": pd.Series(dtype=float), "y": pd.Series(dtype=float)})
        df.attrs["coords"] = {"header": path.suffix.lower() == ".csv"}
        return df
    sep = "," if "," in lines[0] else ("\t" if "\t" in lines[0] else r"\s+")
    first = [f.strip().strip('"') for f in re.split(sep, lines[0].strip())]
    header = not all(_is_number(f) for f in first)
    try:
        table = pd.read_csv(path, sep=sep, header=0 if header else None, comment="#", engine="python")
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(path, f"not a readable coordinate table ({exc})") from exc
    if header:
        lower = {str(c).strip().lower(): c for c in table.columns}
        names = [(a, b) for a, b in (("x", "y"), ("xcoord", "ycoord"), ("x_coord", "y_coord"), ("xcoor", "ycoor")) if a in lower and b in lower]
        if not names:
            raise InputError(path, f"no x and y columns in header {list(table.columns)}", "name the columns x,y")
        xcol, ycol = lower[names[0][0]], lower[names[0][1]]
    else:
        if table.shape[1] < 2:
            raise InputError(path, "coordinate text needs at least two columns (x y)")
        table.columns = ["x", "y"] + [f"col{i}" for i in range(3, table.shape[1] + 1)]
        xcol, ycol = "x", "y"
    df = _centre_table(path, table, xcol, ycol)
    df.attrs["coords"] = {"header": header}
    return df


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _write_text(path: str | Path, df: pd.DataFrame, header: bool, sep: str) -> None:
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        df.to_csv(handle, sep=sep, header=header, index=False, float_format="%.2f")
