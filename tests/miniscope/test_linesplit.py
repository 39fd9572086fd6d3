import numpy as np

from scopeline.miniscope.linesplit import detect_left_edge, detect_robust, left_edge_means


def test_left_edge_means_hand_case():
    frames = np.zeros((2, 4, 30), np.uint8)
    frames[1, :, :20] = 10
    frames[1, :, 20:] = 200
    assert left_edge_means(frames, 20).tolist() == [0.0, 10.0]


def test_guide_rule_flags_clean_recordings_robust_rule_does_not():
    rng = np.random.default_rng(0)
    clean = 5 + rng.normal(0, 0.2, 2000) + np.linspace(0, 2, 2000)  # slow brightening
    assert len(detect_left_edge(clean, 2.0)[0]) >= 10  # the guide rule: false alarms
    assert len(detect_robust(clean, 8.0)[0]) == 0


def test_robust_rule_finds_injected_frames():
    rng = np.random.default_rng(1)
    edge = 5 + rng.normal(0, 0.2, 1000) + 2 * np.sin(np.arange(1000) / 150)
    bad = np.sort(rng.choice(1000, 20, replace=False))
    edge[bad] += rng.uniform(5, 40, 20)
    found, threshold = detect_robust(edge, 8.0)
    assert found.tolist() == bad.tolist()
    assert threshold.shape == edge.shape
