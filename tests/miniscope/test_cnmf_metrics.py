"""Footprint matching, F1 and trace correlations on hand-made cases."""

import numpy as np

from scopeline.miniscope.cnmf.metrics import accuracy_summary, bin_frames, match_footprints


def _blobs(centres, shape=(20, 20)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.array([np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 4.0) for y, x in centres])


def test_permuted_footprints_are_matched_to_their_truth():
    true = _blobs([(3, 3), (10, 10), (16, 5)])
    found = true[[2, 0, 1]]
    m = match_footprints(found, true)
    assert dict(zip(m.found.tolist(), m.true.tolist())) == {0: 2, 1: 0, 2: 1}
    assert m.f1 == 1.0


def test_f1_with_one_false_and_one_missed():
    true = _blobs([(3, 3), (10, 10), (16, 5)])
    found = _blobs([(3, 3), (10, 10), (5, 16)])  # third is elsewhere
    m = match_footprints(found, true)
    assert len(m.found) == 2
    assert np.isclose(m.f1, 2 * 2 / 6)
    assert np.isclose(m.precision, 2 / 3) and np.isclose(m.recall, 2 / 3)


def test_bin_frames_sums_and_drops_partial_bin():
    np.testing.assert_array_equal(bin_frames(np.arange(11.0), 5), [10.0, 35.0])


def test_accuracy_summary_correlations():
    rng = np.random.default_rng(0)
    A = _blobs([(3, 3), (12, 12)])
    C = rng.random((2, 100))
    S = (rng.random((2, 100)) < 0.1).astype(float)
    out = accuracy_summary(A[::-1], C[::-1], S[::-1], A, C, S)
    assert out["f1"] == 1.0 and np.isclose(out["median_corr_C"], 1.0) and np.isclose(out["median_corr_S"], 1.0)
    shuffled = accuracy_summary(A, C[::-1], S, A, C, S)
    assert shuffled["median_corr_C"] < 0.5


def test_iou_matching_hand_case():
    from scopeline.miniscope.cnmf.metrics import footprint_iou

    true = np.zeros((2, 10, 10))
    true[0, 0:4, 0:4] = 1  # 16 px
    true[1, 5:9, 5:9] = 1
    found = np.zeros((2, 10, 10))
    found[0, 0:4, 1:5] = 1  # shares 12 of 20 px with true 0: IoU 0.6
    found[1, 5:9, 7:10] = 0.5  # 12 px, 8 shared with true 1, union 20: IoU 0.4
    iou = footprint_iou(found, true)
    assert np.isclose(iou[0, 0], 12 / 20) and np.isclose(iou[1, 1], 8 / 20) and iou[0, 1] == 0
    m = match_footprints(found, true, 0.5, metric="iou")
    assert m.found.tolist() == [0] and m.true.tolist() == [0] and np.isclose(m.f1, 0.5)
