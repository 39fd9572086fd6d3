"""Accuracy targets of the shipped model on held-out simulated micrographs (seeds never
used in training or for choosing the default threshold)."""

from __future__ import annotations

import numpy as np
import pytest

from scopeline.cryoem.cleaner.clean import DEFAULT_THRESHOLD
from scopeline.cryoem.cleaner.evaluate import collect, roc_auc, summarise
from scopeline.cryoem.cleaner.predict import BadRegionModel
from scopeline.cryoem.cleaner.train import HELD_OUT_SEED


def test_roc_auc_hand_values():
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    # one positive ranked below one of two negatives: 3 of 4 pairs ordered
    assert roc_auc(np.array([0.1, 0.5, 0.4, 0.9]), np.array([0, 0, 1, 1])) == 0.75
    assert roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="simulated bad removed 82.5 % < 95 % (30 held-out micrographs; AUC 0.981, good "
                   "kept 99.7 % met): 435 of the 3,260 bad picks are on one all-carbon micrograph with no edge for the "
                   "image-step rule (95.2 % removed without it, at most 86.7 % with it), docs/clean.md session 9")
def test_held_out_accuracy_targets():
    data = collect(BadRegionModel(device="cpu"), range(HELD_OUT_SEED, HELD_OUT_SEED + 30), size=384)
    result = summarise(data, DEFAULT_THRESHOLD)
    assert result["pixel_auc"] >= 0.97, result
    assert result["bad_removed"] >= 0.95, result
    assert result["good_kept"] >= 0.95, result



SAMPLING_SEEDS = range(HELD_OUT_SEED, HELD_OUT_SEED + 30)


@pytest.fixture(scope="module")
def at_model_scale():
    return summarise(collect(BadRegionModel(device="cpu"), SAMPLING_SEEDS, size=384, sampling=1.0), DEFAULT_THRESHOLD)


@pytest.mark.slow
@pytest.mark.parametrize("sampling", [
    pytest.param(0.5, marks=pytest.mark.xfail(strict=True, reason="bad removed 65.5 % vs 77.2 % at model scale: the "
                                              "box (6.5-10 px) is under the model's 16 px and the micrograph is not "
                                              "upsampled (upsampling measured worse, preprocess.downsample_factor)")),
    2.0,
])
def test_the_same_decisions_at_another_pixel_size(sampling, at_model_scale):
    """Issue 10: the same decisions at any pixel size (the box sets the scale), good kept >=
    90 % in the robustness table. The held-out simulations are recorded at half or twice
    the pixel size, with that pixel size's shot noise (``synth.simulate_micrograph``), and
    scaled by their box as ``scopeline clean`` does. Bad picks removed may not fall more than
    5 points below the same micrographs at model scale: feeding the finer micrographs
    without scaling by the box keeps 99.9 % of the good picks but removes 60.2 % of the bad
    ones (77.2 % at model scale), which this catches."""
    data = collect(BadRegionModel(device="cpu"), SAMPLING_SEEDS, size=384, sampling=sampling)
    result = summarise(data, DEFAULT_THRESHOLD)
    assert result["good_kept"] >= 0.90, result
    assert result["bad_removed"] >= at_model_scale["bad_removed"] - 0.05, (result, at_model_scale)
