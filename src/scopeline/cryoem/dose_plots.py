"""Figures of the dose analysis (each returns a :class:`matplotlib.figure.Figure`; write it
with :func:`scopeline.present.figures.save_figure`)."""

from __future__ import annotations

import numpy as np

from ..present.figures import new_figure

COLOURS = {"accepted": "tab:green", "discarded": "tab:red", "pending": "tab:gray"}


def _decided(rows):
    order = [(i + 1, r) for i, r in enumerate(rows) if r["status"] != "failed"]
    return order


def plot_dose_vs_time(rows: list[dict], max_diff: float):
    """Dose of each movie in acquisition order, with the reference (median) and limits as
    they were when each movie was decided."""
    order = _decided(rows)
    fig, ax = new_figure(figsize=(9, 4), constrained_layout=True)
    if order:
        x = np.array([i for i, _ in order])
        for status, colour in COLOURS.items():
            sel = [(i, r["mean_dose"]) for i, r in order if r["status"] == status]
            if sel:
                ax.scatter(*zip(*sel), s=10, c=colour, label=status)
        ref = np.array([r.get("reference_dose") or np.nan for _, r in order], dtype=float)
        ax.step(x, ref, where="mid", c="k", lw=1, label="reference (median)")
        ax.step(x, ref * (1 + max_diff / 100), where="mid", c="k", ls="--", lw=0.8, label=f"±{max_diff:g} %")
        ax.step(x, ref * (1 - max_diff / 100), where="mid", c="k", ls="--", lw=0.8)
        ax.legend(loc="best", fontsize=8)
    failed = [i + 1 for i, r in enumerate(rows) if r["status"] == "failed"]
    for i in failed:
        ax.axvline(i, c="tab:orange", lw=0.5, alpha=0.6)
    ax.set_xlabel("movie (acquisition order)" + (f"; orange lines: {len(failed)} failed" if failed else ""))
    ax.set_ylabel("dose per frame (e/Å²)")
    ax.set_title("Dose per movie")
    return fig


def plot_dose_difference(rows: list[dict], max_diff: float):
    """Percent difference of each movie from its reference, with the ±limits."""
    order = [(i, r) for i, r in _decided(rows) if r.get("diff_percent") is not None]
    fig, ax = new_figure(figsize=(9, 4), constrained_layout=True)
    for status, colour in COLOURS.items():
        sel = [(i, r["diff_percent"]) for i, r in order if r["status"] == status]
        if sel:
            ax.scatter(*zip(*sel), s=10, c=colour, label=status)
    ax.axhline(max_diff, c="k", ls="--", lw=0.8, label=f"±{max_diff:g} %")
    ax.axhline(-max_diff, c="k", ls="--", lw=0.8)
    ax.axhline(0, c="k", lw=0.5)
    ax.set_xlabel("movie (acquisition order)")
    ax.set_ylabel("difference from reference dose (%)")
    ax.set_title("Dose difference")
    if order:
        ax.legend(loc="best", fontsize=8)
    return fig
