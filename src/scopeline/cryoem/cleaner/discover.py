"""``scopeline clean``: find the items -- micrographs matched to their coordinate files
(and to ``--other-micrographs``) by stem. File access only; no decision."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from scopeline.errors import InputError
from scopeline.io.coords import micrograph_key
from scopeline.io.sets import MICROGRAPH_LABEL, expand_inputs, movie_set
from scopeline.stream import Item

MICROGRAPH_EXTENSIONS = (".mrc", ".tif", ".tiff")
COORD_EXTENSIONS = (".pos", ".star", ".box", ".csv", ".txt")


def read_micrograph(path: str | Path) -> tuple[np.ndarray, float | None]:
    """A 2-D float32 micrograph and its pixel size (A/px or None)."""
    from scopeline.io.movies import read_image

    image, pixel_size = read_image(path)
    if image.ndim != 2:
        raise InputError(path, f"expected a 2-D micrograph, got shape {image.shape}")
    return image, pixel_size


def header_pixel_size(path: str | Path) -> float | None:
    """Pixel size from a micrograph header without reading the image (MRC), else None."""
    path = Path(path)
    if path.suffix.lower() == ".mrc":
        import mrcfile

        try:
            with mrcfile.open(path, header_only=True, permissive=True) as mrc:
                size = float(mrc.voxel_size.x)
            return size if size > 0 and abs(size - 1.0) > 1e-6 else None  # 1.0 = unset
        except (OSError, ValueError):
            return None
    try:
        return read_micrograph(path)[1]
    except Exception:  # noqa: BLE001 - only the pixel size is wanted here
        return None


def _expand(inputs: Sequence[str | Path], extensions: Sequence[str], min_age: float = 0.0,
            allow_empty: bool = False) -> list[Path]:
    """Files named by paths, folders or globs, with one of ``extensions``; missing -> error,
    an empty folder or a glob matching nothing too unless ``allow_empty`` (watching)."""
    return expand_inputs(inputs, extensions, min_age=min_age, allow_empty=allow_empty)


def coordinate_files(inputs: Sequence[str | Path], min_age: float = 0.0, allow_empty: bool = False) -> list[Path]:
    """Coordinate files named by ``inputs``; a RELION index STAR (``autopick.star`` with
    ``rlnMicrographCoordinates``) stands for the per-micrograph files it lists."""
    from scopeline.io.sets import resolve_relion_path
    from scopeline.io.star import read_star

    files: list[Path] = []
    for path in _expand(inputs, COORD_EXTENSIONS, min_age, allow_empty):
        listed = None
        if path.suffix.lower() == ".star":
            try:
                listed = next((b for b in read_star(path).values() if "rlnMicrographCoordinates" in b.columns), None)
            except InputError:
                listed = None  # an unreadable file is reported when its micrograph is processed
        if listed is None:
            files.append(path)
        else:
            files += [resolve_relion_path(str(name), path) for name in listed["rlnMicrographCoordinates"]]
    return files


def match_items(micrographs: list[Path], coords: list[Path], others: list[Path] | None) -> list[Item]:
    """One item per micrograph stem: its coordinate file and (optionally) other micrograph.

    An item lacking a coordinate file, a micrograph, or its other micrograph carries the
    problem in ``meta["problem"]`` and is recorded as failed.
    """
    by_mic = {p.stem: p for p in micrographs}
    by_other = {p.stem: p for p in (others or [])}
    by_coord: dict[str, Path] = {}
    for c in coords:
        key = micrograph_key(c) if micrograph_key(c) in by_mic or micrograph_key(c) in by_other else c.stem
        by_coord.setdefault(key, c)
    stems = list(by_mic) + [s for s in by_other if s not in by_mic] + [s for s in by_coord if s not in by_mic and s not in by_other]
    items = []
    for stem in stems:
        mic, coord, other = by_mic.get(stem), by_coord.get(stem), by_other.get(stem)
        problem = None
        if coord is None:
            problem = "no coordinate file matches this micrograph"
        elif others is not None and other is None:
            problem = "no micrograph in --other-micrographs matches these coordinates"
        elif others is None and mic is None:
            problem = "no micrograph matches this coordinate file"
        source = mic or other or coord
        items.append(
            Item(
                key=str(Path(source).resolve()) + "|" + stem,
                meta={"stem": stem, "micrograph": mic, "coords": coord, "other": other, "problem": problem},
            )
        )
    return items


def find_items(micrographs, coords, other_micrographs, min_age: float = 0.0,
               allow_empty: bool = False) -> list[Item]:
    """Items for the current contents of the inputs (polled again when watching); files
    modified less than ``min_age`` seconds ago are taken as still being written. An input
    naming nothing is an error unless ``allow_empty`` (watching)."""
    sets = (movie_set(micrographs, MICROGRAPH_EXTENSIONS, min_age=min_age, label=MICROGRAPH_LABEL,
                      allow_empty=allow_empty) if micrographs else None)
    mics = [Path(it.key) for it in sets.items] if sets else []
    rows = {it.key: it.row for it in sets.items} if sets else {}
    others = (_settled(_expand(other_micrographs, MICROGRAPH_EXTENSIONS, allow_empty=allow_empty), min_age)
              if other_micrographs is not None else None)
    items = match_items(mics, _settled(coordinate_files(coords, allow_empty=allow_empty), min_age), others)
    for it in items:  # the micrograph's input row (a STAR's), written back in the output sets
        mic = it.meta["micrograph"]
        row = rows.get(str(Path(mic).resolve())) if mic is not None else None
        it.meta["row"] = row if row and MICROGRAPH_LABEL in row else ({MICROGRAPH_LABEL: str(mic)} if mic else None)
    return items


def _settled(paths: list[Path], min_age: float) -> list[Path]:
    if min_age <= 0:
        return paths
    now = time.time()
    return [p for p in paths if p.exists() and now - p.stat().st_mtime >= min_age]


def item_files(item: Item) -> list:
    """The files an item's measurement reads (for the retry rule)."""
    meta = item.meta
    return [meta.get("micrograph"), meta.get("coords"), meta.get("other")]
