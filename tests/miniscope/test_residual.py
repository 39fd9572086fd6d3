"""Search of the residual (CNMF-E): the residual movie against numpy, a cell left out of
the model is found on the residual and the modelled ones are not found again."""

import dask.array as da
import numpy as np
from scipy import ndimage, sparse

from scopeline.miniscope.residual import (
    new_units,
    orthogonal_background,
    residual_activity_images,
    residual_movie,
)
from scopeline.miniscope.seed_init import find_seeds, seed_footprints
from scopeline.miniscope.summary_images import activity_images, seed_score


def _scene(seed=0, T=800):
    """Three cells in a row, a rarely firing one (index 1) between two active ones, on a
    background with a static map times a slow time course."""
    rng = np.random.default_rng(seed)
    h = w = 48
    yy, xx = np.mgrid[:h, :w]
    centres = [(24, 14), (24, 23), (24, 32)]
    A = np.stack([np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 2.2**2)) for y, x in centres])
    rates = [0.04, 0.006, 0.04]
    spikes = np.stack([(rng.random(T) < r).astype(float) for r in rates])
    spikes[1, [t for t in (100, 400, 650) if t < T]] = 1  # a few transients for the rare cell
    kernel = np.exp(-np.arange(40) / 8.0)
    C = np.stack([np.convolve(s, kernel)[:T] for s in spikes]) * np.array([[30.0], [12.0], [30.0]])
    b = (10 + 0.05 * xx).astype(float)[None]
    f = (1 + 0.2 * np.sin(np.arange(T) / 60.0))[None]
    Y = (np.einsum("nt,nij->tij", C, A) + np.einsum("nt,nij->tij", f, b)
         + rng.normal(0, 1.0, (T, h, w))).astype(np.float32)
    return Y, A, C, b, f, centres


def test_residual_movie_matches_numpy():
    Y, A, C, b, f, _ = _scene(T=230)
    keep = [0, 2]
    Yd = da.from_array(Y.astype(np.float16), chunks=(100, -1, -1))
    y = Y.astype(np.float16).astype(np.float64)
    R = residual_movie(Yd, sparse.csr_matrix(A[keep].reshape(2, -1)), C[keep])
    assert R.shape == Y.shape and R.dtype == np.float32
    np.testing.assert_allclose(R.compute(), y - np.einsum("nt,nij->tij", C[keep], A[keep]), atol=1e-3)
    # least-squares traces per frame: the residual is orthogonal to every footprint
    flat = A[keep].reshape(2, -1)
    ls = np.linalg.solve(flat @ flat.T, flat @ y.reshape(len(y), -1).T)
    R = residual_movie(Yd, A[keep]).compute()
    np.testing.assert_allclose(R, y - np.einsum("nt,nij->tij", ls, A[keep]), atol=1e-3)
    assert np.abs(R.reshape(len(R), -1) @ flat.T).max() < 1e-2 * np.abs(y.reshape(len(y), -1) @ flat.T).max()


def test_residual_activity_near_footprints_equals_the_whole_frame_pass():
    """Computed on the pixels near the footprints, the residual's activity images equal
    those of the whole residual movie there (same blocks of frames), and elsewhere the
    residual is Y itself; pixels at the frame's edges lose no neighbour and gain none."""
    Y, A, C, b, f, _ = _scene(T=300)
    Y = np.pad(Y, ((0, 0), (0, 0), (0, 30)))[:, :, 10:]  # 48 x 68: a footprint touches the left edge
    A = np.pad(A, ((0, 0), (0, 0), (0, 30)))[:, :, 10:]
    A = np.where(A > 0.05, A, 0)  # footprints of limited support, as after a spatial update
    Yd = da.from_array(Y.astype(np.float16), chunks=(100, -1, -1))
    images, computed = residual_activity_images(Yd, A[[0, 2]], 3, 3.0)
    whole = activity_images(residual_movie(Yd, A[[0, 2]]), 3, 3.0)
    near = ndimage.binary_dilation((A[[0, 2]] > 0).any(axis=0), np.ones((3, 3), bool))
    assert np.array_equal(computed, near) and near[:, 0].any()
    np.testing.assert_allclose(images.pnr[computed], whole.pnr[computed], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(images.correlation[computed], whole.correlation[computed], atol=1e-6)
    plain = activity_images(Yd, 3, 3.0)
    np.testing.assert_allclose(whole.pnr[~near], plain.pnr[~near], rtol=1e-5, atol=1e-5)


def test_orthogonal_background_by_hand():
    t = np.arange(100.0)
    trace = np.sin(t / 5)
    f = np.vstack([1 + 0.5 * trace, np.cos(t / 7)])
    out = orthogonal_background(f, trace[None])
    np.testing.assert_allclose(out @ trace, 0, atol=1e-9)  # nothing of the new trace left
    np.testing.assert_allclose(out[0], 1 + 0.5 * trace - (f[0] @ trace) / (trace @ trace) * trace)
    assert np.array_equal(orthogonal_background(f, np.zeros((0, 100))), f)


def test_cell_left_out_of_the_model_is_found_on_the_residual():
    Y, A, C, b, f, centres = _scene()
    modelled = [0, 2]
    R = residual_movie(da.from_array(Y, chunks=(100, -1, -1)), A[modelled])
    score, mask = seed_score(activity_images(R, 3, 3.0), 0.7, 6.0)
    seeds = find_seeds(score, mask, 2)
    assert len(seeds) >= 1
    # the best seed of the residual is the rare cell, not one of its modelled neighbours
    assert np.hypot(*(seeds[0] - centres[1])) <= 2
    footprints, traces = seed_footprints(R, seeds, 12, 0.6)
    kept = new_units(A[modelled].reshape(2, -1), C[modelled], footprints, traces, 0.5, 0.6)
    assert len(kept) >= 1
    found = footprints[kept[0]].toarray().reshape(A.shape[1:])
    true, mine = A[1] >= 0.3, found >= 0.3 * found.max()
    assert (true & mine).sum() / (true | mine).sum() > 0.5
    assert np.corrcoef(traces[kept[0]], C[1])[0, 1] > 0.8


def test_new_units_drop_a_found_unit_again_and_duplicates():
    rng = np.random.default_rng(0)
    support = np.zeros((5, 100))
    support[0, 10:30] = 1  # the found unit
    support[1, 12:32] = support[2, 12:32] = 1  # overlapping it
    support[3, 13:33] = 1  # overlapping those
    support[4, 60:80] = 1  # elsewhere
    t0, u = rng.normal(size=500), rng.normal(size=500)
    noisy = lambda x: x + 0.3 * rng.normal(size=500)  # noqa: E731
    traces = np.vstack([noisy(t0),  # 0: the found unit again -> dropped
                        u,  # 1: a cell under the found one, firing on its own -> kept
                        noisy(u),  # 2: 1's twin -> dropped
                        noisy(t0)])  # 3: like the found unit but elsewhere -> kept
    candidates = sparse.csr_matrix(support[[1, 2, 3, 4]])
    kept = new_units(sparse.csr_matrix(support[:1]), t0[None], candidates, traces, 0.5, 0.6)
    assert kept.tolist() == [1, 3]


def test_spatial_step_adds_the_cell_the_initialisation_missed(tmp_path):
    """Steps 5-8 with one of 8 cells left out of the initialisation: the search of the
    residual (default) adds it and every cell is exported; without it one is missing."""
    from scopeline.miniscope.cnmf.metrics import accuracy_summary

    from .cnmf_synthetic import make_cnmf_movie, run_cnmf_steps, write_fake_upstream

    data = make_cnmf_movie(h=48, w=48, n=8, T=600, seed=11)
    data_missing = {**data, "A_init": np.delete(data["A_init"], 3, axis=0)}
    results = {}
    for passes in (1, 0):
        out = tmp_path / f"passes{passes}"
        write_fake_upstream(out, data_missing)
        summaries = run_cnmf_steps(out, {"cnmf_spatial": {"residual_passes": passes}})
        A, C, S = (np.load(out / "export" / f"{k}.npy") for k in "ACS")
        results[passes] = (summaries["cnmf_spatial"], accuracy_summary(A, C, S, data["A"], data["C"], data["S"]))
    added, found = results[1]
    assert added["units_added"] == 1 and added["residual_search"][0]["new_units"] == 1
    assert found["n_matched"] == 8 and found["f1"] == 1.0 and found["median_corr_C"] > 0.95
    assert results[0][0]["units_added"] == 0 and results[0][1]["n_matched"] == 7
