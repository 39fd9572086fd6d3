"""Accuracy of `scopeline miniscope` against simulator ground truth.

Simulates recordings with realistic settings (the simulator's defaults: strong fluctuating
background, neuropil, vignetting, drift with jumps, shot/read noise, overlapping neurons,
three activity levels) at two field sizes and several seeds, runs the whole pipeline and
prints, per recording: F1 of one-to-one footprint matching, median correlation of C with
the true calcium and of 5-frame-binned S with the true spikes, and the run time.
Targets: F1 >= 0.95, corr C >= 0.95, corr S >= 0.8.

    .venv/bin/python benchmarks/miniscope_accuracy.py [--frames 1500] [--seeds 0 1] [--sizes 200:40 300:90]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from scopeline.miniscope.api import run_pipeline
from scopeline.miniscope.cnmf.metrics import evaluate_run
from scopeline.miniscope.simulate import SimulationParams, simulate_recording


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--sizes", nargs="+", default=["200:40", "300:90"], help="SIZE:NEURONS")
    parser.add_argument("--scheduler", default="threads")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="scopeline_accuracy_"))
    rows = []
    print(f"{'size':>5} {'neurons':>7} {'seed':>4} {'found':>5} {'true':>4} {'F1':>6} {'corrC':>6} {'corrS':>6} {'run s':>6}")
    for spec in args.sizes:
        size, n_neurons = (int(v) for v in spec.split(":"))
        for seed in args.seeds:
            case = root / f"{size}_{seed}"
            params = SimulationParams(height=size, width=size, n_frames=args.frames, n_neurons=n_neurons,
                                      fps=args.fps, seed=seed)
            simulate_recording(case / "video", params)
            start = time.perf_counter()
            run_pipeline(case / "video", case / "out", scheduler=args.scheduler, fps=args.fps)
            seconds = time.perf_counter() - start
            r = evaluate_run(case / "video", case / "out")
            rows.append({"size": size, "seed": seed, **r, "seconds": seconds})
            print(f"{size:>5} {n_neurons:>7} {seed:>4} {r['n_found']:>5} {r['n_true']:>4} {r['f1']:>6.3f} "
                  f"{r['median_corr_C']:>6.3f} {r['median_corr_S']:>6.3f} {seconds:>6.1f}", flush=True)
    ok = all(r["f1"] >= 0.95 and r["median_corr_C"] >= 0.95 and r["median_corr_S"] >= 0.8 for r in rows)
    print(f"targets (F1 >= 0.95, corr C >= 0.95, corr S >= 0.8) met on all recordings: {ok}")
    print(f"work folder: {root}")


if __name__ == "__main__":
    main()
