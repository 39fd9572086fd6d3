"""Accuracy of the cleaner on real labelled micrographs (see ``realdata.py``).

For one micrograph and its per-pixel target (GOOD / BAD / IGNORE):

* ``pixel_auc``: ROC AUC of the bad-region probability for BAD against GOOD model pixels
  (pixels wholly one class; IGNORE and mixed pixels left out); NaN without BAD pixels;
* ``deep_bad_removed``: picks on a grid (spacing half a box) whose whole box lies on BAD:
  the fraction removed at the threshold;
* ``good_kept``: labelled particle centres whose whole box lies on GOOD (not IGNORE):
  the fraction kept;
* ``area_flagged``: fraction of the GOOD area where a pick would be removed (the box
  mean of the probability centred there gives a score <= threshold).

Scores are computed exactly as ``scopeline clean`` does (``prepare`` then
``cleaning.bad_region_probability`` then ``good_region_scores``).
"""

from __future__ import annotations

import cv2
import numpy as np

from scopeline.cryoem.cleaner.cleaning import CleanParams, bad_region_probability
from scopeline.cryoem.cleaner.evaluate import balanced_threshold, roc_auc
from scopeline.cryoem.cleaner.realdata import BAD, GOOD, IGNORE
from scopeline.cryoem.cleaner.regions import REGION_SEED, REGION_STEP
from scopeline.cryoem.cleaner.score import box_means, good_region_scores, keep_decision


def probability(model, image: np.ndarray, box_size: float, region_seed: float = REGION_SEED,
                region_step: float = REGION_STEP) -> np.ndarray:
    """Bad-region probability at model scale, as ``scopeline clean`` computes it
    (``region_seed`` > 0, e.g. 0.8, ``region_step`` > 0, e.g. 6: the rules of ``regions.py``)."""
    params = CleanParams(box_size=box_size, device="cpu", region_seed=region_seed, region_step=region_step)
    return bad_region_probability(np.asarray(image, np.float32), box_size, model, params)[0]


def pick_scores(prob: np.ndarray, target: np.ndarray, particles: np.ndarray, box_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Good-region scores of the picks deep in BAD (grid, spacing half a box, whole box on
    BAD) and of the labelled particles whose whole box lies on GOOD (arguments as for
    :func:`evaluate_micrograph`)."""
    height, width = target.shape
    sx, sy = width / prob.shape[1], height / prob.shape[0]
    is_bad = (target == BAD).astype(np.float64)
    not_good = (target != GOOD).astype(np.float64)
    step = box_size / 2
    gy, gx = np.mgrid[step / 2 : height : step, step / 2 : width : step]
    gx, gy = gx.ravel(), gy.ravel()
    inside = (gx - box_size / 2 >= 0) & (gy - box_size / 2 >= 0) & (gx + box_size / 2 <= width) & (gy + box_size / 2 <= height)
    gx, gy = gx[inside], gy[inside]
    deep = box_means(is_bad, gx, gy, box_size) > 0.999
    deep_scores = good_region_scores(prob, gx[deep] - 0.5, gy[deep] - 0.5, box_size, sx, sy)

    px, py = (particles[:, 0], particles[:, 1]) if len(particles) else (np.zeros(0), np.zeros(0))
    on_good = box_means(not_good, px + 0.5, py + 0.5, box_size) < 0.001 if len(px) else np.zeros(0, bool)
    good_scores = good_region_scores(prob, px[on_good], py[on_good], box_size, sx, sy)
    return deep_scores, good_scores


def choose_threshold(scores: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The balanced threshold (max of min(deep bad removed, good kept), pooled; grid
    0.05-0.95, the lowest of ties) on ``(deep_scores, good_scores)`` of several micrographs
    (:func:`pick_scores`). For an honest figure, give only micrographs other than the one
    evaluated, scored by models that never saw them (leave-one-micrograph-out)."""
    deep = np.concatenate([d for d, _ in scores])
    good = np.concatenate([g for _, g in scores])
    return balanced_threshold({"pick_score": np.concatenate([deep, good]),
                               "pick_class": np.array(["bad"] * len(deep) + ["good"] * len(good))})


def evaluate_micrograph(
    prob: np.ndarray,
    target: np.ndarray,
    particles: np.ndarray,
    box_size: float,
    threshold: float,
) -> dict[str, float]:
    """Figures (module doc) for one micrograph: ``prob`` at model scale, ``target`` and
    ``particles`` (x, y) at full resolution, ``box_size`` in full-resolution pixels."""
    height, width = target.shape
    sx, sy = width / prob.shape[1], height / prob.shape[0]
    size = (prob.shape[1], prob.shape[0])
    bad_frac = cv2.resize((target == BAD).astype(np.float32), size, interpolation=cv2.INTER_AREA)
    good_frac = cv2.resize((target == GOOD).astype(np.float32), size, interpolation=cv2.INTER_AREA)
    pure_bad, pure_good = bad_frac > 0.999, good_frac > 0.999
    auc = roc_auc(np.concatenate([prob[pure_bad], prob[pure_good]]),
                  np.concatenate([np.ones(pure_bad.sum(), bool), np.zeros(pure_good.sum(), bool)]))

    deep_scores, good_scores = pick_scores(prob, target, particles, box_size)

    # flagged area: score of a box centred on each model pixel, over GOOD pixels
    box_model = box_size / ((sx + sy) / 2)
    yy, xx = np.mgrid[0 : prob.shape[0], 0 : prob.shape[1]] + 0.5
    pixel_scores = 1 - box_means(prob, xx.ravel(), yy.ravel(), box_model).reshape(prob.shape)
    flagged = ~keep_decision(pixel_scores, threshold)
    return {
        "pixel_auc": auc,
        "n_deep_bad": len(deep_scores),
        "deep_bad_removed": float(np.mean(~keep_decision(deep_scores, threshold))) if len(deep_scores) else float("nan"),
        "n_good": len(good_scores),
        "good_kept": float(np.mean(keep_decision(good_scores, threshold))) if len(good_scores) else float("nan"),
        "area_flagged": float(flagged[pure_good].mean()) if pure_good.any() else float("nan"),
        "bad_area": float((target == BAD).mean()),
        "ignored_area": float((target == IGNORE).mean()),
    }


def denoise_equalise(image: np.ndarray) -> np.ndarray:
    """A denoised, contrast-equalised 8-bit version of a micrograph (Gaussian blur,
    non-local means, CLAHE: roughly what CryoSegNet's preprocessing does)."""
    image = np.asarray(image, np.float32)
    lo, hi = np.percentile(image, [0.5, 99.5])
    eight = np.clip((image - lo) / max(float(hi - lo), 1e-6) * 255, 0, 255).astype(np.uint8)
    eight = cv2.GaussianBlur(eight, (0, 0), 1.0)
    eight = cv2.fastNlMeansDenoising(eight, None, h=7, templateWindowSize=7, searchWindowSize=21)
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(eight)


def to_8bit(image: np.ndarray) -> np.ndarray:
    """An 8-bit export: 0.5-99.5 percentile stretch, rounded."""
    image = np.asarray(image, np.float32)
    lo, hi = np.percentile(image, [0.5, 99.5])
    return np.clip(np.rint((image - lo) / max(float(hi - lo), 1e-6) * 255), 0, 255).astype(np.uint8)


# Looks of a micrograph for the robustness figures: (image, box) -> (image, box). Resampling
# changes the box with the image (another pixel size); "box x0.7 / x1.4" mis-set the box.
LOOKS = {
    "as published": lambda image, box: (image, box),
    "denoised+CLAHE": lambda image, box: (denoise_equalise(image), box),
    "resampled x0.5": lambda image, box: (cv2.resize(np.asarray(image, np.float32), None, fx=0.5, fy=0.5,
                                                     interpolation=cv2.INTER_AREA), box * 0.5),
    "resampled x2": lambda image, box: (cv2.resize(np.asarray(image, np.float32), None, fx=2, fy=2,
                                                   interpolation=cv2.INTER_CUBIC), box * 2),
    "box x0.7": lambda image, box: (image, box * 0.7),
    "box x1.4": lambda image, box: (image, box * 1.4),
}


def apply_look(item, look: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(image, target, particle centres, box) of a labelled micrograph after
    ``LOOKS[look]``: the target (nearest neighbour) and the particles are resampled with
    the image."""
    image, box = LOOKS[look](item.image, item.box_size)
    scale = image.shape[1] / item.image.shape[1]
    target = item.target if scale == 1 else cv2.resize(item.target, image.shape[::-1], interpolation=cv2.INTER_NEAREST)
    return image, target, (item.particles + 0.5) * scale - 0.5, box


def evaluate_look(model, item, look: str, threshold: float, region_seed: float = REGION_SEED,
                  region_step: float = REGION_STEP, regions: bool = False) -> dict[str, float]:
    """Figures of a micrograph after ``LOOKS[look]``. By default as for a CryoPPP one (no
    region labelled: every labelled particle counts as good); ``regions=True`` uses the
    item's labelled regions (EMPIAR-10017)."""
    image, target, particles, box = apply_look(item, look)
    prob = probability(model, image, box, region_seed, region_step)
    return evaluate_micrograph(prob, target if regions else np.full(image.shape, GOOD, np.uint8), particles, box, threshold)


def pooled_kept(rows: list[dict[str, float]]) -> float:
    """Good kept over all micrographs together (weighted by their numbers of particles)."""
    n = sum(r["n_good"] for r in rows)
    return sum(r["good_kept"] * r["n_good"] for r in rows if r["n_good"]) / max(n, 1)
