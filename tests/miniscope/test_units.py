import dask.array as da
import numpy as np

from scopeline.miniscope.units import bad_units, extract_traces, merge_temporal, normalize_units


def _scene(T=300, seed=0):
    rng = np.random.default_rng(seed)
    A = np.zeros((2, 16, 16), np.float32)
    A[0, 2:6, 2:6] = 1.0
    A[1, 9:14, 9:14] = 0.5
    C = rng.random((2, T)).astype(np.float32) * [[3.0], [7.0]]
    return A, C, np.einsum("nhw,nt->thw", A, C)


def test_extract_traces_recovers_disjoint_traces():
    A, C, video = _scene()
    traces = extract_traces(da.from_array(video, chunks=(64, -1, -1)), A, batch_size=1, frame_chunk=100)
    assert np.allclose(traces, C, atol=1e-5)


def test_normalisation_keeps_products():
    A, C, _ = _scene()
    for method, expected in [("max", 1.0), ("l1", 1.0), ("l2", 1.0)]:
        An, Cn = normalize_units(A, C, method)
        flat = An.reshape(2, -1)
        measure = {"max": flat.max(1), "l1": np.abs(flat).sum(1), "l2": np.sqrt((flat**2).sum(1))}[method]
        assert np.allclose(measure, expected)
        assert np.allclose(np.einsum("nhw,nt->nthw", An, Cn), np.einsum("nhw,nt->nthw", A, C), atol=1e-5)


def test_bad_units_reasons():
    A = np.ones((4, 3, 3), np.float32)
    C = np.random.default_rng(0).random((4, 20)).astype(np.float32)
    A[0, 0, 0] = np.nan
    A[1] = 0
    C[2] = 5.0
    assert bad_units(A, C) == {0: "NaN", 1: "empty", 2: "flat"}


def test_temporal_merge_joins_split_cell_only():
    rng = np.random.default_rng(1)
    trace = rng.random(500) ** 5
    A = np.zeros((3, 20, 20), np.float32)
    A[0, 5:10, 5:9] = 1  # left half of a cell
    A[1, 5:10, 8:12] = 1  # right half, overlapping one column
    A[2, 14:18, 14:18] = 1  # another cell
    C = np.stack([trace, 0.5 * trace + 0.01 * rng.random(500), rng.random(500) ** 5]).astype(np.float32)
    A2, C2, groups = merge_temporal(A, C, corr_threshold=0.75, overlap_threshold=0.2)
    assert groups == [[0, 1], [2]]
    merged = np.einsum("hw,t->thw", A2[0], C2[0])
    original = np.einsum("nhw,nt->thw", A[:2], C[:2])
    assert np.linalg.norm(merged - original) < 0.05 * np.linalg.norm(original)


def test_sparse_footprints_give_the_same_units_as_dense():
    from scipy import sparse

    rng = np.random.default_rng(1)
    trace = rng.random(500) ** 5
    A = np.zeros((3, 20, 20), np.float32)
    A[0, 5:10, 5:9] = 1
    A[1, 5:10, 8:12] = 2
    A[2, 14:18, 14:18] = 1
    C = np.stack([trace, 0.5 * trace + 0.01 * rng.random(500), rng.random(500) ** 5]).astype(np.float32)
    video = np.einsum("nhw,nt->thw", A, C)
    As = sparse.csr_matrix(A.reshape(3, -1))
    traces = extract_traces(da.from_array(video, chunks=(64, -1, -1)), As, batch_size=2)
    assert np.allclose(traces, extract_traces(da.from_array(video, chunks=(64, -1, -1)), A))
    An, Cn = normalize_units(As, traces, "l2")
    Ad, Cd = normalize_units(A, traces, "l2")
    assert np.allclose(An.toarray(), Ad.reshape(3, -1)) and np.allclose(Cn, Cd)
    A2s, C2s, groups_s = merge_temporal(An, Cn, 0.75, 0.2)
    A2d, C2d, groups_d = merge_temporal(Ad, Cd, 0.75, 0.2)
    assert groups_s == groups_d == [[0, 1], [2]]
    assert np.allclose(A2s.toarray(), A2d.reshape(2, -1), atol=1e-6) and np.allclose(C2s, C2d, atol=1e-5)
    assert bad_units(As, C) == bad_units(A, C) == {}


def test_repeated_temporal_merge_joins_a_piece_matching_only_the_merged_unit():
    """Three overlapping pieces of one cell: 0 and 1 with little noise, 2 with much. The
    merged 0+1 trace averages their noise, so 2 correlates with it more than with either;
    with a threshold between the two correlations one round leaves 2 alone, repeated
    rounds merge it too and then stop."""
    from scopeline.miniscope.units import merge_temporal_repeated

    rng = np.random.default_rng(4)
    T = 3000
    spikes = (rng.random(T) < 0.02).astype(float)
    cell = np.convolve(spikes, np.exp(-np.arange(40) / 8))[:T]
    C = np.stack([cell + s * rng.standard_normal(T) for s in (0.2, 0.2, 0.3)]).astype(np.float32)
    A = np.zeros((3, 20, 20), np.float32)
    A[0, 4:10, 4:10] = A[1, 6:12, 6:12] = A[2, 5:11, 5:11] = 1
    pieces = np.corrcoef(C)
    _, C1, _ = merge_temporal(A[:2], C[:2], 0.0, 0.2)
    to_merged = np.corrcoef(C1[0], C[2])[0, 1]
    assert to_merged > max(pieces[2, 0], pieces[2, 1]) + 0.03 and pieces[0, 1] > to_merged
    threshold = (to_merged + max(pieces[2, 0], pieces[2, 1])) / 2
    _, _, groups = merge_temporal(A, C, threshold, 0.2)
    assert groups == [[0, 1], [2]]
    A2, C2, merges = merge_temporal_repeated(A, C, threshold, 0.2, max_rounds=10)
    assert merges == [1, 1, 0] and A2.shape[0] == 1
    _, _, once = merge_temporal_repeated(A, C, threshold, 0.2, max_rounds=1)
    assert once == [1]
