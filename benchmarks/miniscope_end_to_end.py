"""End-to-end speed and memory of `scopeline miniscope run` on a simulated recording.

Target (issue 11): a 600x600, 10 Hz recording processed on 2 cores at <= 0.3 minutes per minute of
recording, with peak memory <= 4 GB and flat between 6,000 and 24,000 frames.
For each length the script simulates the recording (not timed), runs the whole pipeline
on a local Dask cluster, and prints the wall time per step, minutes of processing per
minute of recording, and the peak resident memory of the process and its Dask workers
(sampled every 0.2 s).

    .venv/bin/python benchmarks/miniscope_end_to_end.py [--frames 6000 24000] [--size 600]
        [--neurons 300] [--workers N] [--workdir DIR] [--from-step noise]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import psutil

from scopeline.miniscope.api import run_pipeline
from scopeline.miniscope.simulate import SimulationParams, simulate_recording


class PeakMemory:
    """Peak summed RSS of this process and all its descendants, sampled in a thread."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak = 0
        self.samples: list[tuple[float, int]] = []  # (perf_counter time, bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self.samples.append((time.perf_counter(), total))
            time.sleep(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its living descendants (workers)."""
    total = 0.0
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[6000, 24000])
    parser.add_argument("--size", type=int, default=600)
    parser.add_argument("--neurons", type=int, default=300)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=None,
                        help="as `scopeline miniscope run --workers` (default: one in-process worker, a thread per core)")
    parser.add_argument("--scheduler", default=None, help="default: a local cluster (see --workers)")
    parser.add_argument("--workdir", type=Path, default=None, help="reuses recordings already simulated there")
    parser.add_argument("--from-step", default="config", help="re-run from this step (earlier ones reused)")
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="scopeline_e2e_"))
    print(f"cores: {psutil.cpu_count()}, load average at start: {psutil.getloadavg()}")
    summary = []
    for n_frames in args.frames:
        case = root / f"{args.size}px_{n_frames}"
        video = case / "video"
        if not (video / "truth.npz").exists():
            start = time.perf_counter()
            simulate_recording(video, SimulationParams(height=args.size, width=args.size, n_frames=n_frames,
                                                       n_neurons=args.neurons, fps=args.fps, frames_per_file=1000))
            print(f"simulated {n_frames} frames in {time.perf_counter() - start:.0f} s (not timed)")
        with PeakMemory() as memory:
            start, cpu, load = time.perf_counter(), _cpu_seconds(), psutil.getloadavg()[0]
            result = run_pipeline(video, case / "out", scheduler=args.scheduler, workers=args.workers,
                                  fps=args.fps, from_step=args.from_step)
            seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        minutes_recorded = n_frames / args.fps / 60
        ratio = seconds / 60 / minutes_recorded
        print(f"\n{args.size}x{args.size}, {n_frames} frames ({minutes_recorded:.1f} min at {args.fps:g} Hz)")
        print(f"  {'step':<14} {'seconds':>8} {'share':>7} {'peak GiB':>9}")
        end = start + seconds
        bounds = []
        for step in reversed(result.steps):  # steps ran back to back; the overhead precedes them
            bounds.append((step, end - step.seconds, end))
            end -= step.seconds
        for step, t0, t1 in reversed(bounds):
            peak = max((b for t, b in memory.samples if t0 <= t <= t1), default=0)
            print(f"  {step.name:<14} {step.seconds:8.1f} {100 * step.seconds / seconds:6.1f}% {peak / 2**30:9.2f}")
        print(f"  total {seconds:.0f} s = {ratio:.3f} min per min of recording; peak memory {memory.peak / 2**30:.2f} GiB")
        print(f"  CPU {cpu:.0f} s (this process and its workers; / {psutil.cpu_count()} cores = "
              f"{cpu / psutil.cpu_count() / 60 / minutes_recorded:.3f} min per min if they had the cores to "
              f"themselves); load average {load:.1f} at the start, {psutil.getloadavg()[0]:.1f} at the end")
        summary.append((n_frames, ratio, memory.peak / 2**30))
    print("\nframes  min/min  peak GiB   (targets: <= 0.3 min/min, <= 4 GiB, flat in length)")
    for n_frames, ratio, peak in summary:
        print(f"{n_frames:>6} {ratio:>8.3f} {peak:>9.2f}")
    print(f"load average at end: {psutil.getloadavg()}; work folder: {root}")


if __name__ == "__main__":
    main()
