"""A generated miniscope *result* (what the export step leaves in a run folder), without
running the pipeline: for the unit explorer's tests and benchmark at sizes no test could
afford to process (1,000 units x 50,000 frames).

Written through the pipeline's own store writer (:class:`~.steps.base.StepContext`), so the
arrays have the chunk layout and codec of a real run: ``store.zarr/export/{A, C, S, YrA,
unit_ids, snr, size_px, correlation, g, decay_time, b, f}``, ``crop/mean_frame``,
``motion/frame_index``, ``steps/export/complete.json``, ``params.json``, ``export/units.json``
and the NumPy export files.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..io.atomic import write_json


def write_synthetic_result(run_dir: str | Path, n_units: int = 20, n_frames: int = 1000,
                           shape: tuple[int, int] = (64, 64), fps: float = 30.0, seed: int = 0,
                           radius: float = 3.0, export_files: bool = True) -> Path:
    """Write a finished-looking miniscope run into ``run_dir``.

    Footprints are round blobs (``radius`` px, max 1) on a jittered grid, so they barely
    overlap; traces are float32 calcium transients (exponential decays from sparse spikes)
    with noise; ids are ``10, 11, ...`` (not row numbers). Returns ``run_dir``.
    """
    from .params import MiniscopeParams, save_params
    from .steps.base import StepContext

    run_dir = Path(run_dir)
    rng = np.random.default_rng(seed)
    h, w = shape
    side = int(np.ceil(np.sqrt(n_units)))
    gy = (np.arange(n_units) // side + 0.5) * h / side
    gx = (np.arange(n_units) % side + 0.5) * w / side
    centers = np.column_stack([gy, gx]) + rng.uniform(-0.15, 0.15, (n_units, 2)) * np.array([h, w]) / side
    r = int(np.ceil(2 * radius))
    ctx = StepContext(out_dir=run_dir, step="export", upstream=[])
    A = np.zeros((n_units, h, w), np.float32)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    blob = np.exp(-(yy**2 + xx**2) / (2 * (radius / 1.5) ** 2)).astype(np.float32)
    blob[blob < 0.05] = 0
    for i, (cy, cx) in enumerate(np.round(centers).astype(int)):
        y0, x0 = cy - r, cx - r
        ys, xs = slice(max(y0, 0), min(y0 + 2 * r + 1, h)), slice(max(x0, 0), min(x0 + 2 * r + 1, w))
        A[i, ys, xs] = blob[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    decay = np.exp(-1.0 / (0.5 * fps))
    C = np.empty((n_units, n_frames), np.float32)
    S = np.zeros((n_units, n_frames), np.float32)
    for start in range(0, n_units, 100):  # a block of units at a time: memory stays small
        stop = min(start + 100, n_units)
        spikes = (rng.random((stop - start, n_frames)) < 0.5 / fps) * rng.uniform(0.5, 2.0, (stop - start, n_frames))
        S[start:stop] = spikes
        from scipy.signal import lfilter

        C[start:stop] = lfilter([1.0], [1.0, -decay], spikes, axis=1) + rng.normal(0, 0.02, spikes.shape)
    ids = np.arange(10, 10 + n_units, dtype=np.int64)
    ctx.write("A", A)
    for name, array in (("C", C), ("S", S), ("YrA", C)):
        ctx.write(name, array)
    ctx.write("unit_ids", ids)
    stats = {"snr": rng.uniform(3, 20, n_units).astype(np.float32),
             "size_px": (A > 0.1).sum(axis=(1, 2)).astype(np.int64),
             "correlation": rng.uniform(0.6, 1.0, n_units).astype(np.float32),
             "g": np.full((n_units, 1), decay), "decay_time": np.full(n_units, 0.5, np.float32),
             "baseline": np.zeros(n_units, np.float32), "trace_noise": np.full(n_units, 0.02, np.float32)}
    for name, array in stats.items():
        ctx.write(name, array)
    ctx.write("b", np.ones((1, h, w), np.float32))
    ctx.write("f", np.ones((1, n_frames), np.float32))
    mean = (0.3 + A.max(axis=0) * 0.5 + rng.normal(0, 0.02, (h, w))).astype(np.float32)
    StepContext(out_dir=run_dir, step="crop", upstream=[]).write("mean_frame", mean)
    StepContext(out_dir=run_dir, step="motion", upstream=[]).write("frame_index", np.arange(n_frames, dtype=np.int64))
    params = MiniscopeParams()
    params.config.fps = fps
    params.export.formats = ["zarr"]
    save_params(params, run_dir / "params.json")
    write_json(run_dir / "steps" / "export" / "complete.json", {
        "key": f"synthetic-{seed}", "step": "export", "version": "synthetic", "seconds": 0.0,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "outputs": {"array": list(ctx.written), "json": [],
                                                                    "figures": []},
        "summary": {"units_exported": n_units}})
    if export_files:
        from ..io.exports import write_exports

        metadata = {"created": "2026-01-01T00:00:00+00:00", "fps": fps, "n_frames": n_frames,
                    "shape": [h, w], "n_units": n_units, "frame_index": list(range(n_frames)),
                    "timestamps_s": (np.arange(n_frames) / fps).round(6).tolist()}
        units = {"A": A, "C": C, "S": S, "YrA": C, "unit_ids": ids, **stats}
        write_exports(run_dir / "export", units, {"b": np.ones((1, h, w), np.float32),
                                                  "f": np.ones((1, n_frames), np.float32)}, metadata, [])
    return run_dir


__all__ = ["write_synthetic_result"]
