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
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...io.atomic import atomic_path
from ...io.exports import write_exports
from ..cnmf import temporal
from ..cnmf.ring_background import subtract_ring_movie
from ..coordinates import footprints_in_input
from ..params_cnmf import ExportParams
from .base import Step, StepContext, codec
from .cnmf_common import (
    field_mask,
    final_yra,
    load_array,
    load_ring,
    outline_overlay,
    read_movie,
    require_units,
    run_temporal_update,
    traces_figure,
    write_units,
)


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
        ring = load_ring(ctx, "cnmf_spatial")
        if ring is not None:  # YrA from Y minus the ring background of step 7's units
            Y = subtract_ring_movie(Y, A, C, ring, field_mask(ctx, A.shape[1:]))
        YrA, f = final_yra(Y, A, C, b)
        result = run_temporal_update(YrA, settings, params.chunk_size, params.overlap, stored["max_iterations"],
                                     stored["tolerance"], ctx.fps, stored["shared_kernel"], stored["max_decay_time"],
                                     stored.get("kernel_snr_quantile", 0.5))  # 0.5 before the setting existed
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
        write_exports(export_dir, exported, background, metadata, params.formats, params.session_description, codec())
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


# ----------------------------------------------------------------------------- figures
def units_figure(mean_frame: np.ndarray, units: dict):
    """The exported footprints' outlines and ids over the mean frame."""
    from ...present.figures import new_figure

    fig, ax = new_figure(figsize=(7, 7))
    ax.imshow(mean_frame, cmap="gray")
    ax.imshow(outline_overlay(units["A"]))
    for a, uid in zip(units["A"], units["unit_ids"]):
        y, x = np.unravel_index(np.argmax(a), a.shape)
        ax.text(x, y, str(uid), color="yellow", fontsize=5)
    ax.set_title(f"{len(units['A'])} exported units")
    ax.axis("off")
    return fig


def distributions_figure(units: dict):
    """Histograms of the exported units' SNR and footprint size (px)."""
    from ...present.figures import new_figure

    fig, axes = new_figure(1, 2, figsize=(10, 3.5))
    axes[0].hist(units["snr"], bins=30)
    axes[0].set_xlabel("SNR (peak C / noise std)")
    axes[1].hist(units["size_px"], bins=30)
    axes[1].set_xlabel("footprint size (px above 10% of max)")
    for ax in axes:
        ax.set_ylabel("units")
    return fig


def _figures(ctx: StepContext, mean_frame: np.ndarray, units: dict, n_traces: int) -> None:
    ctx.report_figure(units_figure(mean_frame, units), "footprints",
                      "Footprints (contour at 30% of max) over the mean frame")
    traces_figure(ctx, units["YrA"], units["C"], units["S"], units["unit_ids"], n_traces, "traces",
                  "Example traces: YrA (grey), calcium C and inferred spikes (ticks)", ctx.fps)
    ctx.report_figure(distributions_figure(units), "distributions",
                      "SNR and size distributions of the exported units")


STEP = ExportStep()
