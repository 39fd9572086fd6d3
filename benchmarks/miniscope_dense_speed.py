"""Cost of `scopeline miniscope` on a crowded 256 x 256 field, against an older version.

Issue 11: a dense 256x256 field must cost at most 1.5x the time of the code before the
crowded-field work (commit 41d8052, checked out read-only somewhere; ``--before SRC``
points at its ``src`` folder). The script simulates one crowded field
(``simulate_dense.py``, default 150 cells, 2,000 frames at 20 Hz; not timed), then runs the
whole pipeline with default parameters once with each version, each in a fresh Python
process (``PYTHONPATH`` = that version's sources) on the same video, one after the other,
and prints for each: wall time, CPU time (user + system of the process, all its threads:
less sensitive than the wall time to other work on a shared machine), peak resident
memory, and the ratios new / before.

    .venv/bin/python benchmarks/miniscope_dense_speed.py --before /path/to/old/src
        [--cells 150] [--frames 2000] [--seed 0] [--scheduler threads] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
NEW_SRC = HERE.parent / "src"

CHILD = """
import json, resource, sys, time
from scopeline.miniscope.api import run_pipeline
import scopeline
video, out, scheduler, fps = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
start, cpu = time.perf_counter(), time.process_time()
run_pipeline(video, out, scheduler=None if scheduler == "default" else scheduler, fps=fps, from_step="config")
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu,
                  "peak_gib": usage.ru_maxrss / 2**20, "source": scopeline.__file__}))
"""


def run_version(src: Path, video: Path, out: Path, scheduler: str, fps: float) -> dict:
    """One whole run in a fresh process with ``src`` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(video), str(out), scheduler, str(fps)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"run with {src} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="src folder of the older version")
    parser.add_argument("--cells", type=int, default=150)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scheduler", default="threads", help="'default' = the CLI's default (local cluster)")
    parser.add_argument("--workdir", type=Path, default=None, help="reuses a video simulated there")
    args = parser.parse_args()
    sys.path.insert(0, str(NEW_SRC))
    from scopeline.miniscope.simulate_dense import DenseSimulationParams, simulate_dense_recording

    root = args.workdir or Path(tempfile.mkdtemp(prefix="scopeline_dense_speed_"))
    p = DenseSimulationParams(n_cells=args.cells, n_frames=args.frames, seed=args.seed)
    video = root / f"dense{args.cells}_{args.seed}_{args.frames}" / "video"
    if not (video / "truth.npz").exists():
        simulate_dense_recording(video, p)
    print(f"cores: {psutil.cpu_count()}, load average at start: {psutil.getloadavg()}")
    print(f"crowded field: {args.cells} cells, 256 x 256 px, {args.frames} frames at {p.fps:g} Hz; "
          f"scheduler {args.scheduler}")
    results = {}
    for name, src in (("before", args.before.resolve()), ("new", NEW_SRC)):
        results[name] = run_version(src, video, video.parent / f"out_{name}", args.scheduler, p.fps)
        r = results[name]
        print(f"{name:>7}: wall {r['wall_s']:7.1f} s  cpu {r['cpu_s']:7.1f} s  peak {r['peak_gib']:.2f} GiB  "
              f"({r['source']})", flush=True)
    new, old = results["new"], results["before"]
    print(f"  ratio new / before: wall {new['wall_s'] / old['wall_s']:.2f}, cpu {new['cpu_s'] / old['cpu_s']:.2f} "
          f"(target <= 1.5), peak memory {new['peak_gib'] / old['peak_gib']:.2f}")
    print(f"load average at end: {psutil.getloadavg()}; work folder: {root}")


if __name__ == "__main__":
    main()
