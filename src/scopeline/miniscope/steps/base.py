"""The protocol every miniscope pipeline step follows.

A step is a module ``scopeline.miniscope.steps.<name>`` that defines ``STEP``, an instance
of a :class:`Step` subclass::

    class NoiseStep(Step):
        name = "noise"                     # also the field name in MiniscopeParams
        params_model = NoiseParams         # pydantic model, documented defaults
        version = "1"                      # bump to invalidate stored results

        def run(self, ctx: StepContext, params: NoiseParams) -> dict | None:
            Y = ctx.read("Y")              # dask array backed by zarr, lazily read
            sn = noise_map(Y, ...)         # pure function on arrays
            ctx.write("sn", sn)            # numpy or dask -> zarr (OUT/store.zarr/noise/sn)
            ctx.write_json("noise_summary", {...})
            ctx.report_figure(fig, "noise_map", "Per-pixel noise")
            return {"n_pixels": ...}       # small summary, kept in the completion marker

    STEP = NoiseStep()

The pipeline (``scopeline.miniscope.pipeline``) runs the steps in order. For each it
computes a key = hash(step name, version, parameters, extra fingerprint, upstream key).
A step whose completion marker holds the same key is reused; otherwise its zarr group
and small results are cleared, ``run`` is called, and the marker is written last
(atomically), so a run killed in the middle of a step re-runs that step from scratch.
Because the key chains through upstream keys, changing any parameter re-runs that step
and everything after it.

Storage under the output folder ``OUT``::

    OUT/store.zarr/<step>/<array>        arrays written with ctx.write
    OUT/steps/<step>/<name>.json         small results written with ctx.write_json
    OUT/steps/<step>/complete.json       completion marker (key, outputs, summary, time)
    OUT/report/<step>_<figure>.png       figures from ctx.report_figure
    OUT/report/<step>.html, OUT/report.html

``ctx.read(name)`` / ``ctx.read_json(name)`` find a name among the outputs of the current
step and of the completed upstream steps, nearest first; ``"step/name"`` names one step's
output explicitly.

Arrays produced by steps 1-4 (what steps 5-8 consume)
------------------------------------------------------
``Y``            (frames, h, w) chunked by frames (crop step): background-removed,
                 denoised, motion-corrected, cropped video. Pixels outside the crop mask are 0.
                 Stored as float16 (half the disk and read time; relative rounding 2.4e-4,
                 far below the 8-bit quantisation of the input), read as float32.
``frame_index``  (frames,) int64 (motion step): original frame number (0-based, over all
                 input files in natural order; the frames of a skipped file keep their
                 places, see ``source_frames`` of the load step) of every frame of ``Y`` (the
                 first of its group with temporal downsampling) -- frames removed by
                 line-split detection or motion QC are absent.
``mean_frame``   (h, w) float32      mean of ``Y`` over frames.
``max_frame``    (h, w) float32      max of ``Y`` over frames.
``crop_mask``    (h, w) bool         True inside the imaging field (cropped coordinates).
``shifts``       (frames, 2) float32 rigid (dy, dx) shift applied to each frame of ``Y``.
``b_init``       (h, w) float32      background footprint (NNDSVD component 0, init step).
``f_init``       (frames,) float32   background trace (init step).
``A_init``       (units, h, w) float32 initial footprints, normalised (params.detect.normalize).
``C_init``       (units, frames) float32 initial traces (same frame axis as ``Y``).
``unit_ids``     (units,) int64      ids of the rows of ``A_init`` / ``C_init``.
Also: ``pre`` (every loaded frame, denoised and background-removed) / ``source_frames`` / ``raw_mean`` /
``edge_means`` / ``kept_frames`` / ``chunk_shifts`` / ``chunk_peaks`` / ``chunk_templates``
(load), ``shifts_all`` / ``peaks_all`` / ``keep`` / ``groups`` (motion), ``nndsvd_spatial`` / ``nndsvd_temporal`` /
``variance_explained`` (init).
JSON: ``project`` (config: ids, fps), ``videos`` and ``removed_frames`` (load),
``removed_frames`` (motion), ``crop`` ({"y0","y1","x0","x1","shape","kind","center","radius"}
in frame pixels) and ``validation`` (crop), ``units`` (per-unit centroid, size),
``watershed_search`` and ``dropped_units`` (detect).
The frame rate is ``ctx.fps``; run settings ``ctx.fraction``, ``ctx.input_dir``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from ...errors import InputError
from ...io.atomic import write_json


def codec():
    """Compressor of the store: LZ4 level 1 without shuffle (fast). On the float16 video
    ``Y`` it compresses 1.9x and reads 1.3x faster than with byte shuffle (1.7x)."""
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=1, shuffle="noshuffle")


def open_for_writing(store: str, path: str):
    """The zarr array ``path`` of ``store``, opened to write whole chunks without zarr's
    check for chunks equal to the fill value (a full comparison of every chunk, slower
    than compressing it; video chunks are never empty)."""
    import zarr

    return zarr.open_array(store, path=path, mode="r+").with_config({"write_empty_chunks": True})


class Step:
    """Base class of a pipeline step; subclasses set the class attributes and ``run``."""

    name: ClassVar[str]
    params_model: ClassVar[type[BaseModel]]
    version: ClassVar[str] = "1"
    title: ClassVar[str] = ""

    def fingerprint(self, ctx: "StepContext", params: BaseModel) -> dict:
        """Extra inputs (besides parameters and upstream results) that the key depends on."""
        return {}

    def run(self, ctx: "StepContext", params: BaseModel) -> dict | None:  # pragma: no cover
        raise NotImplementedError

    def key(self, ctx: "StepContext", params: BaseModel, upstream_key: str) -> str:
        payload = {
            "step": self.name,
            "version": self.version,
            "params": params.model_dump(mode="json"),
            "fingerprint": self.fingerprint(ctx, params),
            "upstream": upstream_key,
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class StepContext:
    """What a step sees: storage, dask client, folders, logger and run settings."""

    out_dir: Path
    step: str
    upstream: list[str]  # names of the steps before this one, nearest first
    client: Any = None  # distributed.Client or None (local dask scheduler)
    fps: float = 30.0
    fraction: float | None = None
    input_dir: Path | None = None
    on_bad_video: str = "stop"
    all_params: Any = None  # the whole MiniscopeParams (for steps fusing several steps' work)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("scopeline.miniscope"))
    figures: list[tuple[str, str]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)

    # -- folders -------------------------------------------------------------------
    @property
    def store_path(self) -> Path:
        return self.out_dir / "store.zarr"

    @property
    def step_dir(self) -> Path:
        return self.out_dir / "steps" / self.step

    @property
    def report_dir(self) -> Path:
        return self.out_dir / "report"

    # -- arrays --------------------------------------------------------------------
    def compressors(self):
        """The store's compressor (``config.compress_store``), or None."""
        compress = self.all_params is None or self.all_params.config.compress_store
        return codec() if compress else None

    def _group(self):
        import zarr

        return zarr.open_group(str(self.store_path), mode="a")

    def write(self, name: str, array, chunks: tuple | None = None) -> None:
        """Store ``array`` (numpy or dask) as ``OUT/store.zarr/<step>/<name>`` (LZ4-compressed)."""
        import dask.array as da

        component = f"{self.step}/{name}"
        if isinstance(array, da.Array):
            if chunks is not None:
                array = array.rechunk(chunks)
            elif any(len(set(c[:-1])) > 1 or (len(c) > 1 and c[-1] > c[0]) for c in array.chunks):
                array = array.rechunk(tuple(max(c) for c in array.chunks))
            da.to_zarr(array, str(self.store_path), component=component, overwrite=True, compressors=self.compressors())
        else:
            array = np.asarray(array)
            group = self._group()
            kwargs = {"chunks": chunks} if chunks is not None else {}
            group.create_array(component, shape=array.shape, dtype=array.dtype, overwrite=True,
                               compressors=self.compressors(), **kwargs)
            if array.size:
                open_for_writing(str(self.store_path), component)[...] = array
        if name not in self.written:
            self.written.append(name)

    def create(self, name: str, shape: tuple, dtype, chunks: tuple) -> str:
        """Create an empty array ``<step>/<name>`` for tasks that write their own chunks
        (each task one whole chunk, so writers never share a chunk); returns its path."""
        self._group().create_array(f"{self.step}/{name}", shape=shape, dtype=dtype, chunks=chunks,
                                   overwrite=True, compressors=self.compressors())
        if name not in self.written:
            self.written.append(name)
        return f"{self.step}/{name}"

    def _owner(self, name: str, kind: str) -> str:
        if "/" in name:
            return name.split("/", 1)[0]
        here = name in self.written if kind == "array" else (self.step_dir / f"{name}.json").exists()
        if here:
            return self.step
        for step in self.upstream:
            marker = self.out_dir / "steps" / step / "complete.json"
            if marker.exists():
                outputs = json.loads(marker.read_text())["outputs"]
                if name in outputs.get(kind, []):
                    return step
        raise InputError(self.out_dir, f"no stored {kind} {name!r} from steps before {self.step!r}",
                         "run the earlier steps first (scopeline miniscope run without --from)")

    def array_path(self, name: str) -> str:
        """Component path (``<step>/<array>``) in the store of an array written by this or an
        upstream step, for readers that open it themselves (e.g. keeping float16)."""
        return f"{self._owner(name, 'array')}/{name.split('/')[-1]}"

    def read(self, name: str):
        """Lazy dask array of an array written by this or an upstream step (float16
        storage, used for the corrected video, is read as float32)."""
        import dask.array as da

        step = self._owner(name, "array")
        array = da.from_zarr(str(self.store_path), component=f"{step}/{name.split('/')[-1]}")
        if array.dtype == np.float16:
            from ..float16 import from_float16

            array = array.map_blocks(from_float16, dtype=np.float32)
        return array

    def has(self, name: str) -> bool:
        try:
            self._owner(name, "array")
            return True
        except InputError:
            return False

    def write_json(self, name: str, obj: Any) -> None:
        write_json(self.step_dir / f"{name}.json", obj)

    def read_json(self, name: str) -> Any:
        step = self._owner(name, "json")
        return json.loads((self.out_dir / "steps" / step / f"{name.split('/')[-1]}.json").read_text())

    # -- report --------------------------------------------------------------------
    def report_figure(self, fig, name: str, caption: str = "") -> Path:
        """Save a figure (:mod:`scopeline.present.figures`) as ``OUT/report/<step>_<name>.png``."""
        from ...present.figures import save_figure

        path = save_figure(fig, self.report_dir / f"{self.step}_{name}.png", dpi=100, bbox_inches="tight")
        self.figures.append((path.name, caption))
        return path

    def clear(self) -> None:
        """Remove this step's stored arrays and small results (before re-running it)."""
        group = self._group()
        if self.step in group:
            del group[self.step]
        if self.step_dir.exists():
            shutil.rmtree(self.step_dir)
        for png in self.report_dir.glob(f"{self.step}_*.png"):
            png.unlink()
        self.figures.clear()
        self.written.clear()

    def outputs(self) -> dict:
        jsons = sorted(p.stem for p in self.step_dir.glob("*.json") if p.name != "complete.json")
        return {"array": list(self.written), "json": jsons, "figures": self.figures}
