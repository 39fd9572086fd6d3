"""Dose measurement throughput on 4096 x 4096 counting movies (MRC and LZW TIFF).

Prints:
  1. time per movie for 6- and 60-frame MRC (and TIFF) movies: target ratio 60/6 <= 1.2;
  2. time per movie against the bare time to read the same 3 sampled frames with mrcfile /
     tifffile: target ratio <= 1.3;
  3. movies per second in one process and on 2 dask workers.

The movies are written once into a temporary folder (a few GB) and re-read many times, so
the reads come from the OS page cache: these figures measure the software, not the disk.

    .venv/bin/python benchmarks/dose_throughput.py [--size 4096] [--jobs 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import tifffile

from scopeline.cryoem.dose import measure_movie_dose, sampled_frame_indices
from scopeline.cryoem.simulate import simulate_counting_movie, write_mrc_movie, write_tiff_movie
from scopeline.parallel import dask_client

PIXEL_SIZE = 0.83
DOSE_PER_PIXEL = 0.8


def make_movies(folder: Path, size: int, frame_counts: tuple[int, ...]) -> dict[str, Path]:
    """MRC and LZW TIFF movies of each frame count; frames cycle through 3 Poisson frames
    (writing 60 distinct 4K frames would take minutes and change nothing being measured)."""
    rng = np.random.default_rng(0)
    distinct = [simulate_counting_movie((size, size), 1, DOSE_PER_PIXEL, rng)[0] for _ in range(3)]
    movies = {}
    for n in frame_counts:
        frames = [distinct[i % 3] for i in range(n)]
        movies[f"mrc{n}"] = write_mrc_movie(folder / f"movie_{n}.mrc", frames, PIXEL_SIZE)
        movies[f"tif{n}"] = write_tiff_movie(folder / f"movie_{n}.tif", frames, PIXEL_SIZE, "lzw")
    return movies


def bare_read(path: Path) -> None:
    """Open with mrcfile / tifffile and read the 3 sampled frames into memory; nothing else."""
    if path.suffix == ".mrc":
        with mrcfile.mmap(str(path), mode="r", permissive=True) as mrc:
            for i in sampled_frame_indices(mrc.data.shape[0]):
                np.array(mrc.data[i])
    else:
        with tifffile.TiffFile(str(path)) as tif:
            for i in sampled_frame_indices(len(tif.pages)):
                tif.pages[i].asarray()


def median_time(func, *args, repeats: int) -> float:
    func(*args)  # warm: page cache, numba cache, imports
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def throughput_single(paths: list[Path]) -> float:
    measure_movie_dose(paths[0])
    t0 = time.perf_counter()
    for p in paths:
        measure_movie_dose(p)
    return len(paths) / (time.perf_counter() - t0)


def throughput_dask(paths: list[Path], workers: int) -> float:
    warnings.filterwarnings("ignore", message="Port .* is already in use")  # other clusters' dashboards
    with dask_client(workers=workers, threads_per_worker=1) as client:
        client.gather(client.map(measure_movie_dose, paths[:workers], pure=False))  # warm workers
        t0 = time.perf_counter()
        client.gather(client.map(measure_movie_dose, paths, pure=False))
        return len(paths) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--small", type=int, default=6, help="frames of the short movie")
    parser.add_argument("--large", type=int, default=60, help="frames of the long movie")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=16, help="movies per throughput run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="where the movies go (default: a temp dir)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="scopeline-dose-bench-", dir=args.workdir))
    try:
        print(f"# {args.size}x{args.size} uint8 counting movies in {folder}; cpus={os.cpu_count()}, "
              f"load average {os.getloadavg()[0]:.2f}; reads are from the page cache")
        t0 = time.perf_counter()
        movies = make_movies(folder, args.size, (args.small, args.large))
        print(f"# wrote {len(movies)} movies in {time.perf_counter() - t0:.1f} s: "
              + ", ".join(f"{k} {v.stat().st_size / 2**20:.0f} MiB" for k, v in movies.items()))

        ok = True
        for fmt, reader in (("mrc", "mrcfile"), ("tif", "tifffile")):
            small, large = movies[f"{fmt}{args.small}"], movies[f"{fmt}{args.large}"]
            t_small = median_time(measure_movie_dose, small, repeats=args.repeats)
            t_large = median_time(measure_movie_dose, large, repeats=args.repeats)
            b_large = median_time(bare_read, large, repeats=args.repeats)
            ratio_frames = t_large / t_small
            ratio_bare = t_large / b_large
            ok &= ratio_frames <= 1.2 and ratio_bare <= 1.3
            print(f"{fmt.upper():4s} per movie: {args.small} frames {t_small * 1e3:7.1f} ms, "
                  f"{args.large} frames {t_large * 1e3:7.1f} ms -> ratio {ratio_frames:.2f} (target <= 1.2)")
            print(f"{fmt.upper():4s} bare read of the 3 sampled frames with {reader}: {b_large * 1e3:7.1f} ms "
                  f"-> dose/bare {ratio_bare:.2f} (target <= 1.3)")

        for fmt in ("mrc", "tif"):
            paths = [movies[f"{fmt}{args.large}"], movies[f"{fmt}{args.small}"]] * (args.jobs // 2)
            single = throughput_single(paths)
            parallel = throughput_dask(paths, args.workers)
            print(f"{fmt.upper():4s} throughput: {single:6.1f} movies/s in 1 process, "
                  f"{parallel:6.1f} movies/s on {args.workers} dask workers ({len(paths)} movies)")
        print(f"# targets {'met' if ok else 'NOT met'}; load average now {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
