"""Two rules that damp candidate bad regions the network alone is not trusted on.

* :func:`stepped_probability` (``--region-step``, **on by default**, 6): a region is bad
  only if the image level steps across its boundary (carbon, contamination, crystalline
  ice and ethane have edges; thicker ice darkens smoothly). It does not depend on the
  network's calibration, which is what lets the shipped ensemble (``model.MaxEnsemble``:
  a pixel is as bad as its most suspicious member says) be sensitive: the ensemble finds
  the carbon any member finds, and this rule removes the false alarms that adds on clean
  ice (docs/clean.md, "Session 7"). Where the candidate regions cover more than half the
  micrograph, each must step along a quarter particle box of its boundary, not at one
  window (``STEP_WIDE``, ``STEP_LENGTH``; session 8: false alarms over most of a noisy
  micrograph passed on one marginal window of their long boundary), and where that step
  is darker inside, only the part of the region darker than the ice around the step stays
  bad (``WIDE_DARK_PART``; session 9: a false alarm joined to a real aggregate or crystal).
  ``--region-step 0`` turns it off.
* :func:`seeded_probability` (``--region-seed``, off by default): a region is bad only if
  it holds a confident core (hysteresis), described below.

Both cap a damped region's probability at ``low / 2``.

Seeded regions. On real micrographs a network's false alarms are patches of moderate probability
(0.4-0.8) on clean ice: particle-poor or thicker, darker ice that looks locally like
carbon film (EMPIAR-10059's darker corners, EMPIAR-10017 17_02_43). Real carbon and
contamination carry such moderate probability too, deep inside, but -- for a network
that is confident about real defects -- in one connected region with an area it is sure
about (along the film's edge, the contamination's rim). With the rule on, a region
counts as bad only where it holds such a core: the two-threshold rule of Canny's edge
detector applied to regions (Canny 1986, doi:10.1109/TPAMI.1986.4767851;
``skimage.filters.apply_hysteresis_threshold``), with the core required to cover one
particle box, so a few confident pixels in a false-alarm patch do not seed it.

Off by default (``REGION_SEED = 0``): it helps only a network whose probability on real
carbon reaches 0.8 over a box. The single network shipped before session 7 never did
(on its own training micrographs the rule dropped the picks removed deep in carbon from
93 % to 0 % on 16_59_12); the film-carbon recipe's models do, and for them the rule takes the flagged
area of the noisy EMPIAR-10059 micrographs from up to 92 % to 0 % (docs/clean.md,
"Session 6"). Turn it on with ``CleanParams(region_seed=0.8)`` or ``--region-seed 0.8``
for such a model (for instance one fine-tuned on your own labels).

The values (0.8 over one box) were chosen among 0.8 / 0.9 and one pixel / a quarter /
half / one box while looking at the leave-micrographs-out fold models of EMPIAR-10017
and the CryoPPP validation micrographs: a one-pixel seed left 11-12 % of 17_02_43
flagged, half a box left 37 % of one EMPIAR-10059 micrograph flagged at half the pixel
size, a 0.9 seed lost the carbon of 15_27_22. The cost of one box: a contamination
smaller than a box at the border of 15_07_41 is no longer flagged.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi

from scopeline.cryoem.cleaner.preprocess import MODEL_BOX_PX

RULES_REVISION = 3  # raise when the rules below decide otherwise: it keys the measurement journal (session 9: 3)
REGION_LOW = 0.35  # a pixel is part of a candidate region at this probability (= 1 - the default threshold 0.65)
REGION_SEED = 0.0  # off; 0.8: a candidate region is bad only if it holds a core this probable ...
REGION_SEED_BOXES = 1.0  # ... covering at least this many particle-box areas (a box is 16 x 16 model pixels)
REGION_STEP = 6.0  # a candidate region is bad only if the image steps across its boundary this much (0: off)
BLUR_SIGMA = 2  # px: the image is smoothed this much before the step is measured
STEP_WIDE = 0.5  # where candidate regions cover more than this fraction of the micrograph, each ...
STEP_LENGTH = MODEL_BOX_PX / 4  # ... must step along this many px of boundary (model scale), not at one window
STEP_LEVELS = ()  # e.g. (0.5,): the step is tested again on the regions of probability >= 0.5 (off: see stepped_probability)
WIDE_DARK_PART = True  # where regions cover most of the field and step darker, only what is darker than the ice stays


def padded_border(image: np.ndarray, ratio: float = 0.25, reach: float = 0.125) -> tuple[int, int, int, int]:
    """Widths in pixels (top, bottom, left, right) of a border filled by repeating the edge.

    Motion correction and export often pad a micrograph's edges by repeating the last
    valid row or column, which leaves streaks: there the image hardly changes across the
    streaks while it changes along them as much as anywhere. A column counts as padding
    when the median absolute difference to its neighbour is below ``ratio`` times the
    median absolute difference along it (about 1 in an unpadded image, 0 in padding);
    the width is the innermost such column within ``reach`` of the side (a few unpadded
    columns at the very edge, as JPEG leaves, do not hide it). The same for rows.
    """
    image = np.asarray(image, np.float32)
    if min(image.shape) < 4:
        return 0, 0, 0, 0
    across_x, across_y = np.abs(np.diff(image, axis=1)), np.abs(np.diff(image, axis=0))
    column = np.median(across_x, axis=0) / (np.median(across_y[:, :-1], axis=0) + 1e-6)
    row = np.median(across_y, axis=1) / (np.median(across_x[:-1, :], axis=1) + 1e-6)

    def width(ratios: np.ndarray) -> int:
        low = np.flatnonzero(ratios[: max(1, int(reach * len(ratios)))] < ratio)
        return int(low[-1]) + 1 if len(low) else 0

    return width(row), width(row[::-1]), width(column), width(column[::-1])


def _damp(prob: np.ndarray, damped: np.ndarray, low: float) -> np.ndarray:
    """``prob`` capped at ``low / 2`` where ``damped`` (a pixel mask) is True."""
    return np.where(damped, np.minimum(prob, np.float32(low / 2)), prob).astype(np.float32)


def seeded_probability(prob: np.ndarray, low: float = REGION_LOW, seed: float = REGION_SEED,
                       seed_boxes: float = REGION_SEED_BOXES) -> np.ndarray:
    """Bad-region probability with candidate regions that hold no confident core damped.

    Parameters
    ----------
    prob : ndarray
        Bad-region probability (2-D, model scale: a particle box is 16 px).
    low : float
        Pixels with ``prob >= low`` form candidate regions (4-connected).
    seed : float
        A candidate region is kept as it is if it contains a core (a 4-connected set of
        pixels with ``prob >= seed``) of at least ``seed_boxes`` box areas; elsewhere the
        probability is capped at ``low / 2``, so such a region alone never removes a pick
        at thresholds down to ``1 - low / 2``. ``seed <= low`` (e.g. 0) turns the rule off.
    seed_boxes : float
        Smallest core, in particle-box areas (``16 * 16`` model pixels); 0 accepts one pixel.

    Returns
    -------
    ndarray
        float32 probability of the same shape.
    """
    prob = np.asarray(prob, np.float32)
    if seed <= low or prob.size == 0:
        return prob
    regions, n_regions = ndi.label(prob >= low)
    cores, n_cores = ndi.label(prob >= seed)
    areas = np.bincount(cores.ravel(), minlength=n_cores + 1)
    large = areas >= max(1.0, seed_boxes * MODEL_BOX_PX**2)
    large[0] = False
    seeded = np.zeros(n_regions + 1, bool)
    seeded[np.unique(regions[large[cores]])] = True
    return _damp(prob, (regions > 0) & ~seeded[regions], low)


def stepped_probability(prob: np.ndarray, image: np.ndarray, low: float = REGION_LOW, min_step: float = REGION_STEP,
                        band: int = 8, window: int = int(MODEL_BOX_PX),
                        levels: tuple[float, ...] = STEP_LEVELS, wide: float = STEP_WIDE,
                        min_length: float = STEP_LENGTH, dark_part: bool = WIDE_DARK_PART) -> np.ndarray:
    """Bad-region probability with candidate regions whose boundary shows no step in the image damped.

    Carbon film, contamination, crystalline ice and ethane differ in level from the ice
    around them, with a boundary; thicker or particle-poor ice that the network mistakes
    for film darkens smoothly. So, independently of how confident the network is, a
    candidate region counts as bad only where the image level steps across its boundary.
    With ``levels`` (e.g. ``(0.5,)``) the test is made again on the regions of ``prob >=
    level``: a false alarm joined to a real contamination through a bridge of moderate
    probability is then judged on its own. Off by default: on the leave-micrographs-out
    folds it took 17_02_43 (EMPIAR-10017) from 90.0 to 99.0 % of good particles kept with
    one ensemble, and deep carbon on 15_27_22 from 94.5 to 87.0 % removed with another
    (docs/clean.md, "Session 7").

    Parameters
    ----------
    prob : ndarray
        Bad-region probability (2-D, model scale: a particle box is 16 px).
    image : ndarray
        The normalised model-scale micrograph ``prob`` was computed from.
    low : float
        Pixels with ``prob >= low`` form candidate regions (4-connected).
    min_step : float
        Smallest step, in units of the field's own fluctuation: the image (smoothed at
        2 px) is averaged over ``window``-wide boxes of a ``band``-px ring inside and a ring
        outside the region; the step is |outside - inside| at each ring pixel, divided
        by the robust spread of differences between neighbouring box means of the whole
        field (so a dense, contrasty field needs a larger step than a smooth one).
        Regions whose rings cannot be measured (tiny, or only along the micrograph
        border) are kept. The outer ``band`` pixels of the micrograph, and a padded border
        (:func:`padded_border`, plus the smoothing) are never part of a ring: padding
        (the streaked border of the EMPIAR-10017 JPGs) would read as a step.
        ``min_step <= 0`` turns the rule off.
    levels : tuple of float
        Further levels (above ``low``) at which the regions are tested again; a pixel is
        damped when the region holding it fails the test at any level it reaches.
    wide, min_length : float
        Where the candidate regions together cover more than ``wide`` of the micrograph,
        each must show the step along ``min_length`` pixels of its boundary (ring pixels
        / ``band``; half of a shorter ring), not at one window. A network that flags most
        of the field is probably off its domain (the guard's threshold,
        ``flagged_fraction`` > 0.5); its regions are not bounded by ice but by its own
        holes, and along their long, ragged boundaries one window passes ``min_step`` by
        chance. On two noisy EMPIAR-10059 micrographs, false alarms over 83-94 % of the
        field stepped on 4-30 of 4,780-12,588 ring pixels, and the one-window rule of
        session 7 kept them; the simulated carbon regions over 51-86 % of a field with a
        hole edge in view stepped on 71-2,171. Elsewhere the one-window rule stays: asking a quarter box of every
        region damped real carbon and contamination joined to false alarms, whose step
        showed on fewer ring pixels (4 and 12 on 16_59_12's carbon wedge in two looks;
        docs/clean.md, "Session 8"). ``wide >= 1`` turns this off.
    dark_part : bool
        Where the candidate regions cover more than ``wide`` of the field and a region
        passes with its stepped boundary darker inside than outside (medians of the box
        means over the stepped ring pixels), only the parts of it darker than that outside
        level by half ``min_step`` (box means of the smoothed image) that reach within
        ``band`` px of the stepped boundary, or hold a box as dark as its inside, stay
        bad, with a rim of ``band`` px (where box means mix the two sides). Contamination, carbon and aggregates are darker than the
        ice; a false alarm joined to one by the network's moderate probability is at the
        ice's level. With the shipped weights: on the real EMPIAR-10059 micrograph with an
        aggregate (CryoPPP stack_0003) particles kept 40 -> 92 % (flagged 68 -> 6 %), at
        half the pixel size 44 -> 92 %; on the simulated held-out micrographs denoised +
        CLAHE good picks kept 88.2 -> 94.1 % (20; 90.4 -> 94.3 % of 30), bad removed
        unchanged; every EMPIAR-10017 and CryoPPP validation figure unchanged, with both
        ensembles. The cost, seen with the replicate ensemble (seeds 5, 6, 7): where it
        flags the hole and the film together and the only step is a contamination's inside
        the film, the film is at the "ice" level and is damped (simulated bad removed
        denoised 59.5 -> 50.9 %, at twice the pixel size 45.3 -> 29.0 %; docs/clean.md,
        "Session 9"). A brighter stepped side is left whole: there the step can be a
        flagged hole's, and splitting by level kept the hole and dropped the film
        (simulated bad removed 77.7 -> 71.9 %). Keeping only the parts that reach the step
        dropped a thick contamination enclosed by the false alarm in the demo (bad picks
        removed 56 -> 2 of 57 on one micrograph); keeping every part darker than the ice
        kept dark patches of the false alarm (denoised good kept 88.8 %).

    Returns
    -------
    ndarray
        float32 probability; damped pixels are capped at ``low / 2``.
    """
    prob = np.asarray(prob, np.float32)
    if min_step <= 0 or not (prob >= low).any():
        return prob
    level = cv2.GaussianBlur(np.asarray(image, np.float32), (0, 0), BLUR_SIGMA)
    interior = np.zeros(prob.shape, bool)
    top, bottom, left, right = (max(band, width + 2 * BLUR_SIGMA) for width in padded_border(image))
    interior[top : prob.shape[0] - bottom, left : prob.shape[1] - right] = True  # the micrograph's edge is no boundary
    means = cv2.boxFilter(level, -1, (window, window))
    neighbours = np.concatenate([(means[:, window:] - means[:, :-window]).ravel(),
                                 (means[window:, :] - means[:-window, :]).ravel()])
    spread = 1.4826 * float(np.median(np.abs(neighbours - np.median(neighbours)))) + 1e-6
    damped = np.zeros(prob.shape, bool)
    for threshold in (low, *(t for t in levels if t > low)):
        damped |= _stepless(prob >= threshold, level, interior, min_step * spread, band, window, wide, min_length,
                            means if dark_part else None)
    return _damp(prob, damped, low)


def _stepless(candidate: np.ndarray, level: np.ndarray, interior: np.ndarray, min_step: float,
              band: int, window: int, wide: float, min_length: float,
              local_level: np.ndarray | None = None) -> np.ndarray:
    """Pixels of the regions of ``candidate`` whose measurable boundary shows no step of
    ``min_step`` in ``level`` (along ``min_length`` px where ``candidate`` covers more
    than ``wide`` of the field; there, given ``local_level``, also the parts of a region
    unlike its darker stepped side; see :func:`stepped_probability`)."""
    labels, n = ndi.label(candidate)
    if n == 0:
        return np.zeros(candidate.shape, bool)
    inner = candidate & (ndi.distance_transform_edt(candidate) <= band) & interior
    outer = ~candidate & (ndi.distance_transform_edt(~candidate) <= band) & interior

    def box_sum(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a.astype(np.float32), -1, (window, window), normalize=False)

    n_inner, n_outer = box_sum(inner), box_sum(outer)
    measurable = (n_inner >= 2 * window) & (n_outer >= 2 * window) & inner
    inside = box_sum(level * inner) / np.maximum(n_inner, 1)
    outside = box_sum(level * outer) / np.maximum(n_outer, 1)
    hit = measurable & (np.abs(outside - inside) >= min_step)
    ring = np.bincount(labels[measurable], minlength=n + 1)[1:]  # measurable ring pixels per region
    stepped = np.bincount(labels[hit], minlength=n + 1)[1:]
    is_wide = candidate.mean() > wide
    if is_wide:  # the network flags most of the field: a step along a stretch
        needed = np.maximum(1.0, np.minimum(min_length * band, ring / 2))  # ring pixels
    else:
        needed = np.ones(n)
    fails = (stepped < needed) & (ring > 0)
    damped = np.concatenate([[False], fails])[labels]
    if is_wide and local_level is not None:
        for k in np.flatnonzero(~fails & (stepped > 0)) + 1:
            damped |= _unlike_dark_side(labels == k, hit, inside, outside, local_level, band, min_step)
    return damped


def _unlike_dark_side(region: np.ndarray, hit: np.ndarray, inside: np.ndarray, outside: np.ndarray,
                      local_level: np.ndarray, band: int, min_step: float) -> np.ndarray:
    """The pixels of ``region`` at the level of the ice around its stepped boundary, where
    the stepped side is darker than that ice (``stepped_probability(dark_part=True)``)."""
    stepped = hit & region
    dark, around = float(np.median(inside[stepped])), float(np.median(outside[stepped]))
    if dark >= around:
        return np.zeros(region.shape, bool)
    alike = region & (local_level < around - min_step / 2)  # darker than the ice by half a step
    parts, n = ndi.label(alike)
    keep = np.zeros(n + 1, bool)
    keep[parts[ndi.binary_dilation(stepped, iterations=band) & alike]] = True  # reaching the step
    if n:
        keep[1:] |= np.asarray(ndi.minimum(local_level, parts, np.arange(1, n + 1))) <= dark  # or a box as dark
    keep[0] = False
    return region & ~ndi.binary_dilation(keep[parts], iterations=band)  # with its rim
