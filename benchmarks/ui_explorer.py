"""The unit explorer of ``scopeline serve`` on a large result (issue 13): 1,000 units x
50,000 frames.

A result is generated without running the pipeline (``write_synthetic_result``: the run's
store written by the pipeline's own writer, so chunks and codec are a real run's; sparse
round footprints in a 320 x 320 processed frame, float32 C / S / YrA on disk). Then, through
FastAPI's TestClient (the whole app, middleware included, no network):

1. opening the explorer: the page and its first data requests (footprints PNG, label
   image, unit list, the first unit's trace) -- target < 2 s: (a) the first open ever of a
   result (the overview made from the stored footprints, then cached beside the run),
   (b) on a fresh app with the overview cached on disk (what a user meets: the server
   makes it when its own run job ends), (c) again on the same app. The store's files are in
   the OS page cache (written just before);
2. one unit's trace (C and S decimated to 1,000 columns), 30 random units -- target
   < 200 ms; and a zoomed window (10 s) at full detail;
3. the bytes each request sends.

    PYTHONPATH=src .venv/bin/python benchmarks/ui_explorer.py [--units 1000] [--frames 50000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _timed(client, url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    response = client.get(url)
    seconds = time.perf_counter() - t0
    assert response.status_code == 200, (url, response.status_code, response.text[:200])
    return seconds, len(response.content)


def open_explorer(client, path: str, first_unit: int) -> list[tuple[str, float, int]]:
    urls = [("page", f"/miniscope/explorer?path={path}"), ("footprints PNG", f"/miniscope/explorer/image?path={path}"),
            ("label image", f"/miniscope/explorer/labels?path={path}"),
            ("unit list", f"/miniscope/explorer/units?path={path}"),
            ("first trace", f"/miniscope/explorer/trace?path={path}&unit={first_unit}&width=1000")]
    return [(name, *_timed(client, url)) for name, url in urls]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=50000)
    parser.add_argument("--size", type=int, default=320, help="processed frame side (px)")
    parser.add_argument("--keep", type=Path, default=None, help="generate into (or reuse) this folder")
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from scopeline.miniscope.simulate_result import write_synthetic_result
    from scopeline.ui import ServeConfig, create_app

    base = args.keep or Path(tempfile.mkdtemp(prefix="scopeline_explorer_"))
    run = base / "result"
    try:
        if not (run / "steps" / "export" / "complete.json").exists():
            t0 = time.perf_counter()
            write_synthetic_result(run, n_units=args.units, n_frames=args.frames, shape=(args.size, args.size),
                                   export_files=False)
            print(f"generated {args.units} units x {args.frames} frames ({args.size} x {args.size} px) "
                  f"in {time.perf_counter() - t0:.1f} s")
        disk = sum(p.stat().st_size for p in (run / "store.zarr").rglob("*") if p.is_file())
        print(f"store on disk: {disk / 1e6:.0f} MB")
        config = ServeConfig(runs=base)

        from scopeline.ui.explorer import CACHE_FILE

        def fresh_open(title: str) -> tuple[object, float]:
            print(title)
            client = TestClient(create_app(config), base_url="http://127.0.0.1:8765")
            rows = open_explorer(client, "result", 10)  # 10: the first unit's id
            for name, seconds, size in rows:
                print(f"   {name:15s} {1000 * seconds:7.1f} ms  {size / 1e3:8.1f} kB")
            total = sum(s for _, s, _ in rows)
            print(f"   total           {1000 * total:7.1f} ms   (target < 2000 ms)")
            return client, total

        (run / CACHE_FILE).unlink(missing_ok=True)
        fresh_open("\n1a. first open ever (fresh app, no overview cached: read every footprint, draw, cache)")
        client, _ = fresh_open("\n1b. open in a fresh app (the server restarted; overview cached beside the run, "
                               "as after a run started from the UI)")
        again = sum(s for _, s, _ in open_explorer(client, "result", 10))
        print(f"\n1c. opened again in the same app (overview in memory): {1000 * again:.1f} ms")

        print("\n2. one unit's trace (C and S, 1,000 columns), 30 random units")
        rng = np.random.default_rng(0)
        times, sizes = [], []
        for unit in rng.choice(np.arange(10, 10 + args.units), 30, replace=False):
            seconds, size = _timed(client, f"/miniscope/explorer/trace?path=result&unit={unit}&width=1000")
            times.append(seconds)
            sizes.append(size)
        print(f"   median {1000 * statistics.median(times):.1f} ms, max {1000 * max(times):.1f} ms "
              f"(target < 200 ms); {statistics.median(sizes) / 1e3:.0f} kB each")
        zoom = [_timed(client, f"/miniscope/explorer/trace?path=result&unit={u}&width=1000&t0=600&t1=610")[0]
                for u in (10, 500, 1000)]
        print(f"   a 10 s window at full detail (300 frames): median {1000 * statistics.median(zoom):.1f} ms")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
