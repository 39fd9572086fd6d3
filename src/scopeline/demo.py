"""``scopeline demo``: make small synthetic data sets and run every tool on them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

PIXEL_SIZE = 1.0  # Å/px of the demo movies


def demo_dose(root: Path, workers: int | None) -> Iterator[str]:
    """40 counting movies (MRC, LZW TIFF, EER) whose dose steps up 25 % for 10 movies,
    plus one truncated movie."""
    from .cryoem.dose import DoseParams
    from .cryoem.dose_analysis import run_dose
    from .cryoem.simulate import (simulate_counting_movie, simulate_eer_events, write_corrupt_movie,
                                  write_eer_movie, write_mrc_movie, write_tiff_movie)

    movies = root / "dose" / "movies"
    movies.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(40):
        dose = 1.25 if 20 <= i < 30 else 1.0  # e/Å² per frame (pixel size 1 Å)
        name = movies / f"movie_{i:03d}"
        if i % 10 == 9:  # some EER: 80 raw frames, 8 fractions of 10 raw frames each
            events = simulate_eer_events((256, 256), 80, 0.1 * dose, rng)
            write_eer_movie(name.with_suffix(".eer"), events, PIXEL_SIZE)
            continue
        stack = simulate_counting_movie((256, 256), 8, dose * PIXEL_SIZE**2, rng)
        if i % 5 == 4:
            write_tiff_movie(name.with_suffix(".tiff"), stack, PIXEL_SIZE, compression="lzw")
        else:
            write_mrc_movie(name.with_suffix(".mrc"), stack, PIXEL_SIZE)
    write_corrupt_movie(movies / "movie_040.mrc", "truncated")
    out = root / "dose" / "out"
    summary = run_dose([movies], out, DoseParams(pixel_size=PIXEL_SIZE, samples=10, window=10,
                                                          eer_fractions=8),
                       workers=workers)
    yield (f"dose: reference {summary['reference_dose']:.3f} e/Å² ({summary['reference_source']}), "
           f"{summary['n_accepted']} accepted, {summary['n_discarded']} discarded, "
           f"{summary['n_failed']} failed -> {out}/report.html")


DEMOS: list[tuple[str, Callable[[Path, int | None], Iterator[str]]]] = [
    ("dose", demo_dose),
]


def run_demo(out_dir: str | Path, workers: int | None = 2,
             echo: Callable[[str], None] = print) -> list[str]:
    """Run every demo into ``out_dir`` (recreated); return one line per tool."""
    root = Path(out_dir)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    lines = []
    for name, demo in DEMOS:
        echo(f"[bold]{name}[/]: generating data and running ...")
        lines.extend(demo(root, workers))
    lines.append(f"all demo outputs are in {root.resolve()}")
    return lines
