"""The shipped cleaner on real micrographs, against the figures of issue 10 (slow).

EMPIAR-10017 (7 hand-labelled micrographs; the shipped model was fine-tuned on them, so
these are in-sample figures -- the leave-one-micrograph-out ones are in docs/clean.md,
from ``benchmarks/clean_lomo.py`` + ``benchmarks/clean_real_validation.py --lomo``) and
the CryoPPP validation micrographs (``valid`` + ``test`` splits, never trained on), as
published and in the looks of the robustness table. Targets from the issue; one test per
target, and a target the shipped model does not meet yet is a strict xfail with the
measured figure (it fails once the target is met, so that the mark is removed).
"""

from __future__ import annotations

import pytest

from scopeline.cryoem.cleaner.clean import DEFAULT_THRESHOLD
from scopeline.cryoem.cleaner.predict import BadRegionModel
from scopeline.cryoem.cleaner.realdata import load_cryoppp, load_empiar10017
from scopeline.cryoem.cleaner.realeval import LOOKS, evaluate_look, evaluate_micrograph, pooled_kept, probability
from tests.shared_data import SHARED

MICROGRAPHS = SHARED / "data" / "micrographs"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MICROGRAPHS / "empiar10017").is_dir(), reason="shared micrographs not present"),
]


@pytest.fixture(scope="module")
def model():
    return BadRegionModel(device="cpu")


@pytest.fixture(scope="module")
def empiar(model):
    return {item.name: evaluate_micrograph(probability(model, item.image, item.box_size), item.target, item.particles,
                                           item.box_size, DEFAULT_THRESHOLD) for item in load_empiar10017(MICROGRAPHS)}


@pytest.fixture(scope="module")
def cryoppp_items():
    return load_cryoppp(MICROGRAPHS, ("valid", "test"))


@pytest.fixture(scope="module")
def looks(model, cryoppp_items):
    return {look: [evaluate_look(model, item, look, DEFAULT_THRESHOLD) for item in cryoppp_items] for look in LOOKS}


def test_empiar10017_particles_on_good_ice_kept(empiar):
    for name, r in empiar.items():
        assert r["good_kept"] >= 0.90, (name, r)


def test_empiar10017_picks_deep_in_carbon_ice_removed(empiar):
    for name, r in empiar.items():
        if r["n_deep_bad"]:
            assert r["deep_bad_removed"] >= 0.90, (name, r)


def test_empiar10017_pixel_auc(empiar):
    for name, r in empiar.items():
        if r["pixel_auc"] == r["pixel_auc"]:  # micrographs with carbon / ice
            assert r["pixel_auc"] >= 0.95, (name, r)


def test_cryoppp_particles_kept(looks):
    assert pooled_kept(looks["as published"]) >= 0.95


def test_cryoppp_clean_area_flagged(looks, cryoppp_items):
    for item, r in zip(cryoppp_items, looks["as published"]):
        if item.clean:
            assert r["area_flagged"] <= 0.05, (item.name, r)


def test_cryoppp_10028_particles_kept_and_clean_area(looks, cryoppp_items):
    for item, r in zip(cryoppp_items, looks["as published"]):
        if item.name.endswith("_10028"):
            assert r["good_kept"] >= 0.95 and r["area_flagged"] <= 0.05, (item.name, r)


@pytest.mark.parametrize("look", ["as published", "denoised+CLAHE"])
def test_cryoppp_clean_training_micrographs_mostly_unflagged(model, look):
    # In-sample for the network, but not for the image-step rule: before session 8 the
    # rule let a false alarm over 83-94 % of stack_0004 (EMPIAR-10059) through on one
    # marginal window of its boundary (docs/clean.md, "Session 8").
    for item in load_cryoppp(MICROGRAPHS, ("train",)):
        if item.clean:
            r = evaluate_look(model, item, look, DEFAULT_THRESHOLD)
            assert r["area_flagged"] <= 0.05 and r["good_kept"] >= 0.95, (item.name, look, r)


@pytest.mark.parametrize("look", [look for look in LOOKS if look != "as published"])
def test_robustness_good_kept(looks, look):
    assert pooled_kept(looks[look]) >= 0.90, look
