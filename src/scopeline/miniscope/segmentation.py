"""Candidate neurons from component images: watershed, parameter search, spatial merge."""

from __future__ import annotations

import itertools

import numpy as np


def smooth_image(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smoothed ``image`` (float32); unchanged for ``sigma`` <= 0."""
    from scipy import ndimage

    return ndimage.gaussian_filter(np.asarray(image, np.float32), sigma) if sigma > 0 else image


def watershed_regions(image: np.ndarray, min_distance: int, threshold_rel: float, sigma: float,
                      min_size: int = 1, smooth: np.ndarray | None = None,
                      mask: np.ndarray | None = None) -> np.ndarray:
    """Label image of watershed regions around peaks of the smoothed ``image``.

    Peaks are at least ``min_distance`` px apart and above ``threshold_rel`` x the max;
    regions are confined to pixels above that threshold (and inside the boolean ``mask``
    when given) and smaller ones are removed.
    ``smooth``: ``smooth_image(image, sigma)`` when already computed."""
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    smooth = smooth_image(image, sigma) if smooth is None else smooth
    top = smooth.max()
    labels = np.zeros(smooth.shape, np.int32)
    if not np.isfinite(top) or top <= 0:
        return labels
    mask = (smooth > threshold_rel * top) & (True if mask is None else np.asarray(mask, bool))
    peaks = peak_local_max(smooth, min_distance=max(1, int(min_distance)), threshold_rel=threshold_rel,
                           labels=mask.view(np.uint8), exclude_border=False)
    if len(peaks) == 0:
        return labels
    markers = np.zeros(smooth.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-smooth, markers, mask=mask)
    sizes = np.bincount(labels.ravel())
    small = np.flatnonzero(sizes < min_size)
    small = small[small > 0]
    if len(small):
        labels[np.isin(labels, small)] = 0
    return labels


def plausibility_score(labels: np.ndarray, min_size: int, max_size: int, min_solidity: float = 0.8) -> tuple[int, int]:
    """(plausible, implausible) region counts: plausible = size in range and solidity
    (area / convex area) >= ``min_solidity``, i.e. compact neuron-like blobs."""
    from skimage.measure import regionprops

    good = bad = 0
    for region in regionprops(labels):
        if min_size <= region.area <= max_size and region.solidity >= min_solidity:
            good += 1
        else:
            bad += 1
    return good, bad


def _image_scores(image: np.ndarray, combos: list[tuple], min_size: int, max_size: int) -> list[tuple[int, int]]:
    """(plausible, implausible) of one image for each (min_distance, threshold_rel, sigma)."""
    smoothed: dict[float, np.ndarray] = {}
    scores = []
    for md, thr, sigma in combos:
        if sigma not in smoothed:
            smoothed[sigma] = smooth_image(image, sigma)
        labels = watershed_regions(image, md, thr, sigma, min_size, smooth=smoothed[sigma])
        scores.append(plausibility_score(labels, min_size, max_size))
    return scores


def search_watershed(images: list[np.ndarray], min_distances, threshold_rels, sigmas, min_size: int,
                     max_size: int) -> tuple[dict, list[dict]]:
    """Try every parameter combination on ``images``; the best maximises
    plausible - 0.5 x implausible regions (ties: smaller distance, lower threshold, sigma).
    Images are scored in parallel dask tasks (the active scheduler)."""
    import dask

    from .tasks import share

    combos = list(itertools.product(sorted(min_distances), sorted(threshold_rels), sorted(sigmas)))
    per_image = dask.compute(*[dask.delayed(_image_scores)(share(image), combos, min_size, max_size)
                               for image in images])
    table = []
    for k, (md, thr, sigma) in enumerate(combos):
        good = sum(scores[k][0] for scores in per_image)
        bad = sum(scores[k][1] for scores in per_image)
        table.append({"min_distance": md, "threshold_rel": thr, "sigma": sigma, "plausible": good,
                      "implausible": bad, "score": good - 0.5 * bad})
    best = max(table, key=lambda row: row["score"])  # max keeps the first of equal scores
    return best, table


def segment_images(images: list[np.ndarray], min_distance: int, threshold_rel: float, sigma: float,
                   min_size: int):
    """Sparse CSR (candidates, h*w) footprints of the watershed regions of every image
    (parallel dask tasks, one per image)."""
    import dask
    from scipy import sparse

    def one(image):
        return regions_to_footprints(image, watershed_regions(image, min_distance, threshold_rel, sigma, min_size),
                                     dense=False)

    from .tasks import share

    parts = dask.compute(*[dask.delayed(one)(share(image)) for image in images])
    return sparse.vstack(parts).tocsr() if parts else None


def segment_masked(image: np.ndarray, mask: np.ndarray, min_distance: int, sigma: float, min_size: int):
    """Sparse CSR (candidates, h*w) footprints of the watershed regions of ``image``
    confined to the boolean ``mask`` (an absolute criterion, e.g. enough correlation and
    peak-to-noise ratio, instead of a threshold relative to the image's max)."""
    labels = watershed_regions(image, min_distance, 0.0, sigma, min_size, mask=mask)
    return regions_to_footprints(image, labels, dense=False)


def as_sparse(footprints, shape: tuple[int, int] | None = None):
    """Footprints as a CSR matrix (n, pixels) and the frame shape, from dense (n, h, w)
    or already sparse (n, h*w) with ``shape``. Footprints cover a few hundred pixels of a
    frame, so the sparse form keeps thousands of candidates in little memory."""
    from scipy import sparse

    if sparse.issparse(footprints):
        return sparse.csr_matrix(footprints, dtype=np.float32), None if shape is None else tuple(shape)
    footprints = np.asarray(footprints)
    return sparse.csr_matrix(footprints.reshape(len(footprints), -1).astype(np.float32)), footprints.shape[1:]


def like_input(matrix, template, shape: tuple[int, int]):
    """``matrix`` (CSR) back in the form of ``template``: dense (n, h, w) or sparse."""
    from scipy import sparse

    if sparse.issparse(template):
        return matrix.tocsr()
    return matrix.toarray().reshape((matrix.shape[0],) + tuple(shape)).astype(np.float32)


def regions_to_footprints(image: np.ndarray, labels: np.ndarray, dense: bool = True):
    """One footprint per label: the image's values inside the region. Dense (n, h, w),
    or with ``dense=False`` a CSR matrix (n, h*w) holding only the regions' pixels."""
    from scipy import sparse

    flat = labels.ravel()
    pixels = np.flatnonzero(flat > 0)
    ids, rows = np.unique(flat[pixels], return_inverse=True)
    values = np.maximum(np.asarray(image, np.float32).ravel()[pixels], 0)
    matrix = sparse.csr_matrix((values, (rows, pixels)), shape=(len(ids), flat.size), dtype=np.float32)
    matrix.eliminate_zeros()
    return matrix.toarray().reshape((len(ids),) + labels.shape) if dense else matrix


def footprint_stats(footprints, shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (n, 2) weighted by the footprint and support size (n,); dense (n, h, w)
    or sparse (n, h*w) footprints (then with ``shape``)."""
    matrix, shape = as_sparse(footprints, shape)
    n = matrix.shape[0]
    if n == 0:
        return np.zeros((0, 2)), np.zeros(0, int)
    if shape is None:
        raise ValueError("sparse footprints need the frame shape")
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    weights = matrix.astype(np.float64)
    total = np.asarray(weights.sum(axis=1)).ravel() + 1e-30
    centroids = np.c_[weights @ yy.ravel() / total, weights @ xx.ravel() / total]
    return centroids, np.asarray((weights > 0).sum(axis=1)).ravel().astype(int)


def leader_groups(similar, order: np.ndarray) -> list[list[int]]:
    """Group items visited in ``order``: each joins the first earlier leader it is
    ``similar`` to (dense or sparse (n, n) boolean), else leads a new group. No chaining:
    a member never recruits."""
    from scipy import sparse

    matrix = sparse.csr_matrix(similar, dtype=bool)
    matrix.eliminate_zeros()
    rank: dict[int, int] = {}  # leader -> position in the order leaders appeared
    leaders: list[int] = []
    groups: dict[int, list[int]] = {}
    for i in map(int, order):
        neighbours = matrix.indices[matrix.indptr[i] : matrix.indptr[i + 1]]
        ranks = [rank[k] for k in neighbours.tolist() if k in rank]
        if not ranks:
            rank[i] = len(leaders)
            leaders.append(i)
            groups[i] = [i]
        else:
            groups[leaders[min(ranks)]].append(i)
    return [sorted(groups[k]) for k in sorted(leaders)]


def _shared_pixels(support) -> tuple[object, np.ndarray]:
    """Sparse (n, n) shared pixel counts and support sizes (n,) of boolean (n, P) supports."""
    from scipy import sparse

    s = sparse.csr_matrix(support, dtype=np.float32)
    return (s @ s.T).tocsr(), np.asarray(s.sum(axis=1)).ravel()


def overlap_fraction(support) -> np.ndarray:
    """(n, n) shared pixels / pixels of the smaller support, from boolean (n, P) (dense or sparse)."""
    shared, sizes = _shared_pixels(support)
    smaller = np.minimum.outer(sizes, sizes)
    return np.where(smaller > 0, shared.toarray() / np.maximum(smaller, 1), 0)


def intersection_over_union(support) -> np.ndarray:
    """(n, n) |a & b| / |a | b| from boolean (n, P) (dense or sparse)."""
    shared, sizes = _shared_pixels(support)
    shared = shared.toarray()
    union = sizes[:, None] + sizes[None, :] - shared
    return np.where(union > 0, shared / np.maximum(union, 1), 0)


def _group_max(matrix, groups: list[list[int]]):
    """CSR (len(groups), P): pixelwise max of the rows of each group."""
    from scipy import sparse

    label = np.empty(matrix.shape[0], np.int64)
    for k, group in enumerate(groups):
        label[group] = k
    coo = matrix.tocoo()
    key = label[coo.row] * matrix.shape[1] + coo.col
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, np.diff(key) != 0])
    values = np.maximum.reduceat(coo.data[order], starts) if len(starts) else np.zeros(0, np.float32)
    rows, cols = np.divmod(key[starts], matrix.shape[1])
    return sparse.csr_matrix((values, (rows, cols)), shape=(len(groups), matrix.shape[1]), dtype=np.float32)


def merge_spatial(footprints, distance: float, size_ratio: float, min_overlap: float,
                  min_size: int, shape: tuple[int, int] | None = None) -> tuple[np.ndarray, list[list[int]]]:
    """Collapse candidates that are the same cell found several times.

    Candidates are visited from the most compact (highest mean / max) and each later one
    joins the first kept candidate with centre within ``distance`` px, size ratio within
    ``size_ratio`` and intersection-over-union >= ``min_overlap``; it is not chained
    further, so a string of neighbouring cells never collapses into one. A merged
    footprint is the pixelwise max of its max-normalised members; results smaller than
    ``min_size`` px are removed. Returns footprints (dense (n, h, w) or sparse (n, h*w)
    like the input; sparse needs ``shape``) and the member indices of each. Only pairs
    of candidates within ``distance`` are compared, so thousands of candidates are cheap."""
    from scipy import sparse
    from scipy.spatial import cKDTree

    matrix, shape = as_sparse(footprints, shape)
    n = matrix.shape[0]
    if n == 0:
        return footprints, []
    peaks = matrix.max(axis=1).toarray().ravel()
    normalised = (sparse.diags(1 / np.maximum(peaks, 1e-30).astype(np.float32)) @ matrix).tocsr()
    normalised.eliminate_zeros()
    centroids, sizes = footprint_stats(normalised, shape)
    pairs = cKDTree(centroids).query_pairs(distance * (1 + 1e-9) + 1e-9, output_type="ndarray")
    i, j = pairs.T if len(pairs) else (np.zeros(0, int), np.zeros(0, int))
    close = np.hypot(*(centroids[i] - centroids[j]).T) <= distance
    i, j = i[close], j[close]
    shared, _ = _shared_pixels(normalised > 0)
    common = np.asarray(shared[i, j]).ravel() if len(i) else np.zeros(0)
    union = sizes[i] + sizes[j] - common
    iou = np.where(union > 0, common / np.maximum(union, 1), 0)
    ratio = np.maximum(sizes[i], sizes[j]) / np.maximum(np.minimum(sizes[i], sizes[j]), 1)
    ok = (ratio <= size_ratio) & (iou >= min_overlap)
    i, j = i[ok], j[ok]
    similar = sparse.csr_matrix((np.ones(2 * len(i), bool), (np.r_[i, j], np.r_[j, i])), shape=(n, n))
    fill = np.asarray(normalised.sum(axis=1)).ravel() / np.maximum(sizes, 1)
    members = leader_groups(similar, order=np.argsort(-fill, kind="stable"))
    merged = _group_max(normalised, members)
    keep = np.asarray((merged > 0).sum(axis=1)).ravel() >= min_size
    return like_input(merged[keep], footprints, shape), [g for g, k in zip(members, keep) if k]
