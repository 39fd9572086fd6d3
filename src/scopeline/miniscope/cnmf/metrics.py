"""Accuracy against ground truth: one-to-one footprint matching, F1, trace correlations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


def footprint_similarity(A_found: np.ndarray, A_true: np.ndarray) -> np.ndarray:
    """Cosine similarity between every found and every true footprint (found x true)."""
    X = A_found.reshape(len(A_found), -1).astype(np.float64)
    Z = A_true.reshape(len(A_true), -1).astype(np.float64)
    X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-30)
    Z = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-30)
    return X @ Z.T


def footprint_iou(A_found: np.ndarray, A_true: np.ndarray, level: float = 0.3) -> np.ndarray:
    """Intersection over union of the masks (pixels >= ``level`` x the footprint's max) of
    every found and every true footprint (found x true)."""
    from scipy import sparse

    def masks(A):
        X = A.reshape(len(A), -1).astype(np.float32)
        return sparse.csr_matrix(X >= level * np.maximum(X.max(axis=1, keepdims=True), 1e-30), dtype=np.float32)

    X, Z = masks(A_found), masks(A_true)
    shared = (X @ Z.T).toarray()
    union = np.asarray(X.sum(axis=1)).ravel()[:, None] + np.asarray(Z.sum(axis=1)).ravel()[None, :] - shared
    return np.where(union > 0, shared / np.maximum(union, 1), 0.0)


@dataclass
class Matching:
    found: np.ndarray  # indices into the found units
    true: np.ndarray  # matching indices into the true units
    similarity: np.ndarray
    n_found: int
    n_true: int

    @property
    def precision(self) -> float:
        return len(self.found) / self.n_found if self.n_found else 0.0

    @property
    def recall(self) -> float:
        return len(self.found) / self.n_true if self.n_true else 0.0

    @property
    def f1(self) -> float:
        total = self.n_found + self.n_true
        return 2 * len(self.found) / total if total else 0.0


def match_footprints(A_found: np.ndarray, A_true: np.ndarray, min_similarity: float = 0.5,
                     metric: str = "cosine") -> Matching:
    """One-to-one matching maximising the total similarity (Hungarian algorithm); pairs
    below ``min_similarity`` do not count as matches. ``metric``: ``"cosine"`` (of the
    footprints) or ``"iou"`` (intersection over union of the masks at 30 % of each
    footprint's max, :func:`footprint_iou`; the crowded-field criterion, IoU >= 0.5)."""
    if metric not in ("cosine", "iou"):
        raise ValueError(f"metric must be 'cosine' or 'iou', got {metric!r}")
    if len(A_found) == 0 or len(A_true) == 0:
        empty = np.zeros(0, int)
        return Matching(empty, empty, np.zeros(0), len(A_found), len(A_true))
    sim = footprint_similarity(A_found, A_true) if metric == "cosine" else footprint_iou(A_found, A_true)
    rows, cols = linear_sum_assignment(-sim)
    good = sim[rows, cols] >= min_similarity
    return Matching(rows[good], cols[good], sim[rows[good], cols[good]], len(A_found), len(A_true))


def bin_frames(x: np.ndarray, width: int) -> np.ndarray:
    """Sum over consecutive bins of ``width`` frames along the last axis (a partial last bin
    is dropped)."""
    n = x.shape[-1] // width * width
    return x[..., :n].reshape(*x.shape[:-1], -1, width).sum(axis=-1)


def matched_correlations(found: np.ndarray, true: np.ndarray, matching: Matching, bin_width: int = 1) -> np.ndarray:
    """Pearson correlation of each matched pair of traces, optionally after binning."""
    X = bin_frames(found[matching.found], bin_width) if bin_width > 1 else found[matching.found]
    Z = bin_frames(true[matching.true], bin_width) if bin_width > 1 else true[matching.true]
    X = X - X.mean(axis=1, keepdims=True)
    Z = Z - Z.mean(axis=1, keepdims=True)
    den = np.sqrt((X * X).sum(axis=1) * (Z * Z).sum(axis=1))
    return np.where(den > 0, (X * Z).sum(axis=1) / np.where(den > 0, den, 1.0), 0.0)


def accuracy_summary(A_found, C_found, S_found, A_true, C_true, S_true, spike_bin: int = 5,
                     min_similarity: float = 0.5, metric: str = "cosine") -> dict:
    """F1 of the footprint matching (:func:`match_footprints`), median correlation of C
    with the true calcium and of ``spike_bin``-frame-binned S with the true spikes. Traces
    must share the frame axis."""
    m = match_footprints(A_found, A_true, min_similarity, metric)
    c_corr = matched_correlations(C_found, C_true, m)
    s_corr = matched_correlations(S_found, S_true, m, spike_bin)
    return {
        "n_found": m.n_found, "n_true": m.n_true, "n_matched": int(len(m.found)),
        "precision": m.precision, "recall": m.recall, "f1": m.f1,
        "median_footprint_similarity": float(np.median(m.similarity)) if len(m.found) else 0.0,
        "median_corr_C": float(np.median(c_corr)) if len(c_corr) else 0.0,
        "median_corr_S": float(np.median(s_corr)) if len(s_corr) else 0.0,
    }


def truth_in_frame(A_true: np.ndarray, found_sum: np.ndarray, origin: tuple[int, int], search: int = 30) -> tuple[np.ndarray, tuple[int, int]]:
    """True footprints (tissue coordinates) resampled into the processed (cropped,
    registered) frame of shape ``found_sum.shape`` whose top-left corner is ``origin`` in
    the original frame. Registration fixes the frame only up to a constant translation
    (the template's own position), so the integer offset within ``search`` px maximising the
    overlap of the summed footprints is applied. Returns (A_true in the frame, offset)."""
    h, w = found_sum.shape
    total = A_true.sum(axis=0)
    best, best_offset = -np.inf, (0, 0)
    padded = np.pad(total, search + max(h, w))
    base = search + max(h, w)
    for dy in range(-search, search + 1):
        for dx in range(-search, search + 1):
            y0, x0 = base + origin[0] + dy, base + origin[1] + dx
            score = float((padded[y0 : y0 + h, x0 : x0 + w] * found_sum).sum())
            if score > best:
                best, best_offset = score, (dy, dx)
    pad = search + max(h, w)
    stack = np.pad(A_true, ((0, 0), (pad, pad), (pad, pad)))
    y0, x0 = pad + origin[0] + best_offset[0], pad + origin[1] + best_offset[1]
    return stack[:, y0 : y0 + h, x0 : x0 + w], best_offset


def evaluate_against_truth(A: np.ndarray, C: np.ndarray, S: np.ndarray, frame_index: np.ndarray,
                           A_true: np.ndarray, C_true: np.ndarray, S_true: np.ndarray,
                           origin: tuple[int, int], spike_bin: int = 5, min_inside: float = 0.5,
                           metric: str = "cosine") -> dict:
    """Accuracy of a processed recording against simulator truth. The truth is moved into
    the processed frame (:func:`truth_in_frame`), neurons with less than ``min_inside`` of
    their footprint inside it are not counted, and true traces are taken at the kept frames."""
    A_frame, offset = truth_in_frame(A_true, A.sum(axis=0), origin)
    inside = A_frame.reshape(len(A_frame), -1).sum(axis=1) >= min_inside * A_true.reshape(len(A_true), -1).sum(axis=1)
    summary = accuracy_summary(A, C, S, A_frame[inside], C_true[inside][:, frame_index],
                               S_true[inside][:, frame_index], spike_bin, metric=metric)
    return {**summary, "offset": list(offset), "true_outside_frame": int((~inside).sum())}


def evaluate_run(video_dir, out_dir, spike_bin: int = 5, metric: str = "cosine") -> dict:
    """Score a finished run (``out_dir``) against the simulator's ``truth.npz`` in
    ``video_dir`` (reads the export and the crop origin; the only I/O in this module)."""
    import json
    from pathlib import Path

    video_dir, out_dir = Path(video_dir), Path(out_dir)
    truth = np.load(video_dir / "truth.npz")
    export = out_dir / "export"
    A, C, S = (np.load(export / f"{k}.npy") for k in "ACS")
    frame_index = np.array(json.loads((export / "units.json").read_text())["frame_index"])
    crop = json.loads((out_dir / "steps" / "crop" / "crop.json").read_text())
    # exported footprints are in the input video's frame; older exports were in the crop box
    origin = (0, 0) if A.shape[1:] == truth["A"].shape[1:] else (crop["y0"], crop["x0"])
    return evaluate_against_truth(A, C, S, frame_index, truth["A"], truth["C"], truth["S"], origin, spike_bin,
                                  metric=metric)
