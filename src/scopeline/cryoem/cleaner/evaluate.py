"""Accuracy of the cleaner on simulated micrographs whose truth is known.

Picks are every simulated particle plus junk picks anywhere (as a generic picker makes
them). A pick is *bad* when its centre lies on a bad region, *good* when its whole box is
clean ice, and *border* otherwise (box partly on a bad region, centre on clean ice): the
targets are about bad and good picks; border picks are reported on their own.
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np
from scipy.stats import rankdata

from scopeline.cryoem.cleaner.predict import predict_probability
from scopeline.cryoem.cleaner.preprocess import prepare, robust_normalise
from scopeline.cryoem.cleaner.regions import REGION_LOW, REGION_STEP, stepped_probability
from scopeline.cryoem.cleaner.score import box_means, keep_decision
from scopeline.cryoem.cleaner.synth import random_picks, simulate_micrograph


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied ranks averaged)."""
    scores = np.asarray(scores, float).ravel()
    labels = np.asarray(labels, bool).ravel()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def collect(model, seeds: Iterable[int], size: int = 384, rescale: float = 1.0,
            region_step: float = REGION_STEP, sampling: float | None = None) -> dict[str, np.ndarray]:
    """Predicted pixel probabilities, true labels and per-pick scores over ``seeds``.

    By default each simulation is fed as it is made, at model scale. ``rescale`` != 1
    resamples it (interpolated) before the model and the probability back, the box not
    changed: a micrograph whose box is mis-set by ``1 / rescale``. ``sampling`` records the
    simulation at another pixel size (``synth.simulate_micrograph``; 2: half the pixel
    size, box doubled) and scales it by its box as ``scopeline clean`` does
    (:func:`scopeline.cryoem.cleaner.preprocess.prepare`). ``region_step``: the image-step
    rule as ``scopeline clean`` applies it (default on; ``regions.stepped_probability``).
    """
    pixel_prob, pixel_true, pick_score, pick_class = [], [], [], []
    for seed in seeds:
        micrograph = simulate_micrograph(seed, size, 1.0 if sampling is None else sampling)
        box = None if sampling is None else micrograph.box_size
        prob = _predict_resampled(model, micrograph.image, rescale, region_step, box)
        certain = (micrograph.mask == 0) | (micrograph.mask == 1)
        step = max(1, round(7 * (1 if sampling is None else sampling) ** 2))  # a subsample keeps the AUC cheap
        pixel_prob.append(prob[certain][::step])
        pixel_true.append(micrograph.mask[certain][::step] == 1)
        picks = random_picks(np.random.default_rng(seed), micrograph, n_junk=60)
        x, y, box = picks[:, 0], picks[:, 1], micrograph.box_size
        true_fraction = box_means(micrograph.mask, x, y, box)
        side = micrograph.mask.shape[0]
        centre_bad = micrograph.mask[np.clip(y.astype(int), 0, side - 1), np.clip(x.astype(int), 0, side - 1)] > 0.5
        pick_class.append(np.where(centre_bad, "bad", np.where(true_fraction == 0, "good", "border")))
        pick_score.append(1 - box_means(prob, x, y, box))
    return {
        "pixel_prob": np.concatenate(pixel_prob),
        "pixel_true": np.concatenate(pixel_true),
        "pick_score": np.concatenate(pick_score),
        "pick_class": np.concatenate(pick_class),
    }


def _predict_resampled(model, image: np.ndarray, rescale: float, region_step: float,
                       box: float | None = None) -> np.ndarray:
    if rescale != 1.0:
        side = max(16, int(round(image.shape[0] * rescale)))
        method = cv2.INTER_AREA if rescale < 1 else cv2.INTER_LINEAR
        image_seen = cv2.resize(image, (side, side), interpolation=method)
    else:
        image_seen = image
    small = robust_normalise(image_seen) if box is None else prepare(image_seen, box)[0]
    prob = stepped_probability(predict_probability(small, model), small, REGION_LOW, region_step)
    return prob if prob.shape == image.shape else cv2.resize(prob, image.shape[::-1], interpolation=cv2.INTER_LINEAR)


def pick_rates(data: dict[str, np.ndarray], threshold: float) -> dict[str, float]:
    kept = keep_decision(data["pick_score"], threshold)
    cls = data["pick_class"]
    return {
        "bad_removed": float(np.mean(~kept[cls == "bad"])) if (cls == "bad").any() else float("nan"),
        "good_kept": float(np.mean(kept[cls == "good"])) if (cls == "good").any() else float("nan"),
        "border_kept": float(np.mean(kept[cls == "border"])) if (cls == "border").any() else float("nan"),
    }


def summarise(data: dict[str, np.ndarray], threshold: float) -> dict[str, float]:
    cls = data["pick_class"]
    return {
        "pixel_auc": roc_auc(data["pixel_prob"], data["pixel_true"]),
        "threshold": threshold,
        **pick_rates(data, threshold),
        "n_bad_picks": int((cls == "bad").sum()),
        "n_good_picks": int((cls == "good").sum()),
        "n_border_picks": int((cls == "border").sum()),
    }


def balanced_threshold(data: dict[str, np.ndarray], grid: Iterable[float] = np.arange(0.05, 0.96, 0.05)) -> float:
    """Threshold maximising min(bad removed, good kept): for choosing the default on
    validation seeds, never on the held-out ones."""
    best = max(grid, key=lambda t: min(pick_rates(data, t)["bad_removed"], pick_rates(data, t)["good_kept"]))
    return round(float(best), 2)
