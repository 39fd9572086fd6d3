"""AR(p) sparse deconvolution: hand-worked cases, CVXPY reference, AR estimation."""

import numpy as np
import pytest

from scopeline.miniscope.cnmf.deconvolution import (
    apply_ar,
    ar_from_roots,
    ar_operator_sums,
    calcium_from_spikes,
    deconvolve,
    deconvolve_dual,
    estimate_ar,
    oasis_ar1,
)


def _noisy_trace(T, g, rate=0.04, sn=0.3, seed=0):
    rng = np.random.default_rng(seed)
    s = (rng.random(T) < rate) * rng.uniform(0.5, 2.0, T)
    c = calcium_from_spikes(s, g)
    return c + sn * rng.standard_normal(T), c, s


def _cvxpy_reference(y, g, lam):
    cp = pytest.importorskip("cvxpy")
    T = len(y)
    G = np.eye(T)
    for k, gk in enumerate(g):
        G -= gk * np.eye(T, k=-(k + 1))
    c = cp.Variable(T)
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(c - y) + lam * cp.sum(G @ c)), [G @ c >= 0])
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return c.value


@pytest.mark.parametrize("g", [[0.9], [1.55, -0.57]], ids=["ar1", "ar2"])
@pytest.mark.parametrize("lam_in_sn", [0.0, 1.0, 3.0])
@pytest.mark.parametrize("offset", [0.0, -0.5])
def test_matches_cvxpy(g, lam_in_sn, offset):
    g = np.array(g)
    y, _, _ = _noisy_trace(400, g, seed=len(g))
    y = y + offset
    lam = lam_in_sn * 0.3
    ref = _cvxpy_reference(y, g, lam)
    for result in (deconvolve(y, g, lam), deconvolve_dual(y, g, lam)):
        assert result.converged
        rel = np.abs(result.c - ref).max() / np.abs(ref).max()
        assert rel < 1e-3
        assert (result.s >= 0).all() and (result.c >= -1e-9).all()


def test_ar1_two_samples_by_hand():
    # min (c0-1)^2 + c1^2 s.t. c1 >= 0.5 c0: the constraint is active, c0 = 1/1.25
    result = oasis_ar1(np.array([1.0, 0.0]), 0.5)
    np.testing.assert_allclose(result.c, [0.8, 0.4], atol=1e-12)
    np.testing.assert_allclose(result.s, [0.8, 0.0], atol=1e-12)


def test_single_transient_shrinks_by_penalty_over_kernel_energy():
    # y = g^t: the solution is v g^t with v = 1 - lam / sum(g^2t)
    g, T, lam = 0.8, 60, 0.3
    y = g ** np.arange(T)
    energy = (1 - g ** (2 * T)) / (1 - g * g)
    for result in (oasis_ar1(y, g, lam), deconvolve_dual(y, [g], lam)):
        np.testing.assert_allclose(result.c, (1 - lam / energy) * y, atol=1e-9)
        assert np.count_nonzero(result.s > 1e-9) == 1


def test_negative_data_gives_zero():
    for g in ([0.9], [1.55, -0.57]):
        result = deconvolve(-np.ones(50), np.array(g), 0.1)
        np.testing.assert_allclose(result.c, 0, atol=1e-12)


def test_ar2_noise_free_spikes_recovered_exactly():
    g = ar_from_roots([0.95, 0.6])
    s = np.zeros(300)
    s[[20, 25, 150, 151, 240]] = [1.0, 0.5, 2.0, 1.0, 0.7]
    result = deconvolve_dual(calcium_from_spikes(s, g), g, 0.0)
    np.testing.assert_allclose(result.s, s, atol=1e-6)


def test_operator_sums_are_column_sums():
    g = np.array([1.2, -0.35])
    G = np.eye(7) - g[0] * np.eye(7, k=-1) - g[1] * np.eye(7, k=-2)
    np.testing.assert_allclose(ar_operator_sums(g, 7), G.sum(axis=0))
    np.testing.assert_allclose(apply_ar(np.arange(7.0), g), G @ np.arange(7.0))


def test_iteration_limit_reports_no_convergence():
    y, _, _ = _noisy_trace(300, ar_from_roots([0.95, 0.6]))
    assert not deconvolve_dual(y, ar_from_roots([0.95, 0.6]), 0.3, max_iter=1).converged


@pytest.mark.parametrize("roots", [[0.9], [0.95, 0.6]])
def test_estimate_ar_recovers_kernel(roots):
    g = ar_from_roots(roots)
    y, _, _ = _noisy_trace(20000, g, rate=0.05, sn=0.2, seed=3)
    estimated = estimate_ar(y, len(roots))
    found = np.sort(np.abs(np.roots(np.r_[1, -estimated])))[::-1]
    assert abs(found[0] - roots[0]) < 0.02  # the decay; the rise is less determined, so compare kernels
    impulse = np.zeros(100)
    impulse[0] = 1
    true_kernel, kernel = calcium_from_spikes(impulse, g), calcium_from_spikes(impulse, estimated)
    assert np.abs(kernel / kernel.max() - true_kernel / true_kernel.max()).max() < 0.05


def test_dual_solver_is_fast_on_a_long_chunk():
    import time

    g = ar_from_roots([0.95, 0.6])
    y, c, _ = _noisy_trace(5000, g)
    start = time.perf_counter()
    result = deconvolve_dual(y, g, 0.3)
    assert result.converged
    assert time.perf_counter() - start < 2.0  # generous: O(T) banded solves, ~tens of ms
    assert np.corrcoef(result.c, c)[0, 1] > 0.95
