"""The cleaner on real micrographs: per-micrograph figures, CryoPPP, robustness, simulation.

    python benchmarks/clean_real_validation.py [--data ../shared/data/micrographs]
        [--model MODEL.onnx] [--lomo runs/lomo] [--sim 20] [--threshold T] [--empiar-looks]

1. EMPIAR-10017 (7 hand-labelled micrographs, box 128 px): pixel ROC AUC carbon+ice vs
   good ice, picks deep inside carbon/ice removed, particles on good ice kept, good area
   flagged. With ``--lomo DIR`` each micrograph is scored by the model of the fold that
   held it out (``DIR/*/cleaner_unet.onnx``, the held-out names read from
   ``train_log.json``; ``benchmarks/clean_lomo.py`` trains them): leave-micrographs-out
   figures, at the default threshold and at the balanced threshold chosen for each
   micrograph on the other micrographs' out-of-fold scores. Otherwise by ``--model`` (the
   shipped weights saw all 7 in training: in-sample, not validation).
2. CryoPPP ``valid`` + ``test`` splits (never trained on): labelled particles kept and
   area flagged per micrograph (314_10028 holds contamination: not a clean one).
3. Robustness on the CryoPPP validation micrographs: as published (raw-looking 8-bit),
   denoised + contrast-equalised, resampled x0.5 / x2 (box scaled with it: another pixel
   size), and the box mis-set by x0.7 / x1.4 (particles look larger / smaller). Then the
   CryoPPP ``train`` micrographs as published and denoised: in-sample for the network,
   but where the image-step rule once failed (stack_0004, docs/clean.md "Session 8").
   With ``--empiar-looks``, the EMPIAR-10017 micrographs in the same looks too (by their
   fold models with ``--lomo``).
4. Simulated held-out micrographs (seeds never trained on): float, 8-bit, denoised.

Targets (issue 10): AUC >= 0.95, deep bad removed >= 90 %, good kept >= 90 % per
micrograph; CryoPPP >= 95 % particles kept, <= 5 % area flagged on clean ones; simulated
>= 95 % bad removed and good kept; robustness: good kept >= 90 %.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from scopeline.cryoem.cleaner.clean import DEFAULT_THRESHOLD
from scopeline.cryoem.cleaner.evaluate import pick_rates, roc_auc
from scopeline.cryoem.cleaner.predict import BadRegionModel, predict_probability
from scopeline.cryoem.cleaner.preprocess import robust_normalise
from scopeline.cryoem.cleaner.realdata import load_cryoppp, load_empiar10017
from scopeline.cryoem.cleaner.realeval import (
    LOOKS,
    choose_threshold,
    denoise_equalise,
    evaluate_look,
    evaluate_micrograph,
    pick_scores,
    pooled_kept,
    probability,
    to_8bit,
)
from scopeline.cryoem.cleaner.regions import REGION_SEED, REGION_STEP, seeded_probability, stepped_probability
from scopeline.cryoem.cleaner.score import box_means
from scopeline.cryoem.cleaner.synth import random_picks, simulate_micrograph

HELD_OUT_SEED = 2_000_000_000


def fold_models(folder: Path) -> dict[str, Path]:
    """Held-out micrograph name -> model of the fold that held it out."""
    out = {}
    for log in sorted(Path(folder).glob("*/train_log.json")):
        for name in json.loads(log.read_text())["config"]["hold_out"]:
            out[name] = log.parent / "cleaner_unet.onnx"
    return out


def model_loader(lomo: Path | None, model_path: str | None):
    """``load(name)``: the model that scores micrograph ``name`` (its fold's with ``lomo``,
    else ``model_path``), each loaded once."""
    folds = fold_models(lomo) if lomo else {}
    models: dict[str, BadRegionModel] = {}

    def load(name: str) -> BadRegionModel:
        path = folds.get(name, model_path)
        if str(path) not in models:
            models[str(path)] = BadRegionModel(path, device="cpu")
        return models[str(path)]

    return load


def fmt(value: float, percent: bool = True) -> str:
    if value != value:
        return "   n/a"
    return f"{100 * value:5.1f}%" if percent else f"{value:6.3f}"


def empiar_table(data: Path, model_path: str | None, lomo: Path | None, threshold: float,
                 region_seed: float = REGION_SEED, region_step: float = REGION_STEP) -> list[dict]:
    """Per-micrograph figures. With fold models (``lomo``) each micrograph is scored by
    the model that never saw it, at the balanced threshold chosen on the *other*
    micrographs' out-of-fold scores (``realeval.choose_threshold``), and at ``threshold``."""
    folds = fold_models(lomo) if lomo else {}
    load = model_loader(lomo, model_path)
    items = load_empiar10017(data)
    probs, scores = {}, {}
    for item in items:
        probs[item.name] = probability(load(item.name), item.image, item.box_size, region_seed, region_step)
        scores[item.name] = pick_scores(probs[item.name], item.target, item.particles, item.box_size)
    complete = bool(folds) and all(item.name in folds for item in items)
    tables = [(f"default threshold {threshold}", {item.name: threshold for item in items})]
    if complete:
        tables.append(("threshold chosen on the other micrographs' out-of-fold scores", {
            item.name: choose_threshold([scores[o.name] for o in items if o.name != item.name]) for item in items}))
    rows = []
    for label, thresholds in tables:
        print(f"\n## EMPIAR-10017, box 128 px, {label}: "
              + ("leave-micrographs-out (fold models)" if folds else f"model {model_path or 'shipped'}"))
        print("| micrograph | model | carbon+ice area | pixel AUC | threshold | deep bad removed (n) | good kept (n) | good area flagged |")
        print("|---|---|---|---|---|---|---|---|")
        for item in items:
            t = thresholds[item.name]
            r = evaluate_micrograph(probs[item.name], item.target, item.particles, item.box_size, t)
            model_label = Path(folds[item.name]).parent.name if item.name in folds else "given"
            rows.append({"name": item.name, "model": model_label, "threshold": t, **r})
            print(f"| {item.name.split('-')[-1]} | {model_label} | {fmt(r['bad_area'])} | {fmt(r['pixel_auc'], False)} | {t:.2f} | "
                  f"{fmt(r['deep_bad_removed'])} ({r['n_deep_bad']}) | {fmt(r['good_kept'])} ({r['n_good']}) | {fmt(r['area_flagged'])} |")
    if complete:
        print(f"\nbalanced threshold on the out-of-fold scores of all {len(items)} micrographs: "
              f"{choose_threshold(list(scores.values()))} (the default's procedure)")
    return rows


def empiar_looks_table(data: Path, model_path: str | None, lomo: Path | None, threshold: float,
                       region_seed: float = REGION_SEED, region_step: float = REGION_STEP) -> list[dict]:
    """EMPIAR-10017 in the looks of the robustness table (each micrograph by its fold model
    with ``lomo``), the labelled regions resampled with the image."""
    load = model_loader(lomo, model_path)
    print(f"\n## EMPIAR-10017 in other looks, threshold {threshold}: "
          + ("leave-micrographs-out (fold models)" if lomo else f"model {model_path or 'shipped'}"))
    print("| micrograph | look | pixel AUC | deep bad removed (n) | good kept (n) | good area flagged |")
    print("|---|---|---|---|---|---|")
    rows = []
    for item in load_empiar10017(data):
        for look in LOOKS:
            if look == "as published":
                continue
            r = evaluate_look(load(item.name), item, look, threshold, region_seed, region_step, regions=True)
            rows.append({"name": item.name, "look": look, **r})
            print(f"| {item.name.split('-')[-1]} | {look} | {fmt(r['pixel_auc'], False)} | {fmt(r['deep_bad_removed'])} "
                  f"({r['n_deep_bad']}) | {fmt(r['good_kept'])} ({r['n_good']}) | {fmt(r['area_flagged'])} |")
    return rows


def cryoppp_tables(data: Path, model: BadRegionModel, threshold: float, region_seed: float = REGION_SEED,
                   region_step: float = REGION_STEP) -> dict[str, list[dict]]:
    items = load_cryoppp(data, ("valid", "test"))
    results: dict[str, list[dict]] = {}
    for look in LOOKS:
        results[look] = [{"name": item.name, "clean": item.clean, **evaluate_look(model, item, look, threshold, region_seed, region_step)}
                         for item in items]
    print(f"\n## CryoPPP valid + test (never trained on), threshold {threshold}, as published")
    print("| micrograph | box px | particles kept (n) | area flagged |")
    print("|---|---|---|---|")
    for item, r in zip(items, results["as published"]):
        note = "" if item.clean else " (contamination)"
        print(f"| {item.name}{note} | {item.box_size:.0f} | {fmt(r['good_kept'])} ({r['n_good']}) | {fmt(r['area_flagged'])} |")
    print("\n## Robustness on the CryoPPP validation micrographs (pooled; clean ones for the area)")
    print("| look | particles kept | min per micrograph | area flagged (mean) | max |")
    print("|---|---|---|---|---|")
    for look, rows in results.items():
        kept = pooled_kept(rows)
        clean = [r["area_flagged"] for r in rows if r["clean"]]
        print(f"| {look} | {fmt(kept)} | {fmt(min(r['good_kept'] for r in rows))} | {fmt(float(np.mean(clean)))} | {fmt(max(clean))} |")
    print(f"\n## CryoPPP train (the network was trained on the clean ones: in-sample), threshold {threshold}")
    print("| micrograph | look | particles kept (n) | area flagged |")
    print("|---|---|---|---|")
    for item in load_cryoppp(data, ("train",)):
        for look in ("as published", "denoised+CLAHE"):
            r = evaluate_look(model, item, look, threshold, region_seed, region_step)
            note = "" if item.clean else " (not clean)"
            print(f"| {item.name}{note} | {look} | {fmt(r['good_kept'])} ({r['n_good']}) | {fmt(r['area_flagged'])} |")
    return results


SIM_LOOKS = {
    "float": lambda image: image,
    "8-bit": to_8bit,
    "denoised+CLAHE": denoise_equalise,
}


def simulated_table(model: BadRegionModel, n: int, threshold: float, size: int = 384,
                    region_seed: float = REGION_SEED, region_step: float = REGION_STEP) -> dict[str, dict]:
    out = {}
    print(f"\n## Simulated held-out ({n} micrographs {size}^2 at model scale, seeds {HELD_OUT_SEED}+), threshold {threshold}")
    print("| look | pixel AUC | bad removed | good kept | border kept |")
    print("|---|---|---|---|---|")
    sims = [simulate_micrograph(HELD_OUT_SEED + i, size) for i in range(n)]
    for look, change in SIM_LOOKS.items():
        probs, trues, scores, classes = [], [], [], []
        for seed_offset, m in enumerate(sims):
            small = robust_normalise(np.asarray(change(m.image), np.float32))
            prob = stepped_probability(predict_probability(small, model), small, min_step=region_step)
            prob = seeded_probability(prob, seed=region_seed)
            certain = (m.mask == 0) | (m.mask == 1)
            probs.append(prob[certain][::7])
            trues.append(m.mask[certain][::7] == 1)
            picks = random_picks(np.random.default_rng(HELD_OUT_SEED + seed_offset), m, n_junk=60)
            x, y = picks[:, 0], picks[:, 1]
            true_fraction = box_means(m.mask, x, y, m.box_size)
            centre_bad = m.mask[np.clip(y.astype(int), 0, size - 1), np.clip(x.astype(int), 0, size - 1)] > 0.5
            classes.append(np.where(centre_bad, "bad", np.where(true_fraction == 0, "good", "border")))
            scores.append(1 - box_means(prob, x, y, m.box_size))
        data = {"pick_score": np.concatenate(scores), "pick_class": np.concatenate(classes)}
        rates = pick_rates(data, threshold)
        auc = roc_auc(np.concatenate(probs), np.concatenate(trues))
        out[look] = {"pixel_auc": auc, **rates}
        print(f"| {look} | {fmt(auc, False)} | {fmt(rates['bad_removed'])} | {fmt(rates['good_kept'])} | {fmt(rates['border_kept'])} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "micrographs")
    parser.add_argument("--model", default=None, help="ONNX model (default: the shipped weights)")
    parser.add_argument("--lomo", type=Path, default=None, help="folder of fold runs for leave-micrographs-out")
    parser.add_argument("--sim", type=int, default=20, help="simulated held-out micrographs (0: skip)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--skip", nargs="*", default=[], choices=["empiar", "cryoppp"])
    parser.add_argument("--empiar-looks", action="store_true",
                        help="also EMPIAR-10017 in the other looks (resampled, denoised, box mis-set)")
    parser.add_argument("--region-seed", type=float, default=REGION_SEED,
                        help=f"the seeded-region rule (regions.py): 0 off, e.g. 0.8 (default {REGION_SEED})")
    parser.add_argument("--region-step", type=float, default=REGION_STEP,
                        help=f"the image-step rule (regions.py): 0 off (default {REGION_STEP})")
    args = parser.parse_args()
    start = time.monotonic()
    model = BadRegionModel(args.model, device="cpu")
    if "empiar" not in args.skip:
        empiar_table(args.data, args.model, args.lomo, args.threshold, args.region_seed, args.region_step)
        if args.empiar_looks:
            empiar_looks_table(args.data, args.model, args.lomo, args.threshold, args.region_seed, args.region_step)
    if "cryoppp" not in args.skip:
        cryoppp_tables(args.data, model, args.threshold, args.region_seed, args.region_step)
    if args.sim:
        simulated_table(model, args.sim, args.threshold, region_seed=args.region_seed, region_step=args.region_step)
    print(f"\n{time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
