import dask.array as da
import numpy as np

from scopeline.miniscope.nndsvd import nndsvd, randomized_svd, regularize_components, variance_explained


def _nonnegative_video(seed=0):
    """Known rank-3 non-negative video: background + two disjoint cells."""
    rng = np.random.default_rng(seed)
    T, h, w = 200, 20, 20
    spatial = np.zeros((3, h * w))
    spatial[0] = 1.0  # flat background
    spatial[1, :40] = 5.0
    spatial[2, 200:240] = 5.0
    temporal = np.c_[1 + 0.1 * rng.random(T), rng.random(T) ** 4, rng.random(T) ** 4]
    return temporal @ spatial, spatial, (h, w)


def test_randomized_svd_recovers_the_singular_values():
    video, _, _ = _nonnegative_video()
    u, s, v = randomized_svd(da.from_array(video, chunks=(50, -1)), 3, power_iterations=5)
    assert np.allclose(s, np.linalg.svd(video, compute_uv=False)[:3], rtol=1e-6)
    assert np.allclose((u * s) @ v, video, atol=1e-6 * video.max())


def test_svd_of_sampled_chunks_finds_the_spatial_subspace():
    """With ``sample_frames`` the SVD sees 2 of 4 chunks (frames 0-49 and 150-199); the
    rank-3 video's spatial subspace is the same in every chunk, so the spatial
    components are exact."""
    from scopeline.miniscope.nndsvd import sample_blocks, sampled_frames

    assert sample_blocks(4, 50, 100).tolist() == [0, 3] and sample_blocks(4, 50, None).tolist() == [0, 1, 2, 3]
    assert sample_blocks(4, 50, 500).tolist() == [0, 1, 2, 3]
    video, _, _ = _nonnegative_video()
    u, s, v = randomized_svd(da.from_array(video, chunks=(50, -1)), 3, power_iterations=5, sample_frames=100)
    frames = sampled_frames((50, 50, 50, 50), 100)
    assert frames.tolist() == list(range(50)) + list(range(150, 200)) and u.shape == (100, 3)
    sample = video[frames]
    assert np.allclose(s, np.linalg.svd(sample, compute_uv=False)[:3], rtol=1e-6)
    assert np.allclose((u * s) @ v, sample, atol=1e-6 * video.max())
    full_v = np.linalg.svd(video, full_matrices=False)[2][:3]
    assert np.allclose((full_v @ v.T) @ v, full_v, atol=1e-6)  # the same spatial subspace


def test_nndsvd_is_non_negative_and_component_0_is_background():
    video, spatial, shape = _nonnegative_video()
    u, s, v = np.linalg.svd(video, full_matrices=False)
    W, H = nndsvd(u[:, :3], s[:3], v[:3])
    assert (W >= 0).all() and (H >= 0).all()
    flat = H[0] / H[0].max()
    assert flat.min() > 0.15  # background covers every pixel
    for cell in (spatial[1] > 0, spatial[2] > 0):  # each cell is dominated by one component
        owners = [np.argmax(H[1:, p]) for p in np.flatnonzero(cell)]
        assert len(set(owners)) == 1


def test_rank_one_nonnegative_matrix_is_exact():
    rng = np.random.default_rng(2)
    a, b = rng.random(30), rng.random(50)
    video = np.outer(a, b)
    u, s, v = np.linalg.svd(video, full_matrices=False)
    W, H = nndsvd(u[:, :1], s[:1], v[:1])
    assert np.allclose(W @ H, video, atol=1e-5)


def test_variance_explained_hand_case():
    cumulative = variance_explained(np.array([3.0, 2.0, 1.0]), total_energy=14.0 + 6.0)
    assert np.allclose(cumulative, [9 / 20, 13 / 20, 14 / 20])


def test_regularisation_thresholds_relative_to_max():
    H = np.zeros((1, 25))
    H[0, 12], H[0, 0] = 10.0, 0.2
    out = regularize_components(H, (5, 5), sigma=0, sparsity=0.05)
    assert out[0, 2, 2] == 10 and out[0, 0, 0] == 0


def test_orthonormal_basis_spans_the_columns_even_when_ill_conditioned():
    from scopeline.miniscope.nndsvd import orthonormal_basis

    rng = np.random.default_rng(0)
    Z = rng.standard_normal((2000, 8))
    Z[:, 0] *= 1e5  # a dominant background direction, as after power iterations
    for matrix in (Z, np.c_[Z[:, :7], Z[:, 6] + 1e-13]):  # the second is numerically rank-deficient
        Q = orthonormal_basis(matrix)
        assert np.allclose(Q.T @ Q, np.eye(8), atol=1e-10)
        assert np.allclose(Q @ (Q.T @ matrix), matrix, atol=1e-8 * np.abs(matrix).max())
