"""Sets of items (movies, micrographs) from what users have: files, globs, folders,
RELION STAR files and Scipion ``.sqlite`` sets.

Every source becomes a list of :class:`scopeline.stream.Item`: ``key`` is the resolved path,
``row`` the item's STAR row (written back unchanged in output sets), ``meta`` what the input
says about it (``pixel_size`` in Å/px, ``dose_per_frame`` in e/Å²). A source can be polled
again and again (streaming): it is re-read each time and returns the items in input order.
"""

from __future__ import annotations

import glob
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from ..errors import InputError
from ..stream import Item
from .star import read_star

MOVIE_EXTENSIONS = (".mrc", ".mrcs", ".tif", ".tiff", ".eer", ".avi", ".zarr")
MOVIE_LABEL = "rlnMicrographMovieName"
MICROGRAPH_LABEL = "rlnMicrographName"


def natural_key(text: str) -> list:
    """Sort key that orders ``2.mrc`` before ``10.mrc``."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", str(text))]


@dataclass
class ItemSet:
    items: list[Item]
    optics: pd.DataFrame | None = None
    block: str = "movies"
    sources: list[str] = field(default_factory=list)


def resolve_relion_path(name: str, star_path: Path) -> Path:
    """RELION paths are relative to the project folder: try the working directory, then the
    STAR file's folder and its parents (``Import/job001/movies.star`` lives 2 levels down)."""
    p = Path(name)
    if p.is_absolute():
        return p
    candidates = [Path.cwd() / p, star_path.parent / p]
    candidates += [parent / p for parent in list(star_path.resolve().parents)[:3]]
    for c in candidates:
        if c.exists():
            return c.resolve()
    return (Path.cwd() / p).resolve()


def _float_or_none(value) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if f == f and f > 0 else None


def items_from_star(path: str | Path, label: str = MOVIE_LABEL) -> ItemSet:
    """Items of a RELION STAR file (3.0 plain or 3.1+ with ``data_optics``)."""
    path = Path(path)
    blocks = read_star(path)
    optics = blocks.get("optics")
    table = None
    block_name = "movies"
    for name, df in blocks.items():
        if name != "optics" and label in df.columns:
            table, block_name = df, name
            break
    if table is None:
        raise InputError(path, f"no data block with a {label} column",
                         f"give a STAR file listing {label}")
    optics_by_group: dict[int, dict] = {}
    if optics is not None and "rlnOpticsGroup" in optics.columns:
        for _, row in optics.iterrows():
            optics_by_group[int(row["rlnOpticsGroup"])] = row.to_dict()
    items = []
    for _, row in table.iterrows():
        row = row.to_dict()
        group = optics_by_group.get(int(row.get("rlnOpticsGroup", 1) or 1), {})
        merged = {**group, **row}
        pixel_size = None
        for key in ("rlnMicrographOriginalPixelSize", "rlnMicrographPixelSize", "rlnPixelSize"):
            pixel_size = pixel_size or _float_or_none(merged.get(key))
        dose = _float_or_none(merged.get("rlnMicrographDoseRate"))
        items.append(Item(key=str(resolve_relion_path(str(row[label]), path)), row=row,
                          meta={"pixel_size": pixel_size, "dose_per_frame": dose}))
    return ItemSet(items=items, optics=optics, block=block_name, sources=[str(path)])


def read_scipion_set(path: str | Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """A Scipion set ``.sqlite``: items with their properties as named columns, and the
    set's own properties. Scipion stores item attributes in ``Objects`` columns ``c01``...
    named by the ``Classes`` table (``label_property`` -> ``column_name``)."""
    path = Path(path)
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InputError(path, f"cannot open Scipion sqlite ({exc})") from exc
    try:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
        if not {"Objects", "Classes"} <= tables:
            raise InputError(path, "not a Scipion set (no Objects/Classes tables)")
        mapping = dict(con.execute("select column_name, label_property from Classes"))
        objects = pd.read_sql_query("select * from Objects", con)
        properties = {}
        if "Properties" in tables:
            properties = dict(con.execute("select key, value from Properties"))
    except sqlite3.Error as exc:
        raise InputError(path, f"unreadable Scipion sqlite ({exc})") from exc
    finally:
        con.close()
    objects = objects.rename(columns={c: mapping[c] for c in objects.columns if c in mapping})
    if "enabled" in objects.columns:
        objects = objects[objects["enabled"].astype(int) == 1]
    return objects.reset_index(drop=True), properties


def items_from_scipion(path: str | Path) -> ItemSet:
    """Movies or micrographs of a Scipion set, with sampling rate and dose per frame."""
    path = Path(path)
    objects, props = read_scipion_set(path)
    if "_filename" not in objects.columns:
        raise InputError(path, "Scipion set has no _filename attribute")
    set_pixel = _float_or_none(props.get("_samplingRate"))
    set_dose = _float_or_none(props.get("_acquisition._dosePerFrame"))
    items = []
    for _, obj in objects.iterrows():
        filename = str(obj["_filename"])
        pixel_size = _float_or_none(obj.get("_samplingRate")) or set_pixel
        dose = _float_or_none(obj.get("_acquisition._dosePerFrame")) or set_dose
        items.append(Item(key=str(resolve_relion_path(filename, path)), row={MOVIE_LABEL: filename},
                          meta={"pixel_size": pixel_size, "dose_per_frame": dose,
                                "scipion": obj.to_dict()}))
    return ItemSet(items=items, sources=[str(path)])


def _stable(path: Path, min_age: float, now: float) -> bool:
    """A file still being written (modified less than ``min_age`` s ago) is not taken yet."""
    if min_age <= 0:
        return True
    try:
        return now - path.stat().st_mtime >= min_age
    except OSError:
        return False


def items_from_paths(paths: Sequence[Path], min_age: float = 0.0) -> list[Item]:
    now = time.time()
    return [
        Item(key=str(p.resolve()), row={MOVIE_LABEL: str(p)}, meta={})
        for p in paths
        if _stable(p, min_age, now)
    ]


def movie_set(inputs: Sequence[str | Path], extensions: Sequence[str] = MOVIE_EXTENSIONS,
              min_age: float = 0.0, label: str = MOVIE_LABEL) -> ItemSet:
    """All items named by ``inputs`` (files, globs, folders, .star, .sqlite), in order,
    each once. ``min_age`` skips files modified in the last seconds (still being written)."""
    items: list[Item] = []
    optics = None
    block = "movies"
    for raw in inputs:
        text = str(raw)
        path = Path(text)
        if path.suffix == ".star" and path.is_file():
            sub = items_from_star(path, label=label)
            items += sub.items
            optics = sub.optics if optics is None else optics
            block = sub.block
        elif path.suffix == ".sqlite" and path.is_file():
            items += items_from_scipion(path).items
        elif path.exists() and not path.is_dir() and path.suffix.lower() not in extensions:
            raise InputError(path, f"unknown movie format '{path.suffix}'",
                             "give " + ", ".join(extensions) + " files, a folder, a STAR or a .sqlite")
        else:
            for found in expand_inputs([text], extensions, min_age=min_age,
                                       hint="give existing movie files, a folder, a glob, a STAR or a Scipion .sqlite"):
                items += items_from_paths([found], 0.0)
    unique = list({it.key: it for it in items}.values())
    return ItemSet(items=unique, optics=optics, block=block, sources=[str(i) for i in inputs])


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return -1.0


def expand_inputs(inputs: Sequence[str | Path], extensions: Sequence[str] | None = None, *,
                  folder: Callable[[Path], list[Path]] | None = None, min_age: float = 0.0,
                  strict: bool = True, hint: str = "give existing files, a folder or a glob") -> list[Path]:
    """The files named by ``inputs`` (paths, folders, globs), in order, each once.

    The one input expander of the cryo-EM tools.

    Parameters
    ----------
    inputs : sequence of str or Path
        Paths (taken as given), folders and globs (``**`` recurses).
    extensions : sequence of str, optional
        Suffixes (lower case, with the dot) of the files taken from a folder.
    folder : callable, optional
        ``folder(path) -> paths`` lists a folder instead (default: its non-hidden entries
        with one of ``extensions``).
    min_age : float
        Files from folders and globs modified less than this many seconds ago are left out
        (still being written); paths given explicitly are always taken.
    strict : bool
        Raise for an input that does not exist and is no glob (else it is skipped).
    hint : str
        The fix given with that error.

    Returns
    -------
    list of Path
        Folders' entries and glob matches in natural order (``2`` before ``10``).
    """
    now = time.time()
    files: list[Path] = []
    for raw in inputs:
        text = str(raw)
        path = Path(text)
        if path.is_dir() and (folder is not None or extensions is None or path.suffix.lower() not in extensions):
            if folder is not None:
                found = folder(path)
            else:
                found = sorted((p for p in path.iterdir() if not p.name.startswith(".")
                                and (extensions is None or p.suffix.lower() in extensions)),
                               key=lambda p: natural_key(p.name))
            files += [p for p in found if min_age <= 0 or _age(p, now) >= min_age]
        elif path.exists():
            files.append(path)
        elif glob.has_magic(text):
            found = sorted((Path(p) for p in glob.glob(text, recursive=True)), key=lambda p: natural_key(str(p)))
            files += [p for p in found if min_age <= 0 or _age(p, now) >= min_age]
        elif strict:
            raise InputError(text, "input not found", hint)
    unique: dict[str, Path] = {}
    for p in files:  # the same file named twice (relative and absolute) is taken once
        unique.setdefault(os.path.abspath(p), p)
    return list(unique.values())


__all__ = ["expand_inputs", "ItemSet", "resolve_relion_path", "movie_set", "items_from_star", "items_from_scipion", "read_scipion_set",
           "natural_key", "MOVIE_EXTENSIONS", "MOVIE_LABEL", "MICROGRAPH_LABEL"]
