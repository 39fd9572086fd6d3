"""Re-export of a finished miniscope run with its curation applied, without re-running.

The export step (8) keeps every unit that passed its filter in the run's store
(``OUT/store.zarr/export/{A,C,S,YrA,...}``, A in the processed frame). A re-export reads
those arrays (never the files of an earlier export, so applying a changed curation twice
gives the same files), applies ``OUT/curation.json`` (:mod:`.curation`), maps the
footprints to the input video's frame as the export step does, and writes the same files
(NumPy, units.json, zarr / pickle / NWB as ``params.export.formats`` says) into a new folder
that then replaces ``OUT/export`` in one rename: a reader never sees a mix of two exports,
and files the step wrote besides them (``shifts.npy``) are carried over.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from ..errors import ConfigError, InputError
from ..io.atomic import make_temp_dir, write_json
from ..io.exports import _replace_dir, write_exports
from .coordinates import footprints_in_input
from .curation import Curation, apply_curation

CURATION_FILE = "curation.json"
#: per-unit arrays of the store's export group that travel to the export files
UNIT_ARRAYS = ("A", "C", "S", "YrA", "g", "baseline", "trace_noise", "decay_time", "snr", "size_px", "correlation")


def curation_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CURATION_FILE


def read_curation(run_dir: str | Path) -> Curation:
    """``RUN/curation.json`` (an empty curation when there is none).

    Raises
    ------
    ConfigError
        The file exists but is not a valid curation.
    """
    path = curation_path(run_dir)
    if not path.exists():
        return Curation()
    try:
        return Curation.model_validate(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(path, f"not a readable curation file ({exc})", "fix or delete it") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(path, f"invalid curation: {'.'.join(map(str, first['loc']))}: {first['msg']}",
                          "fix or delete it") from None


def write_curation(run_dir: str | Path, curation: Curation) -> Path:
    """Write ``RUN/curation.json`` atomically."""
    path = curation_path(run_dir)
    write_json(path, {**curation.model_dump(mode="json"),
                      "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return path


def _store_group(run_dir: Path):
    import zarr

    marker = run_dir / "steps" / "export" / "complete.json"
    store = run_dir / "store.zarr"
    if not marker.is_file() or not store.is_dir():
        raise InputError(run_dir, "the run has no finished export step",
                         "run the pipeline to the end first (scopeline miniscope run ... )")
    return zarr.open_group(str(store), mode="r")


def read_result(run_dir: str | Path) -> tuple[dict, np.ndarray, dict]:
    """The store's exported units: ``(arrays, unit_ids, background)`` (processed frame)."""
    from .float16 import as_dtype

    run_dir = Path(run_dir)
    group = _store_group(run_dir)["export"]
    arrays = {}
    for name in UNIT_ARRAYS:
        if name in group:
            array = group[name][...]
            arrays[name] = as_dtype(array, np.float32) if array.dtype == np.float16 else array
    for needed in ("A", "C", "S"):
        if needed not in arrays:
            raise InputError(run_dir / "store.zarr", f"export/{needed} is missing", "re-run the export step")
    background = {name: np.asarray(group[name][...], np.float32) for name in ("b", "f") if name in group}
    return arrays, np.asarray(group["unit_ids"][...], np.int64), background


def export_curated(run_dir: str | Path, curation: Curation | None = None) -> dict:
    """Write ``RUN/export`` again from the run's stored result with ``curation`` applied.

    Parameters
    ----------
    run_dir : str or Path
        A miniscope run folder whose export step has finished.
    curation : Curation, optional
        Default: ``RUN/curation.json`` (none: every unit, as the export step wrote them).

    Returns
    -------
    dict
        ``units_before``, ``units_exported``, ``rejected``, ``merged`` (groups), ``export_dir``.

    Raises
    ------
    InputError
        The run has no finished export step.
    ConfigError
        The curation names a unit the run does not hold.
    """
    from .params import load_params
    from .steps.base import StepContext, codec
    from .steps.export import _crop, _geometry

    run_dir = Path(run_dir)
    curation = read_curation(run_dir) if curation is None else curation
    arrays, ids, background = read_result(run_dir)
    curated = apply_curation(arrays, ids, curation)
    export_dir = run_dir / "export"
    old_units = export_dir / "units.json"
    metadata = {}
    if old_units.is_file():
        metadata = {k: v for k, v in json.loads(old_units.read_text()).items() if k not in ("unit_ids", "units")}
    ctx = StepContext(out_dir=run_dir, step="export", upstream=["cnmf_spatial", "cnmf_temporal", "noise", "detect",
                                                                 "init", "crop", "motion", "preprocess", "load",
                                                                 "config"])
    units = dict(curated.arrays)
    units["A"] = footprints_in_input(units["A"], _crop(ctx), _geometry(ctx))
    units["unit_ids"] = curated.unit_ids
    for name, shape in (("YrA", units["C"].shape), ("g", (len(units["C"]), 0))):
        units.setdefault(name, np.zeros(shape, np.float32))
    for name in ("snr", "size_px", "correlation", "decay_time"):
        units.setdefault(name, np.zeros(len(units["C"]), np.float32))
    params = load_params(run_dir / "params.json") if (run_dir / "params.json").is_file() else None
    formats = params.export.formats if params else ["zarr"]
    description = params.export.session_description if params else ""
    merged = [s for s in curated.sources if len(s) > 1]
    metadata.update({
        "n_units": int(len(curated.unit_ids)),
        "curation": {"file": CURATION_FILE, "applied": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "units_before": int(len(ids)), "rejected": sorted(curation.rejected),
                     "merged": merged},
    })
    metadata.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    metadata.setdefault("fps", params.config.fps if params else 30.0)
    metadata.setdefault("timestamps_s", (np.arange(units["C"].shape[1]) / metadata["fps"]).round(6).tolist())
    export_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(export_dir)
    try:
        write_exports(tmp, units, background, metadata, formats, description, codec())
        if export_dir.is_dir():  # files of the step not rewritten here (shifts.npy) are kept
            for old in export_dir.iterdir():
                if not (tmp / old.name).exists():
                    (shutil.copytree if old.is_dir() else shutil.copy2)(old, tmp / old.name)
        _replace_dir(tmp, export_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"units_before": int(len(ids)), "units_exported": int(len(curated.unit_ids)),
            "rejected": sorted(set(curation.rejected) & set(ids.tolist())), "merged": merged,
            "export_dir": str(export_dir)}


__all__ = ["CURATION_FILE", "read_curation", "write_curation", "read_result", "export_curated"]
