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
    from .cryoem.simulate import (
        simulate_counting_movie,
        simulate_eer_events,
        write_corrupt_movie,
        write_eer_movie,
        write_mrc_movie,
        write_tiff_movie,
    )

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


def demo_maxshift(root: Path, workers: int | None) -> Iterator[str]:
    """A RELION MotionCorr job: 30 movies drifting smoothly, 3 with a sudden jump and 3
    with a large total drift; corrected_micrographs.star points at each motion STAR."""
    import pandas as pd

    from .cryoem.maxshift import MaxShiftParams, run_maxshift
    from .io.motion import Trajectory, format_relion_motion_star
    from .io.star import write_star

    project = root / "maxshift" / "relion"
    job = project / "MotionCorr" / "job002" / "Movies"
    job.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    rows = []
    for i in range(30):
        steps = rng.normal(0, 0.5, size=(39, 2)) + np.array([0.8, 0.3])  # px per frame
        if i in (5, 17, 25):
            steps[rng.integers(5, 30)] += [14.0, 0.0]  # a sudden jump (> 10 Å at 0.885 Å/px)
        if i in (9, 21, 28):
            steps *= 2.5  # strong drift: total path > 45 Å
        shifts = np.vstack([[0.0, 0.0], np.cumsum(steps, axis=0)])
        name = f"movie_{i:03d}"
        traj = Trajectory(movie=f"Movies/{name}.tiff", shifts_px=shifts, pixel_size=0.885,
                          dose_per_frame=1.2)
        (job / f"{name}.star").write_text(format_relion_motion_star(traj))
        rows.append({"rlnMicrographName": f"MotionCorr/job002/Movies/{name}.mrc",
                     "rlnMicrographMetadata": f"MotionCorr/job002/Movies/{name}.star",
                     "rlnOpticsGroup": 1})
    optics = pd.DataFrame({"rlnOpticsGroupName": ["opticsGroup1"], "rlnOpticsGroup": [1],
                           "rlnMicrographOriginalPixelSize": [0.885], "rlnVoltage": [300.0],
                           "rlnSphericalAberration": [2.7], "rlnAmplitudeContrast": [0.1],
                           "rlnMicrographPixelSize": [0.885]})
    star = project / "MotionCorr" / "job002" / "corrected_micrographs.star"
    write_star(star, {"optics": optics, "micrographs": pd.DataFrame(rows)})
    out = root / "maxshift" / "out"
    summary = run_maxshift([star], out, MaxShiftParams(), workers=workers)
    yield (f"maxshift: {summary.get('n_accepted')} accepted, {summary.get('n_discarded')} discarded, "
           f"{summary.get('n_failed')} failed -> {out}/report.html")


def demo_clean(root: Path, workers: int | None) -> Iterator[str]:
    """Six simulated micrographs (carbon, contamination, ice crystals) at 4x the model's
    scale with a generic picker's picks (every particle plus junk), cleaned by the model."""
    import pandas as pd

    from .cryoem.cleaner.clean import CleanParams, run_clean
    from .cryoem.cleaner.synth import random_picks, simulate_micrograph
    from .cryoem.simulate import write_mrc_movie
    from .io.coords import write_coordinates

    folder = root / "clean" / "micrographs"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(4)
    scale, boxes = 4, []
    for i in range(6):
        mic = simulate_micrograph(1000 + i, size=256)
        image = np.kron(mic.image, np.ones((scale, scale), np.float32))
        write_mrc_movie(folder / f"mic_{i:02d}.mrc", image[None], 1.0)
        picks = random_picks(rng, mic) * scale
        write_coordinates(folder / f"mic_{i:02d}_autopick.star",
                          pd.DataFrame({"x": picks[:, 0], "y": picks[:, 1]}), "star")
        boxes.append(mic.box_size * scale)
    out = root / "clean" / "out"
    params = CleanParams(box_size=float(np.median(boxes)), save_masks=True, thumbnails=3)
    summary = run_clean([folder], [folder], out, params)
    yield (f"clean: {summary['n_kept']} of {summary['n_picks']} picks kept on "
           f"{summary['n_micrographs']} micrographs ({summary['n_failed']} failed) "
           f"-> {out}/report.html, {out}/thumbnails")


def demo_miniscope(root: Path, workers: int | None) -> Iterator[str]:
    """A small simulated recording (160x160 px, 800 frames at 10 Hz, 14 neurons, background,
    vignetting, drift with a 12 px jump) through the whole pipeline, scored against truth."""
    from .miniscope.api import run_pipeline
    from .miniscope.cnmf.metrics import evaluate_run
    from .miniscope.simulate import SimulationParams, simulate_recording

    video, out = root / "miniscope" / "video", root / "miniscope" / "out"
    simulate_recording(video, SimulationParams(height=160, width=160, n_frames=800, n_neurons=14,
                                               fps=10.0, frames_per_file=300, seed=5))
    run_pipeline(video, out, fps=10.0, workers=workers, scheduler=None if workers else "synchronous")
    score = evaluate_run(video, out)
    yield (f"miniscope: {score['n_found']} units for {score['n_true']} simulated neurons, F1 {score['f1']:.2f}, "
           f"median corr(C) {score['median_corr_C']:.2f}, corr(S) {score['median_corr_S']:.2f} "
           f"-> {out}/export, {out}/report.html")


DEMOS: list[tuple[str, Callable[[Path, int | None], Iterator[str]]]] = [
    ("dose", demo_dose),
    ("maxshift", demo_maxshift),
    ("clean", demo_clean),
    ("miniscope", demo_miniscope),
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
