"""Benchmark: broken-frame detection (wireless-link corruption) -- accuracy per kind and cost.

Accuracy: clean recordings of every scene of ``simulate_corruption.SCENES`` (the
``simulate`` recordings: motion with jumps, vignetting, dark margin, neuropil, 8-bit
noise; variants with strong motion, bright transients, a dim field) are corrupted with
``corrupt_frames`` (5 % of the frames, every kind) and judged with the default
parameters; prints recall and precision per kind and overall, and the frames flagged in
the clean recordings (must be 0). Precision of a kind counts the flagged frames of that
kind against those plus all falsely flagged clean frames.

Cost: ``frame_statistics`` (the part in the load pass) on 600x600 uint8 frames, in wall
and CPU time per frame, next to a plain ``numpy`` sum of the same frames for scale (the
machine's load shows in both); ``detect_broken_frames`` (the decision in the motion step)
per frame of a 600x600 recording.

    python benchmarks/miniscope_frame_qc.py --frames 3000 --size 256 --seeds 1 2
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from scopeline.miniscope.frame_qc import detect_broken_frames, frame_statistics
from scopeline.miniscope.simulate_corruption import KINDS, SCENES, corrupt_frames, render_scene


def accuracy(frames: int, size: int, seeds: list[int], fraction: float) -> None:
    flagged_clean, found, total, false = 0, {k: 0 for k in KINDS}, {k: 0 for k in KINDS}, 0
    clean_frames = 0
    for scene in SCENES:
        for seed in seeds:
            clean, _ = render_scene(scene, frames, size=size, seed=seed)
            flagged_clean += int(detect_broken_frames(frame_statistics(clean)).broken.sum())
            clean_frames += len(clean)
            bad, labels = corrupt_frames(clean, np.random.default_rng(1000 + seed), fraction)
            broken = detect_broken_frames(frame_statistics(bad)).broken
            false += int((broken & (labels == "")).sum())
            for kind in KINDS:
                mask = labels == kind
                total[kind] += int(mask.sum())
                found[kind] += int(broken[mask].sum())
    print(f"clean recordings: {flagged_clean} of {clean_frames} frames flagged "
          f"({len(SCENES)} scenes x {len(seeds)} seeds x {frames} frames, {size}x{size})")
    print(f"corrupted ({fraction:.0%} of the frames): falsely flagged clean frames: {false}")
    print(f"{'kind':12s} {'frames':>7s} {'recall':>7s} {'precision':>9s}")
    for kind in KINDS:
        print(f"{kind:12s} {total[kind]:7d} {found[kind] / max(total[kind], 1):7.3f} "
              f"{found[kind] / max(found[kind] + false, 1):9.3f}")
    n, f = sum(total.values()), sum(found.values())
    print(f"{'all':12s} {n:7d} {f / max(n, 1):7.3f} {f / max(f + false, 1):9.3f}")


def cost(size: int = 600, n: int = 300, repeats: int = 3) -> None:
    frames = np.random.default_rng(0).integers(0, 256, size=(n, size, size), dtype=np.uint8)
    frame_statistics(frames[:2])  # compile
    wall, cpu, base = [], [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        stats = frame_statistics(frames)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        c0 = time.process_time()
        frames.sum(axis=(1, 2))
        base.append(time.process_time() - c0)
    print(f"frame_statistics, {size}x{size} uint8: {1e3 * min(wall) / n:.3f} ms wall, {1e3 * min(cpu) / n:.3f} ms CPU "
          f"per frame (numpy sum of the same frames: {1e3 * min(base) / n:.3f} ms CPU)")
    long = np.tile(stats, (10, 1, 1, 1)) * np.float32(1.0)  # 3,000 frames of statistics
    c0 = time.process_time()
    detect_broken_frames(long)
    print(f"detect_broken_frames: {1e3 * (time.process_time() - c0) / len(long):.3f} ms CPU per frame "
          f"({len(long)} frames of {size}x{size})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--fraction", type=float, default=0.05)
    args = parser.parse_args()
    print(f"miniscope broken-frame benchmark; load average {os.getloadavg()[0]:.1f}")
    cost()
    accuracy(args.frames, args.size, args.seeds, args.fraction)


if __name__ == "__main__":
    main()
