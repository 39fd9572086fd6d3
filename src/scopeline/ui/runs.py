"""What the UI shows of runs: finding run folders, and a cryo-EM run's counts, item pages
and plot data. Adapters over :mod:`scopeline.tools` (no science: every decision comes from
``Run.decide``)."""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..tools import OVERRIDES_FILE, RUN_FILE, STATE_DIR, Run, _read_run_state
from .forms import form_fields

MAX_DEPTH = 3  # how deep below each root run folders are looked for
ACCEPT_RATE_WINDOW = 20  # items in the running accept rate
STATUSES = ("accepted", "discarded", "failed", "pending")
# numeric columns of the items table, per tool (those present in the rows are shown)
COLUMNS = {
    "dose": ("mean_dose", "diff_percent", "trend_percent", "n_frames"),
    "maxshift": ("max_frame_shift_A", "total_path_A", "early_A", "late_A", "n_frames"),
    "clean": ("n_picks", "n_kept", "n_outside"),
}


# the parameters each tool re-decides with (docs/tools.md, "decided"); the other
# non-measuring ones (clean's device, threads, save_masks ...) are not thresholds
# slider ranges (min, max, step) of the decision form's numbers; widened to hold the value
SLIDERS = {
    "max_diff": (0.0, 50.0, 0.5), "max_faulty": (0.0, 100.0, 1.0), "samples": (1, 200, 1), "window": (2, 500, 1),
    "metadata_tolerance": (0.0, 50.0, 0.5), "dose_per_frame": (0.0, 5.0, 0.01),
    "max_frame_shift": (0.0, 30.0, 0.1), "max_movie_shift": (0.0, 200.0, 0.5), "max_early_shift": (0.0, 100.0, 0.5),
    "threshold": (0.0, 1.0, 0.01), "min_kept": (0, 200, 1),
}

THRESHOLDS = {
    "dose": ("max_diff", "samples", "window", "max_faulty", "dose_per_frame", "metadata_tolerance"),
    "maxshift": ("rejection", "max_frame_shift", "max_movie_shift", "max_early_shift"),
    "clean": ("threshold", "min_kept"),
}


@dataclass(frozen=True)
class RunFolder:
    """A run folder found under an allowed root."""

    path: Path
    kind: str  # "dose" | "maxshift" | "clean" | "miniscope"


def run_kind(folder: Path) -> str | None:
    """The kind of run in ``folder``: the cryo-EM tool's name (``.scopeline/run.json``),
    ``miniscope`` (``params.json`` + ``steps/``) or None."""
    state_file = folder / STATE_DIR / RUN_FILE
    if state_file.is_file():
        state = _read_run_state(folder)
        return str(state.get("tool")) if state and state.get("tool") else None
    if (folder / "params.json").is_file() and (folder / "steps").is_dir():
        return "miniscope"
    return None


def find_runs(roots: tuple[Path, ...], max_depth: int = MAX_DEPTH) -> list[RunFolder]:
    """Run folders under each root (the root itself included), at most ``max_depth`` below
    it; symlinked folders are not followed (they could lead outside the roots)."""
    found: dict[Path, RunFolder] = {}
    for root in roots:
        base = len(root.parts)
        for here, dirs, _files in os.walk(root, followlinks=False):
            folder = Path(here)
            kind = run_kind(folder)
            if kind:
                found.setdefault(folder, RunFolder(folder, kind))
                dirs[:] = []  # a run's own sub-folders hold no other runs
                continue
            if len(folder.parts) - base >= max_depth:
                dirs[:] = []
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found.values(), key=lambda r: str(r.path))


def counts(rows: list[dict]) -> dict[str, int]:
    """``{accepted, discarded, failed, pending, overridden, total}`` of decided rows."""
    by = Counter(r.get("status") for r in rows)
    out = {s: by.get(s, 0) for s in STATUSES}
    out["overridden"] = sum(bool(r.get("override")) for r in rows)
    out["total"] = len(rows)
    return out


def state_stamp(run: Run) -> tuple:
    """Changes whenever the run's decided rows may have changed (journal grew, thresholds
    or overrides saved): what the live feed polls instead of re-deciding every second."""
    stamp = []
    for path in (run.journal.path, run.out_dir / STATE_DIR / RUN_FILE, run.out_dir / STATE_DIR / OVERRIDES_FILE):
        try:
            st = path.stat()
            stamp.append((st.st_size, st.st_mtime_ns))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


def decision_fields(run: Run) -> list[dict]:
    """The run's thresholds for the decision form (:func:`scopeline.ui.forms.form_fields`
    entries): the tool's "decided" parameters of docs/tools.md (:data:`THRESHOLDS`), or every
    parameter that does not change a measurement for a tool not listed there."""
    measuring = set(run.spec.measure_fields)
    deciding = [n for n in type(run.params).model_fields if n not in measuring]
    wanted = [n for n in THRESHOLDS.get(run.tool, ()) if n in deciding] or deciding
    fields = {f["label"]: f for f in form_fields(type(run.params), run.params)}
    return [_with_slider(fields[n]) for n in wanted]


def _with_slider(field: dict) -> dict:
    """``field`` with ``slider`` (min, max, step) for a number that has a range in :data:`SLIDERS`."""
    if field["kind"] != "number" or field["label"] not in SLIDERS:
        return field
    low, high, step = SLIDERS[field["label"]]
    value = _number(field["value"]) if not isinstance(field["value"], str) else None
    if value is not None:
        low, high = min(low, value), max(high, value)
    return {**field, "slider": {"min": low, "max": high, "step": step}}


def output_files(folder: Path) -> list[str]:
    """Names of the files directly in a run folder (tables, STAR sets, report), sorted;
    hidden ones (``.scopeline``) left out."""
    try:
        return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError:
        return []


def warnings(folder: Path) -> list[str]:
    """The run's warnings so far (``warnings.txt``: dose anomalies, maxshift notes), oldest first."""
    try:
        return [line for line in (folder / "warnings.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError):
        return []


def accept_rate(rows: list[dict], window: int) -> dict:
    """Share of accepted items (%) over the last ``window`` decided ones (failed and pending
    left out), at each item in acquisition order: ``{"x": indexes, "y": percent}``."""
    xs, ys, recent = [], [], []
    for i, r in enumerate(rows):
        if r.get("status") not in ("accepted", "discarded"):
            continue
        recent.append(r["status"] == "accepted")
        recent = recent[-window:]
        xs.append(i)
        ys.append(100.0 * sum(recent) / len(recent))
    return {"x": xs, "y": ys}


def item_name(row: dict) -> str:
    """Short name of an item for the table (file name of its movie or micrograph)."""
    name = row.get("movie") or row.get("micrograph") or row.get("key") or ""
    return Path(str(name).split("::")[-1]).name or str(name)


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def table_page(rows: list[dict], tool: str, page: int, per_page: int, status: str | None = None) -> dict:
    """One page of the items table: ``rows`` (index, key, name, status, override, values,
    error), ``columns``, ``page``, ``pages``, ``total``."""
    indexed = [(i, r) for i, r in enumerate(rows) if not status or r.get("status") == status]
    columns = [c for c in COLUMNS.get(tool, ()) if any(c in r for _, r in indexed)]
    pages = max(1, math.ceil(len(indexed) / per_page))
    page = min(max(1, page), pages)
    shown = []
    for i, r in indexed[(page - 1) * per_page: page * per_page]:
        values = []
        for c in columns:
            v = _number(r.get(c))
            values.append("" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v)))
        shown.append({"index": i, "key": r.get("key", ""), "name": item_name(r), "status": r.get("status", ""),
                      "override": bool(r.get("override")), "rule_status": r.get("rule_status", ""),
                      "values": values, "error": r.get("error") or "",
                      "can_override": r.get("status") != "failed"})
    return {"rows": shown, "columns": columns, "page": page, "pages": pages, "total": len(indexed),
            "per_page": per_page, "status": status or ""}


def plot_data(rows: list[dict], tool: str, params: dict) -> dict:
    """Plotly-ready data of a run: per status, the points of the tool's plots.

    dose: mean dose per movie in acquisition order (x = item index) with the reference
    band; maxshift: histograms of the largest frame step and the total path; clean:
    histogram of the pick scores with the threshold.
    """
    def series(field, flatten=False):
        out = {}
        for status in STATUSES:
            xs, ys, keys = [], [], []
            for i, r in enumerate(rows):
                if r.get("status") != status:
                    continue
                value = r.get(field)
                values = value if (flatten and isinstance(value, list)) else [value]
                for v in values:
                    v = _number(v)
                    if v is not None:
                        xs.append(i)
                        ys.append(v)
                        keys.append(r.get("key", ""))
            if ys:
                out[status] = {"x": xs, "y": ys, "keys": keys}  # keys: a click opens the item
        return out

    plots = []
    rate = accept_rate(rows, ACCEPT_RATE_WINDOW)
    if rate["x"]:
        plots.append({"id": "accept_rate", "kind": "scatter", "title": f"Accepted, % of the last {ACCEPT_RATE_WINDOW}",
                      "x_title": "item (order)", "y_title": "% accepted", "series": {"accepted": rate},
                      "reference": None, "band": None, "lines": True, "y_range": [0, 102]})
    if tool == "dose":
        ref = next((_number(r.get("reference_dose")) for r in rows if _number(r.get("reference_dose"))), None)
        band = None
        if ref is not None and _number(params.get("max_diff")) is not None:
            band = [ref * (1 - params["max_diff"] / 100), ref * (1 + params["max_diff"] / 100)]
        plots.append({"id": "dose_vs_time", "kind": "scatter", "title": "Dose per movie (acquisition order)",
                      "x_title": "movie (order)", "y_title": "mean dose (e-/Å²/frame)",
                      "series": series("mean_dose"), "reference": ref, "band": band})
    elif tool == "maxshift":
        plots.append({"id": "frame_shift", "kind": "histogram", "title": "Largest frame-to-frame shift",
                      "x_title": "Å", "series": series("max_frame_shift_A"),
                      "threshold": _number(params.get("max_frame_shift"))})
        plots.append({"id": "total_path", "kind": "histogram", "title": "Total path",
                      "x_title": "Å", "series": series("total_path_A"),
                      "threshold": _number(params.get("max_movie_shift"))})
        plots.append({"id": "path_vs_time", "kind": "scatter", "title": "Total path (acquisition order)",
                      "x_title": "movie (order)", "y_title": "Å", "series": series("total_path_A"),
                      "reference": None, "band": None})
    elif tool == "clean":
        plots.append({"id": "scores", "kind": "histogram", "title": "Pick good-region scores",
                      "x_title": "score", "series": series("scores", flatten=True),
                      "threshold": _number(params.get("threshold"))})
    return {"tool": tool, "plots": plots}
