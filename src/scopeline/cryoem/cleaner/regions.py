"""Bad regions need one confident pixel: hysteresis on the bad-region probability.

On real micrographs the network's false alarms are patches of moderate probability
(0.4-0.8) on clean ice: particle-poor or thicker, darker ice that looks locally like
carbon film (EMPIAR-10059's darker corners, EMPIAR-10017 17_02_43). Real carbon and
contamination carry such moderate probability too, deep inside, but always in one
connected region with pixels the network is sure about (near the film's edge, the
contamination's rim). A region therefore counts as bad only where it holds such a pixel:
the two-threshold rule of Canny's edge detector applied to regions (Canny 1986,
doi:10.1109/TPAMI.1986.4767851; ``skimage.filters.apply_hysteresis_threshold``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

REGION_LOW = 0.35  # a pixel is part of a candidate region at this probability (= 1 - the default threshold 0.65)
REGION_SEED = 0.8  # a candidate region is bad only if it holds a pixel at least this probable


def seeded_probability(prob: np.ndarray, low: float = REGION_LOW, seed: float = REGION_SEED) -> np.ndarray:
    """Bad-region probability with candidate regions that hold no confident pixel damped.

    Parameters
    ----------
    prob : ndarray
        Bad-region probability (2-D, model scale).
    low : float
        Pixels with ``prob >= low`` form candidate regions (4-connected).
    seed : float
        A candidate region is kept as it is if some pixel in it has ``prob >= seed``;
        elsewhere the probability is capped at ``low / 2``, so such a region alone never
        removes a pick at thresholds down to ``1 - low / 2``. ``seed <= low`` (e.g. 0)
        turns the rule off.

    Returns
    -------
    ndarray
        float32 probability of the same shape.
    """
    prob = np.asarray(prob, np.float32)
    if seed <= low or prob.size == 0:
        return prob
    labels, n = ndi.label(prob >= low)  # 4-connected, as skimage.filters.apply_hysteresis_threshold
    seeded = np.zeros(n + 1, bool)
    seeded[np.unique(labels[prob >= seed])] = True
    seeded[0] = True  # below ``low``: unchanged
    return np.where(seeded[labels], prob, np.minimum(prob, np.float32(low / 2))).astype(np.float32)
