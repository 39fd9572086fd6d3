"""CNMF spatial side: dilation, clustering, bounding boxes, the non-negative LASSO spatial
update on local tiles, merging.

Footprints are dense arrays (units, h, w) here, but every per-unit operation works on the
unit's bounding box and products between units use sparse matrices, so the cost follows
the footprints' pixels, not units x frame size. The movie only enters through sufficient
statistics ``Y C^T`` computed chunk-wise (see :func:`tile_statistics`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components

from ..float16 import as_dtype


def unit_box(mask: np.ndarray, pad: int = 0) -> tuple[slice, slice] | None:
    """Slices of the bounding box of ``mask`` (2-D) grown by ``pad`` px and clipped to the
    frame; None when ``mask`` is empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    h, w = mask.shape
    return (slice(max(0, rows[0] - pad), min(h, rows[-1] + 1 + pad)),
            slice(max(0, cols[0] - pad), min(w, cols[-1] + 1 + pad)))


# ------------------------------------------------------------------------ 7a dilation
def disk(radius: int) -> np.ndarray:
    r = int(radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy * yy + xx * xx) <= r * r


def dilate_footprints(A: np.ndarray, radius: int, threshold: float) -> np.ndarray:
    """Supports (units, h, w) bool: pixels above ``threshold`` x max, dilated by a disk."""
    peak = A.reshape(len(A), -1).max(axis=1)
    out = np.zeros(A.shape, bool)
    structure = disk(radius) if radius > 0 else None
    for i, a in enumerate(A):
        core = a > threshold * peak[i]
        box = unit_box(core, max(radius, 0))
        if box is None:
            continue
        # the box holds the core plus the dilation reach, so dilating it alone is exact
        out[i][box] = core[box] if structure is None else ndimage.binary_dilation(core[box], structure=structure)
    return out


# ------------------------------------------------------------------------ 7b clustering
def cluster_units(support: np.ndarray, A: np.ndarray, max_cluster_size: int, overlap_threshold: float,
                  min_area: int = 0, min_intensity: float = 0.0) -> list[np.ndarray]:
    """Group units whose supports overlap by more than ``overlap_threshold`` of the smaller
    one; connected groups larger than ``max_cluster_size`` are split along a breadth-first
    ordering. Units below ``min_area`` pixels or ``min_intensity`` peak stay alone."""
    n = len(support)
    flat = sparse.csr_matrix(support.reshape(n, -1), dtype=np.float32)
    inter = (flat @ flat.T).toarray()
    area = np.diag(inter).copy()
    smaller = np.minimum(area[:, None], area[None, :])
    linked = (inter > overlap_threshold * np.maximum(smaller, 1)) & (inter > 0)
    peak = A.reshape(n, -1).max(axis=1)
    lonely = (area < min_area) | (peak < min_intensity)
    linked[lonely, :] = False
    linked[:, lonely] = False
    np.fill_diagonal(linked, True)
    n_groups, labels = connected_components(linked, directed=False)
    clusters = []
    for group in range(n_groups):
        members = np.flatnonzero(labels == group)
        order = _bfs_order(members, linked)
        for i in range(0, len(order), max_cluster_size):
            clusters.append(np.array(order[i : i + max_cluster_size]))
    return clusters


def _bfs_order(members: np.ndarray, linked: np.ndarray) -> list[int]:
    remaining = set(members.tolist())
    order: list[int] = []
    while remaining:
        queue = [min(remaining)]
        remaining.discard(queue[0])
        while queue:
            u = queue.pop(0)
            order.append(u)
            for v in np.flatnonzero(linked[u]):
                if v in remaining:
                    remaining.discard(v)
                    queue.append(int(v))
    return order


# ------------------------------------------------------------------------ 7c boxes
@dataclass(frozen=True)
class Box:
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def cluster_box(A: np.ndarray, units: np.ndarray, shape: tuple[int, int], dilation_radius: int,
                padding: int, min_size: int, intensity_threshold: float) -> Box:
    """Bounding box of a cluster: its units' pixels above ``intensity_threshold`` x max,
    expanded by ``dilation_radius`` + ``padding``, grown to ``min_size`` and clipped."""
    mask = np.zeros(shape, bool)
    for u in units:
        mask |= A[u] > intensity_threshold * A[u].max()
    ys, xs = np.nonzero(mask)
    grow = dilation_radius + padding
    y0, y1 = ys.min() - grow, ys.max() + 1 + grow
    x0, x1 = xs.min() - grow, xs.max() + 1 + grow
    y0, y1 = _at_least(y0, y1, min_size, shape[0])
    x0, x1 = _at_least(x0, x1, min_size, shape[1])
    return Box(y0, y1, x0, x1)


def _at_least(lo: int, hi: int, size: int, limit: int) -> tuple[int, int]:
    if hi - lo < size:
        centre = (lo + hi) // 2
        lo, hi = centre - size // 2, centre - size // 2 + size
    return int(max(0, lo)), int(min(limit, hi))


# ------------------------------------------------------------------------ 7d suggestions
def suggest_spatial(noise_map: np.ndarray, support: np.ndarray) -> dict:
    """Penalty range and ``min_std`` from the data.

    ``max_penalty`` is the universal threshold ``sqrt(2 ln n)`` for the ``n`` candidate
    pixels (noise alone stays below it with high probability); ``min_penalty`` a quarter
    of it; ``min_std`` 0.9 x the median pixel noise (pixels that vary less carry no signal).
    """
    n_candidates = max(int(support.any(axis=0).sum()), 2)
    universal = float(np.sqrt(2 * np.log(n_candidates)))
    return {
        "max_penalty": universal,
        "min_penalty": universal / 4,
        "min_std": float(0.9 * np.median(noise_map[noise_map > 0])) if (noise_map > 0).any() else 0.0,
        "candidate_pixels": n_candidates,
    }


# ------------------------------------------------------------------------ 7e LASSO
def nonneg_lasso(R: np.ndarray, Q: np.ndarray, penalty: np.ndarray, allowed: np.ndarray,
                 start: np.ndarray | None = None, iterations: int = 200, tol: float = 1e-6,
                 free: np.ndarray | None = None) -> np.ndarray:
    """Solve, for every row p independently (vectorised over rows),

        min_a 1/2 a^T Q a - R_p^T a + penalty_p^T a   s.t. a >= 0, a_k = 0 where not allowed,

    i.e. ``min 1/2 ||y_p - C^T a||^2 + penalty_p . a`` with ``R = Y C^T`` and ``Q = C C^T``,
    by cyclic coordinate descent. Columns flagged in ``free`` (background) have no sign
    constraint (and should have no penalty). Returns (pixels, units)."""
    n_pix, n_units = R.shape
    lower = np.where(np.zeros(n_units, bool) if free is None else free, -np.inf, 0.0)
    a = np.zeros((n_pix, n_units)) if start is None else np.where(allowed, np.maximum(start, lower), 0.0)
    diag = np.maximum(np.diag(Q), 1e-30)
    scale = max(float(np.abs(R).max() / diag.max()), 1e-30)
    for _ in range(iterations):
        change = 0.0
        for k in range(n_units):
            old = a[:, k].copy()
            grad = a @ Q[:, k] - old * Q[k, k]
            new = np.maximum((R[:, k] - grad - penalty[:, k]) / diag[k], lower[k])
            new[~allowed[:, k]] = 0.0
            a[:, k] = new
            change = max(change, float(np.abs(new - old).max()) if n_pix else 0.0)
        if change <= tol * scale:
            break
    return a


def penalty_weights(A_tile: np.ndarray, min_penalty: float, max_penalty: float) -> np.ndarray:
    """Per (pixel, unit) penalty in noise stds: ``min_penalty`` at a unit's brightest
    pixel rising linearly to ``max_penalty`` where its previous footprint was 0."""
    peak = np.maximum(A_tile.max(axis=0, keepdims=True), 1e-30)
    relative = np.clip(A_tile / peak, 0, 1)
    return max_penalty - (max_penalty - min_penalty) * relative


def tile_statistics(Y, tiles: list["Tile"], regressors: np.ndarray, n_background: int,
                    frame_chunk: int = 100, frames_per_task: int | None = None) -> tuple[list[np.ndarray], dict]:
    """One chunked pass over the movie: for every tile ``Y[:, pixels] ^T regressors[columns]^T``
    (pixels x columns), and for every pixel ``Y f^T`` (``f`` = the last ``n_background``
    regressors), sum and sum of squares. Each task sums ``frames_per_task`` frames (default
    ``frame_chunk``), ``frame_chunk`` at a time: fewer tasks mean fewer frame-sized partial
    sums to move between workers. Memory: one task's frames plus the statistics."""
    import dask.array as da

    from .temporal import column_slabs, finite_block, movie_as_matrix

    Y2 = movie_as_matrix(Y, frames_per_task or frame_chunk)
    n_pix = Y2.shape[1]
    R = da.from_array(np.ascontiguousarray(regressors.T, dtype=np.float32), chunks=(Y2.chunks[0], -1))
    sizes = [len(t.pixels) * len(t.columns) for t in tiles]
    first_bg = regressors.shape[0] - n_background
    length = int(sum(sizes)) + (2 + n_background) * n_pix

    all_pixels = np.concatenate([t.pixels for t in tiles]).astype(int) if tiles else np.zeros(0, int)
    offsets = np.r_[0, np.cumsum([len(t.pixels) for t in tiles])].astype(int)

    def chunk_stats(y: np.ndarray, r: np.ndarray) -> np.ndarray:
        n = len(y)
        # the tiles' pixels in one gather (converted from the store's dtype only there)
        used = finite_block(as_dtype(y[:, all_pixels], np.float32).T.copy(), True)
        parts = [used[offsets[i] : offsets[i + 1]] @ r[:, t.columns] for i, t in enumerate(tiles)]
        # per pixel Y f^T, sum and sum of squares, slab by slab; squares in float32 of the
        # chunk-centred values, combined in float64: sum y^2 = sum (y - m)^2 + n m^2
        yf = np.zeros((y.shape[1], n_background))
        total, squares = np.zeros(y.shape[1]), np.zeros(y.shape[1])
        r_background = np.ascontiguousarray(r[:, first_bg:])  # strided operands leave BLAS
        for columns, part in column_slabs(y, np.float32):
            yf[columns] = part.T @ r_background
            total[columns] = part.sum(axis=0, dtype=np.float64)
            mean = total[columns] / n
            centred = part - mean.astype(np.float32)
            squares[columns] = np.einsum("ij,ij->j", centred, centred) + n * mean**2
        parts += [yf, total, squares]
        return np.concatenate([np.asarray(q, np.float64).ravel() for q in parts])

    def block(y: np.ndarray, r: np.ndarray) -> np.ndarray:
        return sum(chunk_stats(y[a : a + frame_chunk], r[a : a + frame_chunk])
                   for a in range(0, len(y), frame_chunk))[None]

    total = da.blockwise(block, "ik", Y2, "ij", R, "il", new_axes={"k": length}, adjust_chunks={"i": 1},
                         concatenate=True, dtype=np.float64).sum(axis=0).compute()
    out, offset = [], 0
    for t, size in zip(tiles, sizes):
        out.append(total[offset : offset + size].reshape(len(t.pixels), len(t.columns)))
        offset += size
    yf = total[offset : offset + n_pix * n_background].reshape(n_pix, n_background)
    offset += n_pix * n_background
    ysum, ysq = total[offset : offset + n_pix], total[offset + n_pix : offset + 2 * n_pix]
    return out, {"Yf": yf, "sum": ysum, "sumsq": ysq}


@dataclass
class Tile:
    """Pixels (flat indices) solved together and the regressor rows (units, then the
    background components) they may load on."""

    box: Box
    pixels: np.ndarray
    columns: np.ndarray


def make_tiles(support: np.ndarray, clusters: list[np.ndarray], boxes: list[Box], handle_overlaps: bool,
               n_background: int = 1) -> list[Tile]:
    """Assign pixels to tiles. With ``handle_overlaps`` every covered pixel belongs to the one
    tile where it is most central and is fitted with all units covering it; without, every
    cluster fits its own units on its own pixels, ignoring neighbouring clusters."""
    n_units, h, w = support.shape
    background = n_units + np.arange(n_background)
    tiles = []
    if handle_overlaps:
        owner = np.full((h, w), -1)
        best = np.full((h, w), -np.inf)
        for j, (units, box) in enumerate(zip(clusters, boxes)):
            covered = support[units, box.y0 : box.y1, box.x0 : box.x1].any(axis=0)
            better = covered & (centrality(box, (h, w)) > best[box.slices])
            owner[box.slices][better] = j
            best[box.slices][better] = centrality(box, (h, w))[better]
        flat_owner = owner.ravel()
        flat_support = support.reshape(n_units, -1)
        for j, box in enumerate(boxes):
            pixels = np.flatnonzero(flat_owner == j)
            units = np.flatnonzero(flat_support[:, pixels].any(axis=1))
            tiles.append(Tile(box, pixels, np.r_[units, background]))
    else:
        for units, box in zip(clusters, boxes):
            covered = np.zeros((h, w), bool)
            covered[box.slices] = support[units, box.y0 : box.y1, box.x0 : box.x1].any(axis=0)
            tiles.append(Tile(box, np.flatnonzero(covered.ravel()), np.r_[np.sort(units), background]))
    return tiles


@dataclass
class SpatialResult:
    A: np.ndarray  # (units, h, w) raw updated footprints
    b: np.ndarray  # (n_background, h, w) background maps
    support: np.ndarray  # (units, h, w) dilated supports used
    clusters: list[np.ndarray]
    boxes: list[Box]
    pixel_std: np.ndarray  # (h, w) temporal std of the movie


def spatial_update(Y, A: np.ndarray, C: np.ndarray, f: np.ndarray, noise_map: np.ndarray,
                   params, frame_chunk: int = 100, frames_per_task: int | None = None) -> SpatialResult:
    """Steps 7a-7e. ``f`` (n_background, frames) are the background time courses; their
    maps ``b`` are fitted here, pixel by pixel, together with the footprints.
    ``params`` is a :class:`~scopeline.miniscope.params_cnmf.SpatialParams` (with the penalty
    range and ``min_std`` already settled)."""
    n_units, h, w = A.shape
    support = dilate_footprints(A, params.dilation_window, params.dilation_threshold)
    clusters = cluster_units(support, A, params.max_cluster_size, params.overlap_threshold,
                             params.min_area, params.min_intensity)
    boxes = [cluster_box(A, units, (h, w), params.bbox_dilation_radius, params.bbox_padding,
                         params.bbox_min_size, params.bbox_intensity_threshold) for units in clusters]
    n_bg = len(f)
    tiles = make_tiles(support, clusters, boxes, params.handle_overlaps, n_bg)
    regressors = np.vstack([C, f]).astype(np.float64)
    stats, pixel_stats = tile_statistics(Y, tiles, regressors, n_bg, frame_chunk, frames_per_task)
    n_frames = regressors.shape[1]
    mean = pixel_stats["sum"] / n_frames
    std = np.sqrt(np.maximum(pixel_stats["sumsq"] / n_frames - mean**2, 0.0))
    gram = regressors @ regressors.T
    norms = np.sqrt(np.maximum(np.diag(gram), 0.0))
    flat_A = A.reshape(n_units, -1)
    flat_support = support.reshape(n_units, -1)
    flat_noise = noise_map.ravel().astype(np.float64)
    new_A = np.zeros_like(flat_A, dtype=np.float32)
    # pixels with no unit: background only (least squares)
    new_b = (np.linalg.lstsq(gram[n_units:, n_units:], pixel_stats["Yf"].T, rcond=None)[0] if n_bg
             else np.zeros((0, h * w)))
    for tile, R in zip(tiles, stats):
        if len(tile.pixels) == 0:
            continue
        units = tile.columns[: len(tile.columns) - n_bg]
        start = np.column_stack([flat_A[np.ix_(units, tile.pixels)].T, new_b[:, tile.pixels].T])
        allowed = np.ones(start.shape, bool)
        allowed[:, : len(units)] = flat_support[np.ix_(units, tile.pixels)].T
        allowed[std[tile.pixels] < params.min_std, : len(units)] = False
        free = np.r_[np.zeros(len(units), bool), np.ones(n_bg, bool)]
        weights = penalty_weights(np.maximum(start, 0), params.min_penalty, params.max_penalty)
        penalty = weights * flat_noise[tile.pixels, None] * norms[tile.columns][None, :]
        penalty[:, free] = 0.0
        Q = gram[np.ix_(tile.columns, tile.columns)]
        a = nonneg_lasso(R, Q, penalty, allowed, start=start, iterations=params.lasso_iterations, free=free)
        if params.handle_overlaps:
            new_A[np.ix_(units, tile.pixels)] = a[:, : len(units)].T
        else:
            block = new_A[np.ix_(units, tile.pixels)]
            new_A[np.ix_(units, tile.pixels)] = np.maximum(block, a[:, : len(units)].T)
        new_b[:, tile.pixels] = a[:, len(units) :].T
    return SpatialResult(new_A.reshape(n_units, h, w), new_b.reshape(n_bg, h, w).astype(np.float32),
                         support, clusters, boxes, std.reshape(h, w).astype(np.float32))


# ------------------------------------------------------------------------ 7f merging
def centrality(box: Box, shape: tuple[int, int]) -> np.ndarray:
    """For pixels of the box, distance to the nearest box edge (higher = more central)."""
    yy = np.arange(box.y0, box.y1)[:, None]
    xx = np.arange(box.x0, box.x1)[None, :]
    return np.minimum(np.minimum(yy - box.y0, box.y1 - 1 - yy), np.minimum(xx - box.x0, box.x1 - 1 - xx)).astype(float)


def smooth_footprints(A: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of every footprint (no mixing between units)."""
    if sigma <= 0:
        return A.copy()
    reach = int(4.0 * sigma + 0.5)  # gaussian_filter's kernel radius (truncate=4)
    out = np.zeros_like(A)
    for i, a in enumerate(A):
        box = unit_box(a != 0, reach)
        if box is not None:  # zero padding outside the box: same as filtering the frame
            out[i][box] = ndimage.gaussian_filter(a[box], sigma=sigma, mode="constant", truncate=4.0)
    return out


def peak_component(A: np.ndarray) -> np.ndarray:
    """Keep, in every footprint, only the connected (8-neighbour) region holding its
    maximum: a cell is one blob, stray fragments are other sources' leakage."""
    out = np.zeros_like(A)
    for i, a in enumerate(A):
        box = unit_box(a > 0)
        if box is None or a.max() <= 0:
            continue
        part = a[box]  # every positive pixel lies in the box: labelling it alone is exact
        labels, _ = ndimage.label(part > 0, structure=np.ones((3, 3)))
        peak = labels[np.unravel_index(np.argmax(part), part.shape)]
        out[i][box] = np.where(labels == peak, part, 0)
    return out


def normalise_footprints(A: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale each footprint to max 1 and its trace inversely (A C unchanged)."""
    peak = A.reshape(len(A), -1).max(axis=1)
    safe = np.where(peak > 0, peak, 1.0)
    return A / safe[:, None, None], C * safe[:, None]
