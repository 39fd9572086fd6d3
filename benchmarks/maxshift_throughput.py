"""Throughput of ``scopeline maxshift`` on RELION per-movie motion STAR files.

Target: at least 1,000 motion STAR files per second on 2 cores. Generates N files in a
temporary folder (global shifts only, like RELION 5's, and "full" ones that also carry the
local motion model, hot pixels and local shifts, like RELION 3.1's), then times

1. parsing + measuring each file in one process (the dedicated parser),
2. the whole ``run_maxshift`` in this process (journal, CSV, STAR sets; plots excluded),
3. the whole ``run_maxshift`` on a local Dask cluster of 2 workers.

Usage: python benchmarks/maxshift_throughput.py [--n 5000] [--frames 40]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from scopeline.cryoem import maxshift_run
from scopeline.cryoem.maxshift import MaxShiftParams, measure_trajectory, run_maxshift
from scopeline.io.motion import Trajectory, format_relion_motion_star, read_relion_motion_star

LOCAL_BLOCKS = "\n".join(
    ["# version 30001", "", "data_local_motion_model", "", "loop_",
     "_rlnMotionModelCoeffsIdx #1", "_rlnMotionModelCoeff #2"]
    + [f"{i:12d} {0.01 * (i % 7) - 0.03:12.6f}" for i in range(36)]
    + ["", "# version 30001", "", "data_hot_pixels", "", "loop_", "_rlnCoordinateX #1", "_rlnCoordinateY #2"]
    + [f"{(37 * i) % 3710:12.6f} {(91 * i) % 3838:12.6f}" for i in range(80)]
    + ["", "# version 30001", "", "data_local_shift", "", "loop_", "_rlnMicrographFrameNumber #1",
       "_rlnCoordinateX #2", "_rlnCoordinateY #3", "_rlnMicrographShiftX #4", "_rlnMicrographShiftY #5"]
    + [f"{1 + i % 24:12d} {371.0 * (i // 24 % 5):12.6f} {383.0 * (i // 120):12.6f} 0.100000 -0.200000"
       for i in range(600)]
)


def generate(folder: Path, n: int, frames: int, full: bool, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        shifts = np.cumsum(rng.normal(0, 0.6, (frames, 2)), axis=0)
        shifts -= shifts[0]
        traj = Trajectory(movie=f"Movies/movie_{k:06d}.tiff", shifts_px=shifts, pixel_size=0.885,
                          dose_per_frame=1.277)
        text = format_relion_motion_star(traj) + (LOCAL_BLOCKS if full else "")
        path = folder / f"movie_{k:06d}.star"
        path.write_text(text)
        paths.append(path)
    return paths


def time_parse(paths: list[Path]) -> float:
    start = time.perf_counter()
    for p in paths:
        measure_trajectory(read_relion_motion_star(p))
    return len(paths) / (time.perf_counter() - start)


def time_run(folder: Path, out: Path, workers: int | None) -> float:
    n = len(list(folder.glob("*.star")))
    start = time.perf_counter()
    with mock.patch("scopeline.cryoem.maxshift_plots.write_plots_and_report"):
        run_maxshift([str(folder / "*.star")], out, MaxShiftParams(), workers=workers)
    return n / (time.perf_counter() - start)


def time_cluster_start(workers: int = 2) -> float:
    from scopeline.parallel import dask_client

    start = time.perf_counter()
    with dask_client(workers=workers):
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}, files: {args.n}, frames: {args.frames}")
    print(f"starting + stopping a 2-worker local Dask cluster: {time_cluster_start():.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for kind, full in (("global shifts only", False), ("full (local model, hot pixels, local shifts)", True)):
            folder = tmp / ("full" if full else "global")
            paths = generate(folder, args.n, args.frames, full)
            size = sum(p.stat().st_size for p in paths[:100]) / 100 / 1024
            print(f"\n{kind}: {size:.1f} KiB per file")
            print(f"  parse + measure, 1 process : {time_parse(paths):8.0f} files/s")
            print(f"  run_maxshift, in process   : {time_run(folder, tmp / ('out1' + str(full)), None):8.0f} files/s")
            print(f"  run_maxshift, 2 Dask workers: {time_run(folder, tmp / ('out2' + str(full)), 2):8.0f} files/s"
                  " (includes starting the cluster)")
        start = time.perf_counter()
        with mock.patch.object(maxshift_run, "PLOT_INTERVAL_S", 1e9):
            run_maxshift([str(tmp / "global" / "*.star")], tmp / "out_plots", MaxShiftParams(max_movie_shift=40))
        print(f"\nwhole run with plots and report ({args.n} files, global): {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
