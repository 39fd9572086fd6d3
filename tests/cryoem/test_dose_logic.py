"""Dose decisions worked by hand."""

import math

import pytest

from scopeline.cryoem.dose import (
    RunningMedian,
    choose_reference,
    decide_doses,
    dose_statistics,
    faulty_windows,
    frame_dose,
    percent_difference,
    sampled_frame_indices,
    within_band,
)


def test_frame_dose_is_mean_over_pixel_area():
    # 4 electrons per pixel at 2 Å/px -> 1 e/Å²
    assert frame_dose(4.0, 2.0) == pytest.approx(1.0)
    assert frame_dose(1.0, 0.5) == pytest.approx(4.0)


def test_sampled_frames_first_middle_last():
    assert sampled_frame_indices(40) == [0, 20, 39]
    assert sampled_frame_indices(2) == [0, 1]
    assert sampled_frame_indices(1) == [0]
    with pytest.raises(ValueError):
        sampled_frame_indices(0)


def test_dose_statistics_by_hand():
    s = dose_statistics([1.0, 2.0, 3.0])
    assert s["mean_dose"] == 2.0
    assert s["std_dose"] == pytest.approx(math.sqrt(2 / 3))
    assert (s["min_dose"], s["max_dose"]) == (1.0, 3.0)
    assert s["trend_percent"] == pytest.approx(100.0)


def test_running_median_matches_sorting():
    import numpy as np

    rng = np.random.default_rng(0)
    values = rng.normal(size=101)
    rm = RunningMedian()
    for i, v in enumerate(values, start=1):
        rm.add(v)
        assert rm.median() == pytest.approx(float(np.median(values[:i])))


def test_band_is_inclusive():
    assert within_band(percent_difference(1.05, 1.0), 5.0)
    assert within_band(percent_difference(0.95, 1.0), 5.0)
    assert not within_band(percent_difference(1.0501, 1.0), 5.0)


def test_reference_metadata_used_when_within_two_percent():
    assert choose_reference(1.01, 1.0, 2.0)[:2] == (1.0, "metadata")
    ref, source, message = choose_reference(1.3, 1.0, 2.0)
    assert (ref, source) == (1.3, "experimental") and "does not match" in message
    assert choose_reference(1.3, None, 2.0)[:2] == (1.3, "experimental")


def test_decisions_wait_for_samples_then_replay():
    doses = [1.0, 1.02, 0.98, 1.2]
    # Not closed, 3 samples: the first three wait until the third arrives.
    r = decide_doses(doses[:2], None, samples=3, max_diff=5, closed=False)
    assert [d.status for d in r.decisions] == ["pending", "pending"]
    r = decide_doses(doses, None, samples=3, max_diff=5, closed=False)
    assert [d.status for d in r.decisions] == ["accepted", "accepted", "accepted", "discarded"]
    # Running median after 4 values: (1.0 + 1.02) / 2 = 1.01 ; 1.2 is +18.8 %.
    assert r.decisions[3].reference == pytest.approx(1.01)
    assert r.decisions[3].diff_percent == pytest.approx((1.2 - 1.01) / 1.01 * 100)
    assert r.reference == pytest.approx(1.01) and r.source == "experimental"


def test_closed_input_with_few_movies_uses_all_of_them():
    r = decide_doses([1.0, 2.0], None, samples=20, max_diff=5, closed=True)
    assert r.reference == pytest.approx(1.5)
    assert [d.status for d in r.decisions] == ["discarded", "discarded"]


def test_metadata_reference_stays_fixed():
    r = decide_doses([1.0, 1.01, 0.99, 1.5, 1.5, 1.5], 1.0, samples=3, max_diff=5)
    assert r.source == "metadata"
    assert all(d.reference == 1.0 for d in r.decisions)
    assert [d.status for d in r.decisions][3:] == ["discarded"] * 3


def test_faulty_windows_strictly_above_limit():
    # window 10, 3 outside = 30 % -> not above 30 %; 4 outside -> warn
    w = faulty_windows([True] * 3 + [False] * 7 + [True] * 4 + [False] * 6, 10, 30.0)
    assert [(x.first, x.last, x.n_outside) for x in w] == [(11, 20, 4)]
    # a trailing partial window counts only once closed and at least half full
    assert faulty_windows([True] * 5, 10, 30.0, closed=False) == []
    assert len(faulty_windows([True] * 5, 10, 30.0, closed=True)) == 1
    assert faulty_windows([True] * 4, 10, 30.0, closed=True) == []
