"""Accuracy of ``scopeline clean`` on held-out simulated micrographs (seeds never trained on).

    python benchmarks/clean_accuracy.py [--n 40] [--size 384] [--model PATH] [--choose-threshold] [--robustness]

Prints the pixel ROC AUC and, at the threshold (default: CleanParams' default), the share of
bad picks removed and of good picks kept. ``--choose-threshold`` first picks the balanced
threshold on *validation* seeds (also never trained on) and then evaluates held-out seeds.
Targets: AUC >= 0.97, bad removed >= 95 %, good kept >= 95 %.
"""

from __future__ import annotations

import argparse
import json
import time

from scopeline.cryoem.cleaner.clean import DEFAULT_THRESHOLD
from scopeline.cryoem.cleaner.evaluate import balanced_threshold, collect, summarise
from scopeline.cryoem.cleaner.predict import BadRegionModel
from scopeline.cryoem.cleaner.train import HELD_OUT_SEED, VALIDATION_SEED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40, help="held-out micrographs")
    parser.add_argument("--size", type=int, default=384, help="side at model scale (px)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--choose-threshold", action="store_true")
    parser.add_argument("--robustness", action="store_true", help="also evaluate resampled micrographs")
    args = parser.parse_args()

    model = BadRegionModel(args.model, device="cpu")
    start = time.monotonic()
    threshold = args.threshold
    if args.choose_threshold:
        validation = collect(model, range(VALIDATION_SEED + 100, VALIDATION_SEED + 100 + args.n), args.size)
        threshold = balanced_threshold(validation)
        print(f"balanced threshold on {args.n} validation micrographs: {threshold}")
        print("validation:", json.dumps(summarise(validation, threshold)))
    held_out = collect(model, range(HELD_OUT_SEED, HELD_OUT_SEED + args.n), args.size)
    result = summarise(held_out, threshold)
    print(f"held-out: {args.n} simulated micrographs of {args.size}x{args.size} px at model scale, model {model.path.name}")
    print(f"  pixel ROC AUC        {result['pixel_auc']:.4f}   (target >= 0.97)")
    print(f"  bad picks removed    {100 * result['bad_removed']:.1f} %  of {result['n_bad_picks']}   (target >= 95 %)")
    print(f"  good picks kept      {100 * result['good_kept']:.1f} %  of {result['n_good_picks']}   (target >= 95 %)")
    print(f"  border picks kept    {100 * result['border_kept']:.1f} %  of {result['n_border_picks']}   (box partly bad, centre clean)")
    print(f"  threshold {threshold}; {time.monotonic() - start:.0f} s")
    print(json.dumps(result))
    if args.robustness:
        print("robustness: micrographs resampled before the model (box not 16 px, other noise texture)")
        for rescale in (0.7, 0.85, 1.2, 1.4):
            shifted = summarise(collect(model, range(HELD_OUT_SEED, HELD_OUT_SEED + args.n // 2), args.size, rescale), threshold)
            print(f"  x{rescale:<5} AUC {shifted['pixel_auc']:.4f}  bad removed {100 * shifted['bad_removed']:.1f} %  "
                  f"good kept {100 * shifted['good_kept']:.1f} %")


if __name__ == "__main__":
    main()
