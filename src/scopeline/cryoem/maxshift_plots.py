"""Figures and HTML report of ``scopeline maxshift``: figure functions return a
:class:`matplotlib.figure.Figure` (no pyplot, no global state); :func:`write_plots_and_report`
writes them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io.atomic import make_dirs
from ..present.figures import new_figure, save_figure
from ..present.report import write_html_report

PER_PAGE = 16  # trajectories per figure (4 x 4)
COLORS = {"accepted": "#2a7", "discarded": "#c33"}


def sample_evenly(items: Sequence, n: int) -> list:
    """At most ``n`` items spread evenly over the sequence (first and last included)."""
    if n <= 0 or not items:
        return []
    if len(items) <= n:
        return list(items)
    idx = np.unique(np.linspace(0, len(items) - 1, n).round().astype(int))
    return [items[i] for i in idx]


def plot_trajectory_page(records: Sequence[dict], title: str):
    """Up to 16 trajectories (Å, relative to the first frame), start marked, one per panel."""
    n = len(records)
    cols = min(4, n)
    rows_ = math.ceil(n / cols)
    fig, axes = new_figure(rows_, cols, figsize=(3.2 * cols, 3.2 * rows_ + 0.4), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, rec in zip(axes.flat, records):
        shifts = np.asarray(rec.get("shifts_px") or [], dtype=float).reshape(-1, 2)
        name = Path(str(rec["movie"])).name
        ax.set_title(name if len(name) < 34 else "..." + name[-31:], fontsize=7)
        if len(shifts) < 2:
            ax.text(0.5, 0.5, "no per-frame trajectory\n(accumulated motion only)",
                    ha="center", va="center", fontsize=7, transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        xy = (shifts - shifts[0]) * float(rec["pixel_size"])
        color = COLORS.get(rec["status"], "k")
        ax.plot(xy[:, 0], xy[:, 1], "-", color=color, lw=1)
        ax.scatter(xy[:, 0], xy[:, 1], c=np.arange(len(xy)), cmap="viridis", s=10, zorder=3)
        ax.plot(*xy[0], "ko", ms=4)
        ax.set_aspect("equal", adjustable="datalim")
        ax.tick_params(labelsize=6)
        ax.text(0.02, 0.02, f"max {rec['max_frame_shift_A']:.2f} Å\npath {rec['total_path_A']:.2f} Å",
                fontsize=6, transform=ax.transAxes, va="bottom")
    fig.suptitle(title + " (x, y in Å; black dot = first frame, colour = frame)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_trajectories(folder: Path, records: Sequence[dict], n_accepted: int = 16) -> list[Path]:
    """Every discarded trajectory (pages of 16) and an even sample of accepted ones.

    Old pages not rewritten this time are removed so the folder always matches the records.
    """
    make_dirs(folder)
    discarded = [r for r in records if r["status"] == "discarded"]
    accepted = sample_evenly([r for r in records if r["status"] == "accepted"], n_accepted)
    written: list[Path] = []
    for page, start in enumerate(range(0, len(discarded), PER_PAGE), start=1):
        chunk = discarded[start:start + PER_PAGE]
        path = folder / f"discarded_{page:03d}.png"
        save_figure(plot_trajectory_page(chunk, f"Discarded movies {start + 1}-{start + len(chunk)} of {len(discarded)}"),
                    path, dpi=90)
        written.append(path)
    for page, start in enumerate(range(0, len(accepted), PER_PAGE), start=1):
        chunk = accepted[start:start + PER_PAGE]
        path = folder / f"accepted_sample_{page:03d}.png"
        save_figure(plot_trajectory_page(chunk, f"Sample of accepted movies ({len(chunk)})"), path, dpi=90)
        written.append(path)
    for old in folder.glob("*.png"):
        if old not in written:
            old.unlink()
    return written


def bins_with_edge_at(values: Sequence[float], edge: float, n_bins: int) -> np.ndarray:
    """About ``n_bins`` equal bins covering ``values`` and ``edge``, one of them ending at
    ``edge`` (so no bin mixes values on both sides of a limit)."""
    lo, hi = min(min(values), edge), max(max(values), edge)
    width = (hi - lo) / n_bins or 1.0
    first, last = math.floor((lo - edge) / width), math.ceil((hi - edge) / width)
    return edge + width * np.arange(first, max(last, first + 1) + 1)


def plot_histograms(records: Sequence[dict], max_frame_shift: float, max_movie_shift: float,
                    max_early_shift: float | None = None):
    """Histograms of the largest frame step, total path (and early motion) with the limits."""
    panels = [("max_frame_shift_A", "largest step between frames (Å)", max_frame_shift),
              ("total_path_A", "total path (Å)", max_movie_shift)]
    if max_early_shift is not None:
        panels.append(("early_A", "early motion (Å)", max_early_shift))
    fig, axes = new_figure(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (field, label, limit) in zip(axes[0], panels):
        groups = {s: [r[field] for r in records if r["status"] == s and r.get(field) is not None]
                  for s in ("accepted", "discarded")}
        values = groups["accepted"] + groups["discarded"]
        if values:
            bins = bins_with_edge_at(values, limit, min(60, max(15, len(values) // 4)))
            ax.hist([groups["accepted"], groups["discarded"]], bins=bins, stacked=True,
                    color=[COLORS["accepted"], COLORS["discarded"]], label=["accepted", "discarded"])
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        ax.axvline(limit, color="k", ls="--", lw=1)
        ax.text(limit, ax.get_ylim()[1] * 0.95, f" limit {limit:g}", fontsize=7, va="top")
        ax.set_xlabel(label)
        ax.set_ylabel("movies")
    fig.tight_layout()
    return fig


def write_plots_and_report(out_dir: Path, records: Sequence[dict], params, summary: dict,
                           warnings: Sequence[str]) -> None:
    """histograms.png, trajectories/*.png and report.html of a run."""
    import pandas as pd

    save_figure(plot_histograms(records, params.max_frame_shift, params.max_movie_shift,
                                params.max_early_shift), out_dir / "histograms.png", dpi=90)
    pages = plot_trajectories(out_dir / "trajectories", records, params.accepted_plots)
    columns = ["movie", "max_frame_shift_A", "total_path_A", "early_A", "rejected_by", "error"]
    tables = {
        title: pd.DataFrame([{c: r.get(c) for c in columns} for r in records if r["status"] == status],
                            columns=columns)
        for title, status in (("Discarded movies", "discarded"), ("Failed movies", "failed"))
    }
    shown = {k: v for k, v in summary.items() if k != "parameters"}
    write_html_report(out_dir / "report.html", "scopeline maxshift", shown,
                      [out_dir / "histograms.png", *pages], warnings, tables)
