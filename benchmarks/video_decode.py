"""Benchmark: chunked decoding of a 600x600 8-bit FFV1 AVI (what the miniscope load pass
reads), in ms per frame, single thread. The file is the simulated recording of
``miniscope_preprocess.py`` (made if missing).

    python benchmarks/video_decode.py [--chunk 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

try:
    from scopeline.io.video import probe_video, read_frames
except ImportError:  # before issue 12 the reader lived in the miniscope package
    from scopeline.miniscope.io_video import probe_video, read_frames
from scopeline.miniscope.simulate import SimulationParams, simulate_recording


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/scopeline-bench-miniscope"))
    args = parser.parse_args()
    source = args.folder / "source_600" / "0.avi"
    if not source.exists():
        simulate_recording(source.parent, SimulationParams(height=600, width=600, n_frames=1000, n_neurons=300,
                                                           frames_per_file=1000, seed=1))
    n = probe_video(source).n_frames
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for start in range(0, n, args.chunk):
            read_frames(source, start, min(start + args.chunk, n))
        best = min(best, time.perf_counter() - t0)
    print(f"decode {n} frames 600x600 in chunks of {args.chunk}: {1e3 * best / n:.2f} ms/frame (best of "
          f"{args.repeat}); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
