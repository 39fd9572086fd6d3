"""YrA, chunked temporal update, suggestions and filters."""

import numpy as np
import pytest
from scipy import sparse

from scopeline.miniscope.cnmf import temporal
from scopeline.miniscope.cnmf.deconvolution import ar_from_roots, calcium_from_spikes, deconvolve

from .cnmf_synthetic import make_cnmf_movie


def _projection(data):
    A = sparse.csr_matrix(data["A"].reshape(len(data["A"]), -1))
    return A, temporal.project_movie(data["Y"], A, frame_chunk=300)


def test_project_movie_matches_dense_product():
    data = make_cnmf_movie(h=24, w=24, n=3, T=400)
    A, P = _projection(data)
    expected = A @ data["Y"].reshape(len(data["Y"]), -1).T
    np.testing.assert_allclose(P, expected, rtol=1e-4, atol=1e-3)


def test_yra_of_noise_free_overlapping_units_is_their_trace():
    data = make_cnmf_movie(h=24, w=24, n=3, T=300, noise=0.0, min_distance=4.0, background=False)
    A, P = _projection(data)
    overlap = (A @ A.T).toarray()
    assert overlap[np.triu_indices(3, 1)].max() > 0.2  # the units do overlap
    YrA = temporal.yra(P, A, data["C"])
    np.testing.assert_allclose(YrA, data["C"], atol=1e-3)
    # with C = 0 the plain projection mixes neighbours in: YrA then differs
    assert np.abs(temporal.yra(P, A, np.zeros_like(data["C"])) - data["C"]).max() > 0.1


def test_yra_removes_background():
    data = make_cnmf_movie(h=24, w=24, n=3, T=300, noise=0.0)
    A, P = _projection(data)
    YrA = temporal.yra(P, A, data["C"], data["b"].reshape(1, -1), data["f"][None])
    np.testing.assert_allclose(YrA, data["C"], atol=1e-3)


@pytest.mark.parametrize("n,chunk,overlap", [(100, 200, 10), (1000, 300, 40), (12000, 5000, 100)])
def test_chunk_windows_partition_the_trace(n, chunk, overlap):
    windows = temporal.chunk_bounds(n, chunk, overlap)
    kept = np.concatenate([np.arange(a, b) for _, _, a, b in windows])
    np.testing.assert_array_equal(kept, np.arange(n))
    for start, stop, keep_from, keep_to in windows:
        assert stop - start <= chunk
        assert keep_from == 0 or keep_from - start >= overlap // 2
        assert keep_to == n or stop - keep_to >= overlap // 2


def test_chunked_update_matches_whole_trace_solution():
    rng = np.random.default_rng(4)
    g = ar_from_roots([0.95, 0.6])
    s = (rng.random(3000) < 0.01) * rng.uniform(0.5, 2, 3000)  # sparse, as estimate_baseline assumes
    y = calcium_from_spikes(s, g) + 0.2 * rng.standard_normal(3000) + 1.0
    settings = temporal.TemporalSettings(2, 1.0, 0.0)
    chunked = temporal.update_trace(y, g, settings, chunk=700, overlap=100)
    whole = temporal.update_trace(y, g, settings, chunk=5000, overlap=100)
    assert chunked.converged and whole.converged
    assert np.corrcoef(chunked.c, whole.c)[0, 1] > 0.999
    assert abs(whole.baseline - 1.0) < 0.5 * 0.2
    assert np.corrcoef(whole.c, calcium_from_spikes(s, g))[0, 1] > 0.97


def test_update_trace_equals_deconvolution_with_its_coefficients():
    rng = np.random.default_rng(5)
    g = ar_from_roots([0.9])
    y = calcium_from_spikes((rng.random(800) < 0.05) * 1.0, g) + 0.1 * rng.standard_normal(800)
    unit = temporal.update_trace(y, g, temporal.TemporalSettings(1, 2.0, 0.0), chunk=5000, overlap=100)
    direct = deconvolve(y - temporal.estimate_baseline(y, unit.noise), g, 2.0 * unit.noise)
    np.testing.assert_allclose(unit.c, direct.c, atol=2e-3 * y.max())


def test_zero_threshold_removes_small_spikes():
    rng = np.random.default_rng(6)
    g = ar_from_roots([0.95, 0.6])
    y = calcium_from_spikes((rng.random(1500) < 0.03) * 1.5, g) + 0.2 * rng.standard_normal(1500)
    loose = temporal.update_trace(y, g, temporal.TemporalSettings(2, 0.2, 0.0), 5000, 100)
    strict = temporal.update_trace(y, g, temporal.TemporalSettings(2, 0.2, 2.0), 5000, 100)
    assert np.count_nonzero(strict.s) < np.count_nonzero(loose.s)
    assert strict.s[strict.s > 0].min() >= 2.0 * strict.noise


def test_suggested_order_follows_the_kernel():
    rng = np.random.default_rng(7)
    S = (rng.random((6, 4000)) < 0.03) * rng.uniform(0.5, 2, (6, 4000))
    default = temporal.TemporalSettings(1, 1.0, 0.0)
    for roots, order in (([0.95, 0.7], 2), ([0.9], 1)):
        g = ar_from_roots(roots)
        YrA = np.array([calcium_from_spikes(s, g) for s in S]) + 0.1 * rng.standard_normal(S.shape)
        suggested, evidence = temporal.suggest_temporal(YrA, default)
        assert suggested.ar_order == order, evidence


def test_filter_reasons():
    C = np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 2.0, 0.0]])
    S = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    A = sparse.csr_matrix(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))
    reasons = temporal.temporal_filter_reasons(C, S, A, np.array([True, True, False]), 1e-6, 1e-6, 1e-6)
    assert reasons[0] == ""
    assert "spike sum" in reasons[1] and "calcium variance" in reasons[1]
    assert "did not converge" in reasons[2] and "spatial sum" in reasons[2]


def test_update_traces_with_dask_equals_serial():
    data = make_cnmf_movie(h=32, w=32, n=4, T=600)
    settings = temporal.TemporalSettings(2, 1.0, 0.0)
    G = temporal.estimate_kernels(data["C"], 2)
    together = temporal.update_traces(data["C"], G, settings, 5000, 100, batch=3)
    alone = [temporal.update_trace(c, g, settings, 5000, 100) for c, g in zip(data["C"], G)]
    for a, b in zip(together, alone):
        np.testing.assert_array_equal(a.c, b.c)


def test_decay_time_and_shared_kernel():
    g_fast, g_slow = ar_from_roots([0.9, 0.3]), ar_from_roots([0.99, 0.3])
    np.testing.assert_allclose(temporal.decay_time(np.array([g_fast, g_slow]), fps=10.0),
                               [-1 / (10 * np.log(0.9)), -1 / (10 * np.log(0.99))], rtol=1e-9)
    shared = temporal.shared_kernel(np.array([ar_from_roots([0.9, 0.3]), ar_from_roots([0.8, 0.2]),
                                              ar_from_roots([0.85, 0.5])]))
    np.testing.assert_allclose(np.sort(np.abs(np.roots(np.r_[1, -shared]))), [0.3, 0.85])


def test_slow_units_are_filtered():
    C = np.ones((2, 5)) * np.arange(5)
    reasons = temporal.temporal_filter_reasons(C, C, sparse.csr_matrix(np.ones((2, 2))), np.array([True, True]),
                                               1e-6, 1e-6, 1e-6, np.array([0.6, 9.0]), 5.0)
    assert reasons[0] == "" and "slow drift" in reasons[1]


def test_background_components_and_sampling_pass():
    data = make_cnmf_movie(h=32, w=32, n=3, T=500, noise=0.05)
    covered = data["A"].max(axis=0) > 0
    pixels = temporal.background_pixels(covered, 300)
    assert not covered.ravel()[pixels].any() and len(pixels) == 300
    X = data["Y"].reshape(500, -1)[:, pixels]
    F = temporal.background_components(X, 1)
    assert abs(np.corrcoef(F[0], data["f"])[0, 1]) > 0.99
    A = sparse.csr_matrix(data["A"].reshape(3, -1))
    P, sample = temporal.project_and_sample(data["Y"], A, pixels, frame_chunk=128)
    Y2 = data["Y"].reshape(500, -1).astype(np.float64)
    np.testing.assert_allclose(P, A @ Y2.T, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(sample, data["Y"].reshape(500, -1)[:, pixels])


def test_movie_pass_dense_rows_reference_and_float16_store():
    data = make_cnmf_movie(h=26, w=28, n=3, T=260, noise=0.1, min_distance=6.0)
    Y16 = data["Y"].astype(np.float16)
    Y = Y16.astype(np.float64).reshape(260, -1)
    A = sparse.csr_matrix(data["A"].reshape(3, -1))
    dense = np.vstack([data["b"].ravel(), np.ones(26 * 28)])
    frames = np.array([0, 5, 99, 100, 259])
    result = temporal.movie_pass(Y16, A, frame_chunk=100, dense=dense, pixels=np.array([3, 50]),
                                 check_rows=np.array([0, 2]), check_frames=frames)
    np.testing.assert_allclose(result.projection, np.vstack([A @ Y.T, dense @ Y.T]), rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(result.samples, Y[:, [3, 50]].astype(np.float32))
    np.testing.assert_allclose(result.reference, (A[[0, 2]] @ Y[frames].T), rtol=1e-10)


def test_movie_pass_replaces_non_finite_values_only_when_asked():
    data = make_cnmf_movie(h=24, w=24, n=2, T=120, noise=0.1, min_distance=6.0)
    Y = data["Y"].copy()
    pixel = int(np.flatnonzero(data["A"][0].ravel() > 0)[0])
    Y.reshape(120, -1)[7, pixel] = np.nan
    A = sparse.csr_matrix(data["A"].reshape(2, -1))
    clean = Y.reshape(120, -1).copy()
    clean[7, pixel] = 0.0
    fixed = temporal.movie_pass(Y, A, frame_chunk=50, pixels=np.array([pixel])).projection
    np.testing.assert_allclose(fixed, A @ clean.T, rtol=1e-4, atol=1e-4)
    raw = temporal.movie_pass(Y, A, frame_chunk=50, fix_nan=False).projection
    assert np.isnan(raw[0, 7]) and np.isfinite(np.delete(raw[0], 7)).all()
