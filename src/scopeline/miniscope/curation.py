"""Manual curation of miniscope units: rejections and merges applied to A, C, S (pure).

A curation (:class:`Curation`, saved as ``RUN/curation.json`` by the unit explorer) lists
the unit ids rejected, those reviewed and kept (``accepted``, a record only), and groups of
ids merged into one unit. :func:`apply_curation` turns the exported per-unit arrays into
the curated ones; nothing here reads or writes files (see ``export_curated``).

Merge rule (documented in docs/ui.md, tested by hand-worked examples)
----------------------------------------------------------------------
The members ``i`` of a group have footprints ``a_i`` (pixels), traces ``c_i`` and spikes
``s_i`` (frames). Their contribution to the movie is ``sum_i a_i c_i^T``.

* footprint: ``a = sum_i w_i a_i`` with ``w_i = max_t c_i(t)`` (each member at its peak
  brightness; 1 for a member whose trace never rises above 0), scaled to max 1 (the
  pipeline's ``normalize = "max"``): ``a_m = a / max(a)``;
* trace: the least-squares trace of ``a_m`` against the members' summed contribution,
  ``c_m = argmin_c ||sum_i a_i c_i^T - a_m c^T||``, i.e. ``c_m = sum_i k_i c_i`` with
  ``k_i = <a_m, a_i> / <a_m, a_m>``; ``s_m = sum_i k_i s_i`` and every other trace-like
  array (``YrA``) alike. When the members share one time course the merged ``a_m c_m^T``
  reproduces their sum exactly;
* id: the smallest id of the group; ``size_px`` recomputed (pixels above 10 % of the
  footprint's max, as the export step counts); every other per-unit value (``snr``, ``g``,
  ``decay_time``, ...) is that of the member with the largest ``w_i max(a_i)``.

A rejected unit is dropped; rejecting any member of a merge group drops the merged unit.
The order of the units is kept (a merged unit takes the place of its first member).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import ConfigError

FOOTPRINT = "A"
TRACES = ("C", "S", "YrA")  # combined linearly with the weights k_i
SIZE_LEVEL = 0.1  # size_px counts pixels above this fraction of the footprint's max (export step 8c)


class Curation(BaseModel):
    """Decisions on the units of one run (``RUN/curation.json``).

    Parameters
    ----------
    rejected : list of int
        Unit ids removed by the curated export.
    accepted : list of int
        Unit ids reviewed and kept (a record; kept units need no entry).
    merges : list of list of int
        Groups of unit ids (at least 2 each, no id in two groups) merged into one unit.
    """

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    rejected: list[int] = Field(default_factory=list, description="unit ids removed by the curated export")
    accepted: list[int] = Field(default_factory=list, description="unit ids reviewed and kept")
    merges: list[list[int]] = Field(default_factory=list, description="groups of unit ids merged into one unit")
    updated: str | None = Field(None, description="when the file was last written (UTC, ISO 8601)")

    @field_validator("merges")
    @classmethod
    def _disjoint_groups(cls, groups: list[list[int]]) -> list[list[int]]:
        seen: set[int] = set()
        out = []
        for group in groups:
            members = sorted(set(group))
            if len(members) < 2:
                raise ValueError(f"a merge group needs two units or more, got {group}")
            if seen & set(members):
                raise ValueError(f"unit {sorted(seen & set(members))[0]} is in two merge groups")
            seen |= set(members)
            out.append(members)
        return out

    def decision(self, unit_id: int) -> str:
        """``"rejected"``, ``"accepted"`` or ``"undecided"``."""
        if unit_id in self.rejected:
            return "rejected"
        return "accepted" if unit_id in self.accepted else "undecided"

    def group_of(self, unit_id: int) -> list[int] | None:
        """The merge group holding ``unit_id``, or None."""
        return next((g for g in self.merges if unit_id in g), None)


def set_decision(curation: Curation, unit_id: int,
                 decision: Literal["accepted", "rejected", "undecided"]) -> Curation:
    """A copy of ``curation`` with ``unit_id`` accepted, rejected or undecided."""
    if decision not in ("accepted", "rejected", "undecided"):
        raise ConfigError(None, f"decision {decision!r} is not allowed", "use accepted, rejected or undecided")
    rejected = [u for u in curation.rejected if u != unit_id]
    accepted = [u for u in curation.accepted if u != unit_id]
    if decision == "rejected":
        rejected.append(int(unit_id))
    elif decision == "accepted":
        accepted.append(int(unit_id))
    return curation.model_copy(update={"rejected": sorted(rejected), "accepted": sorted(accepted)})


def add_merge(curation: Curation, unit_ids: Sequence[int]) -> Curation:
    """A copy of ``curation`` where ``unit_ids`` (two or more) and every group holding one of
    them form one merge group."""
    members = {int(u) for u in unit_ids}
    if len(members) < 2:
        raise ConfigError(None, "a merge needs two different units", "select two units")
    kept = []
    for group in curation.merges:
        if members & set(group):
            members |= set(group)
        else:
            kept.append(group)
    return curation.model_copy(update={"merges": [*kept, sorted(members)]})


def undo_merge(curation: Curation, unit_id: int) -> Curation:
    """A copy of ``curation`` without the merge group holding ``unit_id``."""
    return curation.model_copy(update={"merges": [g for g in curation.merges if unit_id not in g]})


def merge_rows(footprints: np.ndarray, traces: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict, np.ndarray]:
    """The merged unit of a group (module docstring's rule).

    Parameters
    ----------
    footprints : ndarray, (g, pixels...)
        The members' footprints (any trailing shape).
    traces : mapping of name -> ndarray (g, frames)
        ``"C"`` (required: the weights come from it) and other trace-like arrays.

    Returns
    -------
    a_m : ndarray (pixels...)
        Merged footprint, max 1 (float32).
    merged : dict name -> ndarray (frames,)
        Each trace array combined with the weights ``k``.
    w : ndarray (g,)
        The members' brightness weights ``w_i``.
    """
    a = np.asarray(footprints, np.float64).reshape(len(footprints), -1)
    c = np.asarray(traces["C"], np.float64)
    w = c.max(axis=1)
    w = np.where(w > 0, w, 1.0)
    summed = w @ a
    peak = summed.max()
    if not peak > 0:
        raise ConfigError(None, "the merged units have empty footprints", "merge units with footprints")
    a_m = summed / peak
    k = (a @ a_m) / (a_m @ a_m)
    merged = {name: (k @ np.asarray(x, np.float64)).astype(np.float32) for name, x in traces.items()}
    return a_m.reshape(np.shape(footprints)[1:]).astype(np.float32), merged, w


@dataclass
class Curated:
    """The curated units: ``arrays`` (first axis = units), their ``unit_ids``, and for each
    unit the ids it was made from (``sources``: one id, or a merge group)."""

    arrays: dict
    unit_ids: np.ndarray
    sources: list[list[int]]


def apply_curation(arrays: Mapping[str, np.ndarray], unit_ids: Sequence[int], curation: Curation) -> Curated:
    """Apply rejections and merges to per-unit arrays.

    Parameters
    ----------
    arrays : mapping name -> ndarray
        Every array's first axis is the unit (``A`` (units, h, w), ``C``/``S``/``YrA``
        (units, frames), ``snr``, ``size_px``, ``g`` ...). ``A`` and ``C`` are required.
    unit_ids : sequence of int
        Id of each row.
    curation : Curation
        Ids that are not in ``unit_ids`` are an error (a curation of another result).

    Returns
    -------
    Curated

    Raises
    ------
    ConfigError
        The curation names a unit the result does not hold.
    """
    ids = [int(u) for u in unit_ids]
    row = {u: i for i, u in enumerate(ids)}
    named = set(curation.rejected) | set(curation.accepted) | {u for g in curation.merges for u in g}
    unknown = sorted(named - set(row))
    if unknown:
        raise ConfigError("curation.json", f"unit {unknown[0]} is not in this result "
                          f"({len(unknown)} unknown id(s))", "curate this run's units, or delete curation.json")
    rejected = set(curation.rejected)
    group_at: dict[int, list[int]] = {}
    for group in curation.merges:
        group_at[min(row[u] for u in group)] = sorted(group, key=row.__getitem__)
    in_group = {u for g in curation.merges for u in g}

    out_rows: list[dict] = []
    sources: list[list[int]] = []
    for i, uid in enumerate(ids):
        if i in group_at:
            group = group_at[i]
            if rejected & set(group):
                continue
            members = [row[u] for u in group]
            trace_names = [n for n in TRACES if n in arrays]
            a_m, merged, w = merge_rows(arrays[FOOTPRINT][members], {n: arrays[n][members] for n in trace_names})
            peaks = np.asarray(arrays[FOOTPRINT][members], np.float64).reshape(len(members), -1).max(axis=1)
            lead = members[int(np.argmax(w * peaks))]
            values = {name: np.asarray(array[lead]) for name, array in arrays.items()}
            values.update(merged)
            values[FOOTPRINT] = a_m
            if "size_px" in arrays:
                values["size_px"] = np.asarray(int((a_m > SIZE_LEVEL * a_m.max()).sum()),
                                               np.asarray(arrays["size_px"]).dtype)
            values["__id__"] = min(group)
            out_rows.append(values)
            sources.append(sorted(group))
        elif uid in in_group or uid in rejected:
            continue
        else:
            out_rows.append({**{name: np.asarray(array[i]) for name, array in arrays.items()}, "__id__": uid})
            sources.append([uid])
    curated = {}
    for name, array in arrays.items():
        array = np.asarray(array) if not isinstance(array, np.ndarray) else array
        if out_rows:
            curated[name] = np.stack([r[name] for r in out_rows]).astype(array.dtype, copy=False)
        else:
            curated[name] = np.zeros((0,) + array.shape[1:], array.dtype)
    new_ids = np.array([r["__id__"] for r in out_rows], np.int64)
    return Curated(curated, new_ids, sources)


__all__ = ["Curation", "Curated", "set_decision", "add_merge", "undo_merge", "merge_rows", "apply_curation"]
