"""Benchmark: load + denoise + background + motion correction of 600x600 8-bit video.

Target: >= 60 frames/s on 2 cores, peak memory <= 2 GB, flat with length (3,000 and
30,000 frames). Runs the real pipeline steps load -> preprocess -> motion -> crop (the
load step decodes, denoises, removes the background and registers each chunk in one
pass; the crop step applies the correction and writes the corrected video ``Y``) on a
local dask cluster (one step per call, reusing the earlier ones, so the cluster start-up is not
counted), and samples the resident memory of this process and all its children (the dask
workers) every 0.2 s; frames/s = frames / the steps' own seconds.

The input is a simulated 1,000-frame recording (``scopeline.miniscope.simulate``),
repeated by hard links as 0.avi, 1.avi, ... to reach the requested length.

    python benchmarks/miniscope_preprocess.py --frames 3000 30000

``--workers`` as in ``scopeline miniscope run``: default one in-process worker with a
thread per core (what ``--workers 2`` meant on 2 cores before issue 12); N = N worker
processes; 0 = in-process without a cluster.
"""

from __future__ import annotations

import argparse
import os
import shutil
import threading
import time
from pathlib import Path

import psutil

from scopeline.miniscope.api import run_pipeline
from scopeline.miniscope.params import MiniscopeParams
from scopeline.miniscope.simulate import SimulationParams, simulate_recording

STEPS = ("load", "preprocess", "motion", "crop")


class PeakMemory:
    """Peak summed RSS of this process and its descendants, sampled in a thread."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me] + me.children(recursive=True):
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def make_source(folder: Path, size: int) -> Path:
    source = folder / f"source_{size}" / "0.avi"
    if not source.exists():
        simulate_recording(source.parent, SimulationParams(height=size, width=size, n_frames=1000,
                                                           n_neurons=size // 2, frames_per_file=1000, seed=1))
    return source


def make_input(folder: Path, source: Path, frames: int) -> tuple[Path, float | None]:
    """Folder with ceil(frames/1000) links to the source; fraction to use exactly ``frames``."""
    n_files = -(-frames // 1000)
    target = folder / f"input_{frames}"
    if not target.exists():
        target.mkdir(parents=True)
        for i in range(n_files):
            os.link(source, target / f"{i}.avi")
    fraction = frames / (n_files * 1000)
    return target, (None if fraction == 1 else fraction)


def run(folder: Path, frames: int, size: int, workers: int | None, memory_limit: str | None,
        compress: bool = True) -> dict:
    """Run the four steps one after the other (each call reuses the earlier ones), so
    each step's peak memory is measured on its own."""
    source = make_source(folder, size)
    input_dir, fraction = make_input(folder, source, frames)
    out = folder / f"out_{frames}"
    shutil.rmtree(out, ignore_errors=True)
    params = MiniscopeParams()
    params.config.compress_store = compress
    seconds, peaks = {}, {}
    for step in STEPS:
        with PeakMemory() as memory:
            result = run_pipeline(input_dir, out, params, to_step=step, fraction=fraction, workers=workers,
                                  memory_limit=memory_limit)
        seconds[step] = {r.name: r.seconds for r in result.steps}[step]
        peaks[step] = memory.peak / 1e9
    processing = sum(seconds.values())
    disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    shutil.rmtree(out, ignore_errors=True)
    return {"frames": frames, "fps": frames / processing, "processing_s": processing,
            "peak_gb": max(peaks.values()), "disk_gb": disk / 1e9,
            **{f"{s}_s": seconds[s] for s in STEPS}, **{f"{s}_gb": peaks[s] for s in STEPS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[3000, 30000])
    parser.add_argument("--size", type=int, default=600)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--memory-limit", default=None)
    parser.add_argument("--no-compress", action="store_true", help="config.compress_store = False")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/scopeline-bench-miniscope"))
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    workers = "one in-process worker, a thread per core" if args.workers is None else f"--workers {args.workers}"
    print(f"miniscope preprocess benchmark: {args.size}x{args.size} uint8, {workers}, "
          f"{psutil.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}")
    header = ("frames   fps  processing_s  peak_GB  disk_GB | seconds: load preprocess motion crop "
              "| peak GB: load preprocess motion crop")
    print(header)
    for frames in args.frames:
        r = run(args.folder, frames, args.size, args.workers, args.memory_limit, not args.no_compress)
        times = " ".join(f"{r[f'{s}_s']:6.1f}" for s in STEPS)
        memory = " ".join(f"{r[f'{s}_gb']:5.2f}" for s in STEPS)
        print(f"{r['frames']:6d} {r['fps']:5.1f} {r['processing_s']:13.1f} {r['peak_gb']:8.2f} {r['disk_gb']:8.2f} | "
              f"{times} | {memory}", flush=True)
    print(f"target: >= 60 fps, peak <= 2 GB, flat with length; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
