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
    if "enabled" in objects.columns:  # NULL (a row being written) counts as enabled
        enabled = pd.to_numeric(objects["enabled"], errors="coerce").fillna(1)
        objects = objects[enabled.astype(int) == 1]
    return objects.reset_index(drop=True), properties


def _row_id(obj: dict, default="?"):
    """A Scipion row's id (the ``id`` column, named ``self`` by the Classes table)."""
    for name in ("id", "self"):
        if obj.get(name) is not None:
            return obj[name]
    return default


def scipion_filename(obj: dict) -> tuple[str, str | None]:
    """``(file name, problem)`` of one Scipion set row: a row written while Scipion was still
    streaming can hold no name (NULL) or a name of NUL bytes; such a row gets a problem (the
    item is then recorded as failed) instead of stopping the run."""
    value = obj.get("_filename")
    where = f"row id {_row_id(obj)}"
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if value is None or (isinstance(value, float) and value != value):
        return "", f"{where}: no file name (_filename is NULL; set written while streaming?)"
    text = str(value)
    if "\x00" in text:
        shown = text.replace("\x00", "")
        return shown, (f"{where}: file name contains {text.count(chr(0))} NUL byte(s)"
                       + (f" ({shown!r} without them)" if shown else "") + "; set written while streaming?")
    if not text.strip():
        return "", f"{where}: empty file name"
    return text, None


def items_from_scipion(path: str | Path) -> ItemSet:
    """Movies or micrographs of a Scipion set, with sampling rate and dose per frame.

    A row without a usable file name (see :func:`scipion_filename`) becomes an item with
    ``meta["error"]``, which :func:`scopeline.stream.run_stream` records as failed."""
    path = Path(path)
    objects, props = read_scipion_set(path)
    if "_filename" not in objects.columns:
        raise InputError(path, "Scipion set has no _filename attribute")
    set_pixel = _float_or_none(props.get("_samplingRate"))
    set_dose = _float_or_none(props.get("_acquisition._dosePerFrame"))
    items = []
    for obj in objects.to_dict("records"):
        filename, problem = scipion_filename(obj)
        pixel_size = _float_or_none(obj.get("_samplingRate")) or set_pixel
        dose = _float_or_none(obj.get("_acquisition._dosePerFrame")) or set_dose
        meta = {"pixel_size": pixel_size, "dose_per_frame": dose, "scipion": obj}
        if problem:
            items.append(Item(key=f"{path.resolve()}::id {_row_id(obj, len(items))}",
                              row={MOVIE_LABEL: filename},
                              meta={**meta, "error": f"{path}: {problem}",
                                    "record": {"movie": filename}}))
            continue
        items.append(Item(key=str(resolve_relion_path(filename, path)), row={MOVIE_LABEL: filename},
                          meta=meta))
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


def require_matches(source: str | Path, n_found: int, what: str, extensions: Sequence[str] = (),
                    allow_empty: bool = False) -> None:
    """Stop with one line when an input names nothing: an empty folder, a glob matching no
    file, a STAR or Scipion set without rows (``what`` says what was looked for). Every
    input expander calls it for each input, with ``allow_empty`` when watching (files may
    still arrive)."""
    if n_found or allow_empty:
        return
    path = Path(str(source))
    if path.is_dir():
        kinds = f" ({', '.join(extensions)})" if extensions else ""
        raise InputError(source, f"folder holds no {what}{kinds}",
                         "give the folder that holds them, a glob, or --watch to wait for them")
    if path.is_file():
        raise InputError(source, f"lists no {what}", "give a set that lists some")
    raise InputError(source, f"pattern matches no {what}",
                     "check the pattern (quote it so the shell does not expand it), or --watch to wait")


def movie_set(inputs: Sequence[str | Path], extensions: Sequence[str] = MOVIE_EXTENSIONS,
              min_age: float = 0.0, label: str = MOVIE_LABEL, allow_empty: bool = False) -> ItemSet:
    """All items named by ``inputs`` (files, globs, folders, .star, .sqlite), in order,
    each once. ``min_age`` skips files modified in the last seconds (still being written).
    An input naming nothing (empty folder, glob without match, set without rows) raises
    :class:`InputError` unless ``allow_empty`` (watching: files may still arrive)."""
    items: list[Item] = []
    optics = None
    block = "movies"
    what = "micrographs" if label == MICROGRAPH_LABEL else "movies"
    for raw in inputs:
        text = str(raw)
        path = Path(text)
        if path.suffix == ".star" and path.is_file():
            sub = items_from_star(path, label=label)
            require_matches(text, len(sub.items), what, allow_empty=allow_empty)
            items += sub.items
            optics = sub.optics if optics is None else optics
            block = sub.block
        elif path.suffix == ".sqlite" and path.is_file():
            sub = items_from_scipion(path)
            require_matches(text, len(sub.items), what, allow_empty=allow_empty)
            items += sub.items
        elif path.exists() and not path.is_dir() and path.suffix.lower() not in extensions:
            raise InputError(path, f"unknown movie format '{path.suffix}'",
                             "give " + ", ".join(extensions) + " files, a folder, a STAR or a .sqlite")
        else:
            for found in expand_inputs([text], extensions, min_age=min_age, what=what, allow_empty=allow_empty,
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
                  strict: bool = True, hint: str = "give existing files, a folder or a glob",
                  what: str = "files", allow_empty: bool = False) -> list[Path]:
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
    what : str
        What the inputs should hold, for the error when a folder or glob names nothing.
    allow_empty : bool
        Accept an empty folder or a glob matching nothing (watching: files may still
        arrive); else :func:`require_matches` stops with one line.

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
            require_matches(text, len(found), what, extensions or (), allow_empty)
            files += [p for p in found if min_age <= 0 or _age(p, now) >= min_age]
        elif path.exists():
            files.append(path)
        elif glob.has_magic(text):
            found = sorted((Path(p) for p in glob.glob(text, recursive=True)), key=lambda p: natural_key(str(p)))
            require_matches(text, len(found), what, allow_empty=allow_empty)
            files += [p for p in found if min_age <= 0 or _age(p, now) >= min_age]
        elif strict:
            raise InputError(text, "input not found", hint)
    unique: dict[str, Path] = {}
    for p in files:  # the same file named twice (relative and absolute) is taken once
        unique.setdefault(os.path.abspath(p), p)
    return list(unique.values())


__all__ = ["expand_inputs", "ItemSet", "resolve_relion_path", "movie_set", "require_matches", "scipion_filename", "items_from_star", "items_from_scipion", "read_scipion_set",
           "natural_key", "MOVIE_EXTENSIONS", "MOVIE_LABEL", "MICROGRAPH_LABEL"]
