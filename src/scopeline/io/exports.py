"""Writers of the miniscope results: NumPy files and JSON, a zarr group, a pickle (NWB in
``nwb.py``). Every file is written atomically; the zarr group is built in a temporary
folder and renamed into place."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_path, atomic_write, make_temp_dir, write_json
from .nwb import write_nwb

__all__ = ["write_exports", "write_zarr"]


def write_exports(export_dir: Path, units: dict, background: dict, metadata: dict, formats: Sequence[str],
                  session_description: str = "", compressors=None) -> None:
    """Write the miniscope results into ``export_dir``, each file atomically.

    Parameters
    ----------
    export_dir : Path
        Output folder (created if needed).
    units : dict
        Per-unit arrays: ``A`` (units, h, w), ``C``/``S``/``YrA`` (units, frames),
        ``unit_ids``, ``snr``, ``size_px``, ``correlation``, ``g``, ``decay_time``.
    background : dict
        ``b`` (h, w) and ``f`` (frames,).
    metadata : dict
        Recorded in ``units.json`` (and the zarr/pickle/NWB files); ``fps``,
        ``created`` and ``timestamps_s`` are needed for NWB.
    formats : sequence of str
        Any of ``"zarr"``, ``"pickle"``, ``"nwb"`` besides the NumPy files and JSON.
    session_description : str
        NWB session description.
    compressors : zarr codec, optional
        Compressor of the zarr arrays.
    """
    export_dir.mkdir(parents=True, exist_ok=True)
    main = {"A": units["A"].astype(np.float32, copy=False), "C": units["C"].astype(np.float32),
            "S": units["S"].astype(np.float32), **background}
    for name, array in main.items():
        with atomic_path(export_dir / f"{name}.npy") as tmp:
            np.save(tmp, array)
    record = {
        "unit_ids": units["unit_ids"].astype(int).tolist(),
        "units": [{"id": int(i), "snr": float(q), "size_px": int(s), "correlation": float(r), "g": g.tolist(),
                   "decay_time_s": float(tau)}
                  for i, q, s, r, g, tau in zip(units["unit_ids"], units["snr"], units["size_px"],
                                                units["correlation"], units["g"], units["decay_time"])],
        **metadata,
    }
    write_json(export_dir / "units.json", record)
    if "zarr" in formats:
        write_zarr(export_dir / "results.zarr", {**main, "unit_ids": units["unit_ids"],
                                                 "YrA": units["YrA"].astype(np.float32)}, record, compressors)
    if "pickle" in formats:
        with atomic_write(export_dir / "results.pkl", "wb") as handle:
            pickle.dump({**main, "unit_ids": units["unit_ids"], "YrA": units["YrA"], "metadata": record},
                        handle, protocol=pickle.HIGHEST_PROTOCOL)
    if "nwb" in formats:
        write_nwb(export_dir / "results.nwb", main, units["unit_ids"], metadata, session_description)


def write_zarr(path: Path, arrays: dict, attrs: dict, compressors=None) -> None:
    """A zarr group with one array per entry and the metadata as attributes; built in a
    temporary folder and renamed into place."""
    import zarr

    tmp = make_temp_dir(path)  # 0777 less the umask, like the rest of the outputs
    try:
        group = zarr.open_group(str(tmp), mode="w")
        for name, array in arrays.items():
            array = np.asarray(array)
            chunks = (min(256, array.shape[0]),) + array.shape[1:] if array.ndim else None
            group.create_array(name, shape=array.shape, dtype=array.dtype, compressors=compressors if compressors is not None else "auto",
                               **({"chunks": chunks} if chunks and array.size else {}))
            if array.size:
                group[name][...] = array
        group.attrs.update(json.loads(json.dumps(attrs, default=_plain)))
        _replace_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(tmp: Path, path: Path) -> None:
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old.{os.getpid()}.{time.time_ns()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
