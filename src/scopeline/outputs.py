"""The output shape every cryo-EM tool shares: a table of measurements, one row per input
item, and the input items split into accepted / discarded / failed STAR sets."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .io.atomic import atomic_write
from .io.star import write_star

STATUSES = ("accepted", "discarded", "failed")


def write_table(path: str | Path, records: Sequence[dict], columns: Sequence[str]) -> pd.DataFrame:
    """CSV with exactly ``columns`` (missing values left empty), written atomically."""
    df = pd.DataFrame([{c: r.get(c) for c in columns} for r in records], columns=list(columns))
    for c in df.columns:  # integer columns with gaps stay integers (24, not 24.0)
        values = [r.get(c) for r in records if r.get(c) is not None]
        if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            df[c] = df[c].astype("Int64")
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        df.to_csv(handle, index=False)
    return df


def write_status_sets(
    out_dir: str | Path,
    records: Sequence[dict],
    prefix: str,
    block: str,
    optics: pd.DataFrame | None = None,
    extra_labels: dict[str, str] | None = None,
    row_key: str = "row",
    statuses: Iterable[str] = STATUSES,
    name_label: str = "rlnMicrographMovieName",
    optics_groups: dict[str, int] | None = None,
) -> dict[str, int]:
    """Write ``{prefix}_{status}.star`` for each status; return the counts.

    Each record's input row (``record[row_key]``, a dict of STAR labels) is written as-is,
    plus the measurements named in ``extra_labels`` (record field -> STAR label). When the
    input had an optics table, it is written as ``data_optics`` so RELION 3.1+ reads the set;
    ``optics_groups`` (record key -> group, from :func:`default_optics`) adds
    ``rlnOpticsGroup`` to rows that lack it. Empty sets are valid STAR files with the column
    labels and no rows.
    """
    extra_labels = extra_labels or {}
    counts = {}
    all_columns: list[str] = []
    for r in records:
        for label in (r.get(row_key) or {name_label: r["key"]}):
            if label not in all_columns:
                all_columns.append(label)
    if not all_columns:
        all_columns = [name_label]
    if optics_groups and "rlnOpticsGroup" not in all_columns:
        all_columns.append("rlnOpticsGroup")
    columns = all_columns + [label for label in extra_labels.values() if label not in all_columns]
    for status in statuses:
        rows = []
        for r in records:
            if r.get("status") != status:
                continue
            row = dict(r.get(row_key) or {name_label: r["key"]})
            if optics_groups and "rlnOpticsGroup" not in row:
                row["rlnOpticsGroup"] = optics_groups.get(r.get("key"), 1)
            for field, label in extra_labels.items():
                value = r.get(field)
                row[label] = value if value is not None else float("nan")
            rows.append(row)
        df = pd.DataFrame(rows, columns=columns)
        blocks = {}
        if optics is not None and len(optics):
            blocks["optics"] = optics
        blocks[block] = df
        write_star(Path(out_dir) / f"{prefix}_{status}.star", blocks)
        counts[status] = len(rows)
    return counts


def default_optics(records: Sequence[dict], kind: str = "movies",
                   pixel_field: str = "pixel_size") -> tuple[pd.DataFrame | None, dict[str, int] | None]:
    """A RELION 3.1 optics table for a set whose input had none, when pixel sizes are known.

    One optics group per distinct pixel size (``records[i][pixel_field]``, Å/px, in order of
    first appearance). ``kind="movies"`` writes ``rlnMicrographOriginalPixelSize``;
    ``"micrographs"`` also ``rlnMicrographPixelSize`` (the same value: nothing binned).

    Returns
    -------
    (optics, groups)
        The ``data_optics`` table and ``{record key: optics group}``, or ``(None, None)``
        when no record knows its pixel size. Records without one go to group 1.
    """
    sizes: list[float] = []
    groups: dict[str, int] = {}
    for r in records:
        px = r.get(pixel_field)
        try:
            px = float(px)
        except (TypeError, ValueError):
            continue
        if not (px > 0):
            continue
        match = next((i for i, s in enumerate(sizes) if abs(s - px) <= 1e-4 * s), None)
        if match is None:
            sizes.append(px)
            match = len(sizes) - 1
        groups[r.get("key")] = match + 1
    if not sizes:
        return None, None
    optics = pd.DataFrame({
        "rlnOpticsGroupName": [f"opticsGroup{i + 1}" for i in range(len(sizes))],
        "rlnOpticsGroup": list(range(1, len(sizes) + 1)),
        "rlnMicrographOriginalPixelSize": sizes,
    })
    if kind == "micrographs":
        optics["rlnMicrographPixelSize"] = sizes
    return optics, groups
