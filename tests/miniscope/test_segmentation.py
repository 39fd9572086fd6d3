import numpy as np

from scopeline.miniscope.segmentation import (
    footprint_stats,
    merge_spatial,
    regions_to_footprints,
    search_watershed,
    watershed_regions,
)


def _blobs(centers, shape=(60, 60), sigma=2.5):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return sum(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2)) for cy, cx in centers).astype(np.float32)


def test_watershed_separates_two_touching_cells():
    image = _blobs([(30, 22), (30, 34)])
    labels = watershed_regions(image, min_distance=5, threshold_rel=0.1, sigma=1.0, min_size=5)
    footprints = regions_to_footprints(image, labels)
    centroids, _ = footprint_stats(footprints)
    assert len(footprints) == 2
    assert np.allclose(sorted(centroids[:, 1]), [22, 34], atol=1.0)
    one = watershed_regions(image, min_distance=15, threshold_rel=0.1, sigma=1.0)
    assert one.max() == 1  # peaks closer than min_distance: one region


def test_search_prefers_parameters_that_split_cells():
    images = [_blobs([(30, 22), (30, 34), (12, 12)]), _blobs([(45, 45), (45, 56)])]
    best, table = search_watershed(images, [5, 20], [0.1], [1.0], min_size=5, max_size=400)
    assert best["min_distance"] == 5 and best["plausible"] == 5
    assert len(table) == 2


def test_merge_spatial_collapses_duplicates_not_neighbours():
    a = _blobs([(30, 22)])
    a_again = _blobs([(30.5, 22.5)]) * 3  # same cell from another component, other scale
    b = _blobs([(30, 31)])  # neighbour 9 px away, overlapping tails
    footprints = np.stack([np.where(f > 0.05 * f.max(), f, 0) for f in (a, a_again, b)])
    merged, groups = merge_spatial(footprints, distance=25, size_ratio=5, min_overlap=0.4, min_size=9)
    assert sorted(map(sorted, groups)) == [[0, 1], [2]]
    assert merged.max() == 1.0


def test_merge_spatial_removes_small_components():
    tiny = np.zeros((1, 20, 20), np.float32)
    tiny[0, 5:7, 5:7] = 1
    merged, groups = merge_spatial(tiny, 25, 5, 0.4, min_size=9)
    assert len(merged) == 0 and groups == []


def test_sparse_footprints_give_the_same_merge_as_dense():
    from scipy import sparse

    rng = np.random.default_rng(3)
    centers = rng.uniform(8, 52, size=(12, 2))
    images = [_blobs(centers[:6]), _blobs(centers[3:] + 0.7), _blobs(centers[::2] - 0.5)]
    labels = [watershed_regions(im, 5, 0.1, 1.0, 5) for im in images]
    dense = np.concatenate([regions_to_footprints(im, lab) for im, lab in zip(images, labels)])
    sparse_form = sparse.vstack([regions_to_footprints(im, lab, dense=False) for im, lab in zip(images, labels)])
    assert np.array_equal(sparse_form.toarray(), dense.reshape(len(dense), -1))
    merged_dense, groups_dense = merge_spatial(dense, 25, 5, 0.4, 9)
    merged_sparse, groups_sparse = merge_spatial(sparse_form, 25, 5, 0.4, 9, shape=(60, 60))
    assert groups_dense == groups_sparse and any(len(g) > 1 for g in groups_dense)
    assert np.array_equal(merged_sparse.toarray(), merged_dense.reshape(len(merged_dense), -1))
    assert np.allclose(footprint_stats(merged_sparse, (60, 60))[0], footprint_stats(merged_dense)[0])


def test_watershed_regions_stay_inside_the_mask():
    image = _blobs([(20, 20), (40, 40)])
    mask = np.zeros(image.shape, bool)
    mask[30:, 30:] = True
    labels = watershed_regions(image, min_distance=5, threshold_rel=0.0, sigma=1.0, min_size=5, mask=mask)
    assert labels.max() == 1 and not labels[~mask].any()
    centroids, _ = footprint_stats(regions_to_footprints(image, labels))
    assert np.allclose(centroids[0], [40, 40], atol=0.5)


def test_segment_masked_finds_a_dim_cell_beside_a_bright_one():
    """Centres 10 px apart; a peak must be the maximum of its (2d + 1)^2 window. For d = 5
    the dim peak's window holds (31, 28) on the bright cell's slope: 3 exp(-10 / 12.5) =
    1.35 > 1, so the dim cell is lost; d = 3 keeps both."""
    from scopeline.miniscope.segmentation import segment_masked

    image = 3 * _blobs([(30, 25)]) + _blobs([(36, 33)])
    mask = image > 0.2
    two = segment_masked(image, mask, min_distance=3, sigma=0.0, min_size=5)
    centroids, _ = footprint_stats(two, image.shape)
    assert two.shape[0] == 2
    assert np.allclose(sorted(centroids.tolist()), [[30, 25], [36, 33]], atol=1.5)
    assert segment_masked(image, mask, min_distance=5, sigma=0.0, min_size=5).shape[0] == 1
