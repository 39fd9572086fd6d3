"""Candidate neurons from component images: watershed, parameter search, spatial merge."""

from __future__ import annotations

import itertools

import numpy as np


def watershed_regions(image: np.ndarray, min_distance: int, threshold_rel: float, sigma: float,
                      min_size: int = 1) -> np.ndarray:
    """Label image of watershed regions around peaks of the smoothed ``image``.

    Peaks are at least ``min_distance`` px apart and above ``threshold_rel`` x the max;
    regions are confined to pixels above that threshold and smaller ones are removed."""
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    smooth = ndimage.gaussian_filter(np.asarray(image, np.float32), sigma) if sigma > 0 else image
    top = smooth.max()
    labels = np.zeros(smooth.shape, np.int32)
    if not np.isfinite(top) or top <= 0:
        return labels
    mask = smooth > threshold_rel * top
    peaks = peak_local_max(smooth, min_distance=max(1, int(min_distance)), threshold_rel=threshold_rel,
                           labels=mask.astype(np.int32), exclude_border=False)
    if len(peaks) == 0:
        return labels
    markers = np.zeros(smooth.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-smooth, markers, mask=mask)
    sizes = np.bincount(labels.ravel())
    small = np.flatnonzero(sizes < min_size)
    labels[np.isin(labels, small[small > 0])] = 0
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


def search_watershed(images: list[np.ndarray], min_distances, threshold_rels, sigmas, min_size: int,
                     max_size: int) -> tuple[dict, list[dict]]:
    """Try every parameter combination on ``images``; the best maximises
    plausible - 0.5 x implausible regions (ties: smaller distance, lower threshold, sigma)."""
    table = []
    for md, thr, sigma in itertools.product(sorted(min_distances), sorted(threshold_rels), sorted(sigmas)):
        good = bad = 0
        for image in images:
            g, b = plausibility_score(watershed_regions(image, md, thr, sigma, min_size), min_size, max_size)
            good, bad = good + g, bad + b
        table.append({"min_distance": md, "threshold_rel": thr, "sigma": sigma, "plausible": good,
                      "implausible": bad, "score": good - 0.5 * bad})
    best = max(table, key=lambda row: row["score"])  # max keeps the first of equal scores
    return best, table


def regions_to_footprints(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One footprint (h, w) per label: the image's values inside the region."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    out = np.zeros((len(ids),) + image.shape, np.float32)
    for i, label in enumerate(ids):
        region = labels == label
        out[i][region] = np.maximum(image[region], 0)
    return out


def footprint_stats(footprints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (n, 2) weighted by the footprint and support size (n,)."""
    n = len(footprints)
    if n == 0:
        return np.zeros((0, 2)), np.zeros(0, int)
    yy, xx = np.mgrid[: footprints.shape[1], : footprints.shape[2]]
    weights = footprints.reshape(n, -1).astype(np.float64)
    total = weights.sum(axis=1) + 1e-30
    centroids = np.c_[weights @ yy.ravel() / total, weights @ xx.ravel() / total]
    return centroids, (weights > 0).sum(axis=1)


def leader_groups(similar: np.ndarray, order: np.ndarray) -> list[list[int]]:
    """Group items visited in ``order``: each joins the first earlier leader it is
    ``similar`` to, else leads a new group. No chaining: a member never recruits."""
    leaders: list[int] = []
    groups: dict[int, list[int]] = {}
    for i in order:
        home = next((k for k in leaders if similar[i, k]), None)
        if home is None:
            leaders.append(int(i))
            groups[int(i)] = [int(i)]
        else:
            groups[home].append(int(i))
    return [sorted(groups[k]) for k in sorted(leaders)]


def overlap_fraction(support: np.ndarray) -> np.ndarray:
    """(n, n) shared pixels / pixels of the smaller support, from boolean (n, P)."""
    s = support.astype(np.float32)
    shared = s @ s.T
    sizes = s.sum(axis=1)
    smaller = np.minimum.outer(sizes, sizes)
    return np.where(smaller > 0, shared / np.maximum(smaller, 1), 0)


def intersection_over_union(support: np.ndarray) -> np.ndarray:
    """(n, n) |a & b| / |a | b| from boolean (n, P)."""
    s = support.astype(np.float32)
    shared = s @ s.T
    sizes = s.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - shared
    return np.where(union > 0, shared / np.maximum(union, 1), 0)


def merge_spatial(footprints: np.ndarray, distance: float, size_ratio: float, min_overlap: float,
                  min_size: int) -> tuple[np.ndarray, list[list[int]]]:
    """Collapse candidates that are the same cell found several times.

    Candidates are visited from the most compact (highest mean / max) and each later one
    joins the first kept candidate with centre within ``distance`` px, size ratio within
    ``size_ratio`` and intersection-over-union >= ``min_overlap``; it is not chained
    further, so a string of neighbouring cells never collapses into one. A merged
    footprint is the pixelwise max of its max-normalised members; results smaller than
    ``min_size`` px are removed. Returns footprints and the member indices of each."""
    n = len(footprints)
    if n == 0:
        return footprints, []
    peaks = footprints.reshape(n, -1).max(axis=1)
    normalised = footprints / np.maximum(peaks, 1e-30)[:, None, None]
    centroids, sizes = footprint_stats(normalised)
    support = normalised.reshape(n, -1) > 0
    iou = intersection_over_union(support)
    dist = np.hypot(*(centroids[:, None, :] - centroids[None, :, :]).transpose(2, 0, 1))
    ratio = np.maximum.outer(sizes, sizes) / np.maximum(np.minimum.outer(sizes, sizes), 1)
    similar = (dist <= distance) & (ratio <= size_ratio) & (iou >= min_overlap)
    fill = normalised.reshape(n, -1).sum(axis=1) / np.maximum(sizes, 1)
    members = leader_groups(similar, order=np.argsort(-fill, kind="stable"))
    merged = np.stack([normalised[g].max(axis=0) for g in members])
    keep = (merged > 0).reshape(len(merged), -1).sum(axis=1) >= min_size
    return merged[keep], [g for g, k in zip(members, keep) if k]
