"""Step 8 (guide 8a-8c): final YrA and temporal update with the refined footprints, final
filtering, export (NumPy, zarr, JSON, pickle, NWB) and the result figures.

OUT/export/A.npy (units, H, W) float32 in the input video's frame (H x W: the crop box is
placed back and spatial downsampling undone, see ``coordinates.footprints_in_input``), C.npy and
S.npy (units, frames), b.npy (h, w) (processed frame), f.npy (frames,), shifts.npy
(frames, 2: the rigid (dy, dx) that corrected each exported frame, input pixels),
units.json, results.zarr, results.pkl, results.nwb (masks as A) -- all atomic.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...io.atomic import atomic_path, atomic_write, write_json
from ..cnmf import temporal
from ..coordinates import footprints_in_input
from ..params_cnmf import ExportParams
from .base import Step, StepContext, codec
from .cnmf_common import (final_yra, load_array, outline_overlay, read_movie, require_units, run_temporal_update,
                          traces_figure, write_units)


class ExportStep(Step):
    name = "export"
    title = "Final temporal update and export"
    params_model = ExportParams
    version = "2"  # float16 movie read in place, fused passes

    def run(self, ctx: StepContext, params: ExportParams) -> dict:
        Y = read_movie(ctx)
        A = load_array(ctx, "cnmf_spatial/A")
        C = load_array(ctx, "cnmf_spatial/C").astype(np.float64)
        ids = load_array(ctx, "cnmf_spatial/unit_ids")
        b = load_array(ctx, "cnmf_spatial/b")
        require_units(ctx, A, "A")
        stored = ctx.read_json("cnmf_temporal/temporal_settings")
        settings = temporal.TemporalSettings(stored["ar_order"], stored["sparse_penalty"], stored["zero_threshold"])

        # 8a-8b
        if not params.include_background:
            b = b[:0]
        YrA, f = final_yra(Y, A, C, b)
        result = run_temporal_update(YrA, settings, params.chunk_size, params.overlap, stored["max_iterations"],
                                     stored["tolerance"], ctx.fps, stored["shared_kernel"], stored["max_decay_time"])
        # 8c filter
        sizes = (A > 0.1 * A.max(axis=(1, 2), keepdims=True)).sum(axis=(1, 2))
        snr = temporal.trace_snr(result["C"], result["trace_noise"])
        corr = temporal.correlation_rows(YrA.astype(np.float64), result["C"].astype(np.float64))
        reasons = [_final_reason(s, q, r, ok, tau, stored["max_decay_time"], params)
                   for s, q, r, ok, tau in zip(sizes, snr, corr, result["converged"], result["decay_time"])]
        arrays = {"A": A, "C": result["C"], "S": result["S"], "YrA": YrA, "g": result["g"],
                  "baseline": result["baseline"], "trace_noise": result["trace_noise"],
                  "decay_time": result["decay_time"],
                  "snr": snr.astype(np.float32), "size_px": sizes.astype(np.int64), "correlation": corr}
        keep = write_units(ctx, "final filter", ids, reasons, **arrays)
        ctx.write("b", b)
        ctx.write("f", f)
        kept = {k: v[keep] for k, v in arrays.items()}
        kept["unit_ids"] = ids[keep]

        frame_index = load_array(ctx, "frame_index") if ctx.has("frame_index") else np.arange(YrA.shape[1])
        export_dir = ctx.out_dir / "export"
        crop, geometry = _crop(ctx), _geometry(ctx)
        exported = {**kept, "A": footprints_in_input(kept["A"], crop, geometry)}
        metadata = {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "fps": ctx.fps, "n_frames": int(YrA.shape[1]), "shape": list(exported["A"].shape[1:]),
            "processed_shape": list(A.shape[1:]),  # the cropped (and downsampled) frame CNMF worked in
            "crop": crop,  # where that frame lies in the (downsampled) video
            "downsample_space": geometry["downsample_space"] if geometry else 1,
            "n_units": int(keep.sum()), "frame_index": frame_index.astype(int).tolist(),
            "timestamps_s": (frame_index / ctx.fps).round(6).tolist(),
            "temporal_settings": {**settings.__dict__},
            "parameters": _run_parameters(ctx.out_dir),
            "dropped_units": _all_dropped(ctx),
        }
        background = {"b": b.astype(np.float32), "f": f.astype(np.float32)}
        write_exports(export_dir, exported, background, metadata, params)
        if ctx.has("shifts"):  # the rigid correction of each exported frame, input pixels
            factor = geometry["downsample_space"] if geometry else 1
            shifts = np.asarray(load_array(ctx, "shifts"), np.float32) * np.float32(factor)
            with atomic_path(export_dir / "shifts.npy") as tmp:
                np.save(tmp, shifts)
        mean_frame = load_array(ctx, "mean_frame")
        _figures(ctx, mean_frame, kept, params.n_example_traces)
        return {"units_in": len(ids), "units_exported": int(keep.sum()), "export_dir": str(export_dir),
                "median_snr": float(np.median(kept["snr"])), "formats": params.formats}


def _final_reason(size: int, snr: float, corr: float, converged: bool, decay: float, max_decay: float,
                  params: ExportParams) -> str:
    why = []
    if not converged:
        why.append("deconvolution did not converge")
    if not decay <= max_decay:
        why.append(f"decay time {decay:.2g} s > {max_decay:g} s (slow drift, not transients)")
    if size < params.min_size:
        why.append(f"size {size} px < {params.min_size}")
    if not snr >= params.min_snr:
        why.append(f"SNR {snr:.2f} < {params.min_snr:g}")
    if not corr >= params.min_correlation:
        why.append(f"correlation {corr:.2f} < {params.min_correlation:g}")
    return "; ".join(why)


def _crop(ctx: StepContext) -> dict | None:
    try:
        return ctx.read_json("crop")
    except InputError:  # no crop record (steps 1-4 replaced, as in tests)
        return None


def _geometry(ctx: StepContext) -> dict | None:
    try:
        return ctx.read_json("load/frame_geometry")
    except (InputError, OSError):  # no load record (steps 1-4 replaced, as in tests)
        return None


def _run_parameters(out_dir: Path) -> dict:
    path = out_dir / "params.json"
    if path.exists():
        with contextlib.suppress(OSError, json.JSONDecodeError):
            return json.loads(path.read_text())
    return {}


def _all_dropped(ctx: StepContext) -> list[dict]:
    dropped = []
    for step in ("noise", "cnmf_temporal", "cnmf_spatial", "export"):
        path = ctx.out_dir / "steps" / step / "dropped_units.json"
        if path.exists():
            dropped += json.loads(path.read_text())
    return dropped


# ----------------------------------------------------------------------------- writers
def write_exports(export_dir: Path, units: dict, background: dict, metadata: dict, params: ExportParams) -> None:
    """Write every requested format into ``export_dir`` (each file atomically)."""
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
    if "zarr" in params.formats:
        write_zarr(export_dir / "results.zarr", {**main, "unit_ids": units["unit_ids"],
                                                 "YrA": units["YrA"].astype(np.float32)}, record)
    if "pickle" in params.formats:
        with atomic_write(export_dir / "results.pkl", "wb") as handle:
            pickle.dump({**main, "unit_ids": units["unit_ids"], "YrA": units["YrA"], "metadata": record},
                        handle, protocol=pickle.HIGHEST_PROTOCOL)
    if "nwb" in params.formats:
        write_nwb(export_dir / "results.nwb", main, units["unit_ids"], metadata, params.session_description)


def write_zarr(path: Path, arrays: dict, attrs: dict) -> None:
    """A zarr group with one array per entry and the metadata as attributes; built in a
    temporary folder and renamed into place."""
    import zarr

    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        group = zarr.open_group(str(tmp), mode="w")
        for name, array in arrays.items():
            array = np.asarray(array)
            chunks = (min(256, array.shape[0]),) + array.shape[1:] if array.ndim else None
            group.create_array(name, shape=array.shape, dtype=array.dtype, compressors=codec(),
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


def write_nwb(path: Path, arrays: dict, unit_ids: np.ndarray, metadata: dict, description: str) -> None:
    """NWB 2 file: PlaneSegmentation with image masks, Fluorescence (C) and Deconvolved (S)
    RoiResponseSeries with per-frame timestamps, background as a 1-row series."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ophys import Fluorescence, ImageSegmentation, OpticalChannel

    created = datetime.fromisoformat(metadata["created"])
    nwb = NWBFile(session_description=description, identifier=f"scopeline-{created.strftime('%Y%m%dT%H%M%S')}",
                  session_start_time=created)
    device = nwb.create_device(name="Miniscope")
    channel = OpticalChannel(name="OpticalChannel", description="green", emission_lambda=525.0)
    plane = nwb.create_imaging_plane(name="ImagingPlane", optical_channel=channel, device=device,
                                     description="miniscope field of view", excitation_lambda=470.0,
                                     imaging_rate=float(metadata["fps"]), indicator="GCaMP", location="unknown")
    module = nwb.create_processing_module(name="ophys", description="scopeline CNMF results")
    segmentation = ImageSegmentation(name="ImageSegmentation")
    module.add(segmentation)
    planes = segmentation.create_plane_segmentation(name="PlaneSegmentation", description="CNMF footprints",
                                                    imaging_plane=plane)
    planes.add_column(name="unit_id", description="scopeline unit id")
    for mask, uid in zip(arrays["A"], unit_ids):
        planes.add_roi(image_mask=mask.astype(np.float32, copy=False), unit_id=int(uid))
    rois = planes.create_roi_table_region(region=list(range(len(unit_ids))), description="all units")
    timestamps = np.asarray(metadata["timestamps_s"], np.float64)
    for container, series, data, unit in (("Fluorescence", "C", arrays["C"], "a.u."),
                                          ("Deconvolved", "S", arrays["S"], "a.u.")):
        holder = Fluorescence(name=container)
        module.add(holder)
        holder.create_roi_response_series(name=series, data=np.ascontiguousarray(data.T), rois=rois,
                                          unit=unit, timestamps=timestamps)
    with atomic_path(path) as tmp, NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwb)


# ----------------------------------------------------------------------------- figures
def _figures(ctx: StepContext, mean_frame: np.ndarray, units: dict, n_traces: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(mean_frame, cmap="gray")
    ax.imshow(outline_overlay(units["A"]))
    for a, uid in zip(units["A"], units["unit_ids"]):
        y, x = np.unravel_index(np.argmax(a), a.shape)
        ax.text(x, y, str(uid), color="yellow", fontsize=5)
    ax.set_title(f"{len(units['A'])} exported units")
    ax.axis("off")
    ctx.report_figure(fig, "footprints", "Footprints (contour at 30% of max) over the mean frame")
    traces_figure(ctx, units["YrA"], units["C"], units["S"], units["unit_ids"], n_traces, "traces",
                  "Example traces: YrA (grey), calcium C and inferred spikes (ticks)", ctx.fps)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].hist(units["snr"], bins=30)
    axes[0].set_xlabel("SNR (peak C / noise std)")
    axes[1].hist(units["size_px"], bins=30)
    axes[1].set_xlabel("footprint size (px above 10% of max)")
    for ax in axes:
        ax.set_ylabel("units")
    ctx.report_figure(fig, "distributions", "SNR and size distributions of the exported units")


STEP = ExportStep()
