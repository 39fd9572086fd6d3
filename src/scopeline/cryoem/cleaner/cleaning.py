"""``scopeline clean``, the pure part: parameters, bad-region probability, pick scores and
the decisions (per pick and per micrograph). No I/O: the orchestration is
:mod:`scopeline.cryoem.cleaner.clean`, the figures :mod:`scopeline.cryoem.cleaner.plots`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scopeline.cryoem.cleaner.regions import REGION_LOW, REGION_SEED, REGION_SEED_BOXES, REGION_STEP, WIDE_DARK_PART

DEFAULT_THRESHOLD = 0.65  # balanced on validation seeds: see docs/clean.md
GUARD_FRACTION = 0.5  # a micrograph flagged bad over more than this fraction gets a warning
MEASURE_FIELDS = ("box_size", "model", "tile", "overlap", "invert_contrast", "pixel_size",
                  "other_pixel_size", "output_scale", "region_low", "region_seed", "region_seed_boxes", "region_step",
                  "region_dark_part")  # what changes the scores


class CleanParams(BaseModel):
    """Parameters of ``scopeline clean``."""

    model_config = ConfigDict(extra="forbid")

    box_size: float = Field(gt=0, description="particle box (px of the coordinates' micrographs)")
    threshold: float = Field(DEFAULT_THRESHOLD, ge=-1, le=1, description="keep picks with score > T; -1 keeps all")
    min_kept: int = Field(1, ge=0, description="a micrograph keeping fewer picks than this is discarded")
    save_masks: bool = False
    thumbnails: int = Field(0, ge=0, description="overlay images for the first N micrographs")
    batch_size: int = Field(16, ge=1)
    model: Path | None = Field(None, description="ONNX (.onnx) or torch (.pt) weights; default: shipped")
    device: Literal["auto", "cpu", "cuda", "torch-cpu"] = "auto"
    threads: int = Field(2, ge=1)
    tile: int = Field(512, ge=64, description="largest tile side at model scale (px); a 4k micrograph at box 200 (328 px) is one pass")
    overlap: int = Field(32, ge=0)
    region_low: float = Field(REGION_LOW, ge=0, le=1,
                              description="pixels at least this probable form candidate bad regions (regions.py)")
    region_seed: float = Field(REGION_SEED, ge=0, le=1,
                               description="0 (default): off; e.g. 0.8: a candidate region is bad only if it holds "
                                           "a core this probable (regions.py)")
    region_seed_boxes: float = Field(REGION_SEED_BOXES, ge=0,
                                     description="the confident core must cover at least this many particle-box areas")
    region_step: float = Field(REGION_STEP, ge=0,
                               description="a candidate region is bad only if the image steps across its boundary this "
                                           "many times the field's fluctuation (default 6; 0: off; regions.py)")
    region_dark_part: bool = Field(WIDE_DARK_PART,
                                   description="where candidate regions cover most of the micrograph, of a region "
                                               "stepping darker only what is darker than the ice around the step "
                                               "stays bad (regions.stepped_probability, dark_part)")
    invert_contrast: bool = Field(False, description="micrographs have bright particles on dark")
    pixel_size: float | None = Field(None, gt=0, description="A/px of the coordinates' micrographs")
    other_pixel_size: float | None = Field(None, gt=0, description="A/px of --other-micrographs")
    output_scale: Literal["coordinates", "other"] = Field(
        "coordinates", description="write cleaned coordinates at the input scale or the other micrographs' scale"
    )


def bad_region_probability(image: np.ndarray, box: float, model, params: CleanParams) -> tuple[np.ndarray, np.ndarray]:
    """(bad-region probability, normalised image), both at model scale (box ~16 px): the
    network's probability; with ``params.region_step`` > 0, regions whose boundary shows no
    step in the image are damped, with ``params.region_seed`` > 0 regions that hold no
    confident core (:mod:`scopeline.cryoem.cleaner.regions`)."""
    from scopeline.cryoem.cleaner.predict import predict_probability
    from scopeline.cryoem.cleaner.preprocess import downsample, downsample_factor, robust_normalise
    from scopeline.cryoem.cleaner.regions import seeded_probability, stepped_probability

    if not np.isfinite(image).all():
        raise ValueError("micrograph contains NaN or Inf values")
    small = robust_normalise(downsample(image, downsample_factor(box)))
    if params.invert_contrast:
        small = -small
    prob = predict_probability(small, model, params.tile, params.overlap)
    prob = stepped_probability(prob, small, params.region_low, params.region_step, dark_part=params.region_dark_part)
    return seeded_probability(prob, params.region_low, params.region_seed, params.region_seed_boxes), small


def score_picks(prob: np.ndarray, x: np.ndarray, y: np.ndarray, box: float,
                image_shape: tuple[int, int]) -> np.ndarray:
    """Good-region score of each pick (NaN off the image).

    Parameters
    ----------
    prob : ndarray
        Bad-region probability at model scale.
    x, y : ndarray
        Pick centres in pixels of the image of shape ``image_shape``.
    box : float
        Box size in those pixels.
    """
    from scopeline.cryoem.cleaner.score import good_region_scores, inside_image

    sx, sy = image_shape[1] / prob.shape[1], image_shape[0] / prob.shape[0]
    inside = inside_image(x, y, image_shape)
    scores = np.full(len(x), np.nan)
    scores[inside] = good_region_scores(prob, x[inside], y[inside], box, sx, sy)
    return scores


def flagged_fraction(prob: np.ndarray) -> float:
    """Fraction of the micrograph's area with bad-region probability above 0.5."""
    prob = np.asarray(prob)
    return float(np.mean(prob > 0.5)) if prob.size else 0.0


def guard_warning(fraction: float | None) -> str:
    """The warning for a micrograph flagged bad over more than :data:`GUARD_FRACTION`."""
    if fraction is None or not fraction > GUARD_FRACTION:
        return ""
    return (f"{100 * fraction:.0f} % of the micrograph flagged as bad region: the model is probably "
            "off its domain (check the contrast (--invert-contrast), the box size and the data)")


def decide_micrograph(record: dict, params: CleanParams) -> dict:
    """One micrograph's row: the picks kept at ``params.threshold`` and its status.

    ``accepted`` when it keeps at least ``params.min_kept`` picks (or had none to keep),
    ``discarded`` otherwise, ``failed`` when it could not be measured. Pure.
    """
    from scopeline.cryoem.cleaner.score import keep_decision

    n = len(record.get("x") or [])
    scores = np.asarray(record.get("scores") or [np.nan] * n, float)
    measured = record["status"] == "ok"
    kept = keep_decision(scores, params.threshold) if measured else np.zeros(n, bool)
    if not measured:
        status = "failed"
    elif n == 0 or int(kept.sum()) >= params.min_kept:
        status = "accepted"
    else:
        status = "discarded"
    fraction = record.get("flagged_fraction")
    return {**record, "status": status, "kept": kept, "n_kept": int(kept.sum()),
            "warning": guard_warning(fraction) if measured else ""}
