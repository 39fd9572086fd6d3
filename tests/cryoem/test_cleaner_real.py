"""The shipped cleaner on real micrographs, against the figures of issue 10 (slow).

EMPIAR-10017 (7 hand-labelled micrographs; the shipped model was fine-tuned on them, so
these are in-sample figures -- the leave-micrographs-out ones are in docs/clean.md and
``benchmarks/clean_real_validation.py --lomo``) and the CryoPPP validation micrographs
(``valid`` + ``test`` splits, never trained on).
"""

from __future__ import annotations

import numpy as np
import pytest

from scopeline.cryoem.cleaner.clean import DEFAULT_THRESHOLD
from scopeline.cryoem.cleaner.predict import BadRegionModel
from scopeline.cryoem.cleaner.realdata import load_cryoppp, load_empiar10017
from scopeline.cryoem.cleaner.realeval import evaluate_micrograph, probability
from tests.shared_data import SHARED

MICROGRAPHS = SHARED / "data" / "micrographs"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MICROGRAPHS / "empiar10017").is_dir(), reason="shared micrographs not present"),
]


@pytest.fixture(scope="module")
def model():
    return BadRegionModel(device="cpu")


def test_empiar10017_per_micrograph(model):
    for item in load_empiar10017(MICROGRAPHS):
        r = evaluate_micrograph(probability(model, item.image, item.box_size), item.target, item.particles,
                                item.box_size, DEFAULT_THRESHOLD)
        assert r["good_kept"] >= 0.90, (item.name, r)
        if r["n_deep_bad"]:
            assert r["deep_bad_removed"] >= 0.90, (item.name, r)
        if r["pixel_auc"] == r["pixel_auc"]:
            assert r["pixel_auc"] >= 0.95, (item.name, r)


def test_cryoppp_validation_particles_kept_and_clean_area(model):
    kept, total = 0.0, 0
    for item in load_cryoppp(MICROGRAPHS, ("valid", "test")):
        r = evaluate_micrograph(probability(model, item.image, item.box_size), np.zeros_like(item.target),
                                item.particles, item.box_size, DEFAULT_THRESHOLD)
        kept += r["good_kept"] * r["n_good"]
        total += r["n_good"]
        if item.clean:
            assert r["area_flagged"] <= 0.05, (item.name, r)
    assert kept / total >= 0.95
