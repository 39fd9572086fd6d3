"""Manual curation (pure functions): hand-worked A/C/S examples of rejection and merge."""

import numpy as np
import pytest

from scopeline.errors import ConfigError
from scopeline.miniscope.curation import Curation, add_merge, apply_curation, merge_rows, set_decision, undo_merge


def _units():
    # 3 units on a 1 x 4 image, 3 frames
    A = np.array([[[1.0, 0.5, 0, 0]], [[0, 0, 1.0, 0]], [[0, 0, 0.5, 1.0]]], np.float32)
    C = np.array([[0, 2, 0], [1, 0, 3], [0, 4, 2]], np.float32)
    S = np.array([[0, 2, 0], [1, 0, 2], [0, 4, 0]], np.float32)
    snr = np.array([5.0, 6.0, 7.0], np.float32)
    size = np.array([2, 1, 2], np.int64)
    return {"A": A, "C": C, "S": S, "snr": snr, "size_px": size}, [10, 11, 12]


def test_no_curation_keeps_everything():
    arrays, ids = _units()
    out = apply_curation(arrays, ids, Curation())
    assert out.unit_ids.tolist() == ids and out.sources == [[10], [11], [12]]
    for name in arrays:
        np.testing.assert_array_equal(out.arrays[name], arrays[name])


def test_rejection_removes_the_unit_from_every_array():
    arrays, ids = _units()
    out = apply_curation(arrays, ids, set_decision(Curation(), 11, "rejected"))
    assert out.unit_ids.tolist() == [10, 12]
    np.testing.assert_array_equal(out.arrays["A"], arrays["A"][[0, 2]])
    np.testing.assert_array_equal(out.arrays["C"], arrays["C"][[0, 2]])
    np.testing.assert_array_equal(out.arrays["S"], arrays["S"][[0, 2]])
    np.testing.assert_array_equal(out.arrays["snr"], [5.0, 7.0])
    back = apply_curation(arrays, ids, set_decision(set_decision(Curation(), 11, "rejected"), 11, "accepted"))
    assert back.unit_ids.tolist() == ids  # accepting again undoes it


def test_merge_rule_hand_worked():
    # units 11 and 12: w = max C = (3, 4); a = 3*[0,0,1,0] + 4*[0,0,.5,1] = [0,0,5,4] -> a_m = [0,0,1,.8]
    # k_i = <a_m, a_i>/<a_m, a_m>: <a_m,a_m> = 1.64; k_11 = 1/1.64, k_12 = (0.5+0.8)/1.64 = 1.3/1.64
    arrays, ids = _units()
    out = apply_curation(arrays, ids, add_merge(Curation(), [12, 11]))
    assert out.unit_ids.tolist() == [10, 11] and out.sources == [[10], [11, 12]]
    np.testing.assert_allclose(out.arrays["A"][1], [[0, 0, 1, 0.8]], rtol=1e-6)
    k = np.array([1 / 1.64, 1.3 / 1.64])
    np.testing.assert_allclose(out.arrays["C"][1], k @ arrays["C"][1:], rtol=1e-6)  # [1/1.64, 5.2/1.64, 5.6/1.64]
    np.testing.assert_allclose(out.arrays["C"][1], [0.609756, 3.170732, 3.414634], rtol=1e-5)
    np.testing.assert_allclose(out.arrays["S"][1], k @ arrays["S"][1:], rtol=1e-6)
    assert out.arrays["size_px"][1] == 2  # pixels above 10 % of max: 1 and 0.8
    assert out.arrays["snr"][1] == 7.0  # of the brighter member (w * max a: 4 > 3)
    np.testing.assert_array_equal(out.arrays["C"][0], arrays["C"][0])  # the others untouched


def test_merge_of_units_sharing_a_time_course_is_exact():
    # one cell split in two footprints: a1 c and a2 c with the same c -> the merged a_m c_m = (a1 + a2) c
    a = np.array([[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]])
    c = np.array([[0.0, 1.0, 3.0, 1.0]] * 2)
    a_m, merged, _ = merge_rows(a, {"C": c})
    np.testing.assert_allclose(np.outer(a_m, merged["C"]), a.T @ c, rtol=1e-6)
    assert a_m.max() == pytest.approx(1.0)


def test_rejecting_a_member_drops_the_merged_unit_and_merges_chain():
    arrays, ids = _units()
    cur = add_merge(add_merge(Curation(), [10, 11]), [11, 12])
    assert cur.merges == [[10, 11, 12]]
    assert apply_curation(arrays, ids, set_decision(cur, 12, "rejected")).unit_ids.tolist() == []
    assert undo_merge(cur, 11).merges == []


def test_bad_curations_are_refused():
    arrays, ids = _units()
    with pytest.raises(ConfigError, match="unit 99 is not in this result"):
        apply_curation(arrays, ids, set_decision(Curation(), 99, "rejected"))
    with pytest.raises(ValueError, match="two merge groups"):
        Curation(merges=[[10, 11], [11, 12]])
    with pytest.raises(ConfigError, match="two different units"):
        add_merge(Curation(), [10, 10])
    with pytest.raises(ConfigError, match="decision"):
        set_decision(Curation(), 10, "maybe")
