"""Leave-one-micrograph-out folds of the shipped cleaner recipe (issue 10 validation).

    python benchmarks/clean_lomo.py --out runs/lomo [--jobs 2] [--only 15_27_22 14_57_34+15_17_31 all ...] [--full]
    python benchmarks/clean_real_validation.py --lomo runs/lomo

For each of the 7 labelled EMPIAR-10017 micrographs, trains the shipped recipe
(``train.SHIPPED_RECIPE``: same seed, steps, augmentation, CryoPPP ``train`` micrographs)
with that one micrograph held out (``--hold-out``), into ``OUT/<micrograph>/``; the
held-out micrograph is then scored only by the model that never saw it, at the default
threshold (chosen on simulated data, not on these micrographs). ``--full`` also trains the
recipe on all 7 (``OUT/all/``: the shipped weights). Each fold is one
``python -m scopeline.cryoem.cleaner.train shipped`` process (``nice -n 10``, one torch
thread) that trains the recipe's three members one after the other (about 12 min); a fold
whose ``train_log.json`` exists is skipped, and within a fold a member whose log exists
(resume). The session-7 figures held out 14_57_34+15_17_31, 15_07_41, 15_27_22,
16_51_03+17_02_43 and 16_59_12 (``--only`` with those and ``all``). Options after ``--``
are added to every fold's recipe, to try a training option before it becomes the recipe::

    python benchmarks/clean_lomo.py --out runs/try --only 15_27_22 -- --carbon film --carbon-share 0.35
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fold_names(data: Path) -> list[str]:
    return sorted(p.stem for p in (data / "empiar10017" / "images").glob("*.jpg"))


def run_fold(data: Path, out: Path, held_out: tuple[str, ...], extra: list[str]) -> tuple[str, float, int]:
    folder = out / ("+".join(name.split("-")[-1] for name in held_out) or "all")
    if (folder / "train_log.json").exists():
        return folder.name, 0.0, 0
    folder.mkdir(parents=True, exist_ok=True)
    command = ["nice", "-n", "10", sys.executable, "-m", "scopeline.cryoem.cleaner.train", "shipped",
               "--out", str(folder), "--real", str(data), *[a for name in held_out for a in ("--hold-out", name)], *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.monotonic()
    with open(folder / "train.out", "w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return folder.name, time.monotonic() - start, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "micrographs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=2, help="folds trained at once")
    parser.add_argument("--only", nargs="*", default=None,
                        help="folds in this order: a micrograph (15_27_22), several held out together (14_57_34+15_17_31), all (none held out)")
    parser.add_argument("--full", action="store_true", help="also train on all 7 (the shipped weights)")
    parser.add_argument("extra", nargs="*", help="more options for train (after --)")
    args = parser.parse_args()
    names = fold_names(args.data)
    folds = [(name,) for name in names]
    if args.only is not None:  # in the order given; "all": nothing held out; "A+B": one fold holding out both
        folds = [() if o == "all" else tuple(n for part in o.split("+") for n in names if part in n) for o in args.only]
    jobs = folds + ([()] if args.full and () not in folds else [])
    with ThreadPoolExecutor(args.jobs) as pool:
        for folder, seconds, code in pool.map(lambda n: run_fold(args.data, args.out, n, args.extra), jobs):
            print(f"{folder}: {'done' if code == 0 else f'FAILED ({code})'} in {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
