"""The shipped cleaner on real micrographs, against the figures of issue 10 (slow).

EMPIAR-10017 (7 hand-labelled micrographs; the shipped model was fine-tuned on them, so
these are in-sample figures -- the leave-micrographs-out ones are in docs/clean.md and
``benchmarks/clean_real_validation.py --lomo``) and the CryoPPP validation micrographs
(``valid`` + ``test`` splits, never trained on). Targets from the issue; the ones the
shipped model does not meet yet are in ``test_targets_not_met_yet`` (strict xfail: it
fails once they are met, so that the mark is removed).
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
def empiar():
    model = BadRegionModel(device="cpu")
    return {item.name: evaluate_micrograph(probability(model, item.image, item.box_size), item.target, item.particles,
                                           item.box_size, DEFAULT_THRESHOLD) for item in load_empiar10017(MICROGRAPHS)}


@pytest.fixture(scope="module")
def cryoppp():
    model = BadRegionModel(device="cpu")
    return [(item, evaluate_micrograph(probability(model, item.image, item.box_size), np.zeros_like(item.target),
                                       item.particles, item.box_size, DEFAULT_THRESHOLD))
            for item in load_cryoppp(MICROGRAPHS, ("valid", "test"))]


def test_empiar10017_picks_on_good_ice_kept_and_deep_in_carbon_ice_removed(empiar):
    for name, r in empiar.items():
        assert r["good_kept"] >= 0.90, (name, r)
        if r["n_deep_bad"]:
            assert r["deep_bad_removed"] >= 0.90, (name, r)


def test_cryoppp_10028_particles_kept_and_clean_area(cryoppp):
    for item, r in cryoppp:
        if item.name.endswith("_10028"):
            assert r["good_kept"] >= 0.95 and r["area_flagged"] <= 0.05, (item.name, r)


@pytest.mark.xfail(strict=True, reason="issue 10 targets not met yet: pixel AUC of 15_07_41 (0.92); "
                   "EMPIAR-10059 micrographs flagged 16-23 % (docs/clean.md)")
def test_targets_not_met_yet(empiar, cryoppp):
    for name, r in empiar.items():
        if r["pixel_auc"] == r["pixel_auc"]:
            assert r["pixel_auc"] >= 0.95, (name, r)
    kept = sum(r["good_kept"] * r["n_good"] for _, r in cryoppp) / sum(r["n_good"] for _, r in cryoppp)
    assert kept >= 0.95
    assert all(r["area_flagged"] <= 0.05 for item, r in cryoppp if item.clean)
