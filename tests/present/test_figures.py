"""Figures without global state: importing scopeline (every module) and drawing its figures
leaves matplotlib's backend as the user set it; figure functions return Figures."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

import scopeline

SRC = Path(scopeline.__file__).parent

CHILD = r"""
import importlib, json, pkgutil, sys
import matplotlib
before = matplotlib.get_backend()
import scopeline
failed = {}
for info in pkgutil.walk_packages(scopeline.__path__, "scopeline."):
    try:
        importlib.import_module(info.name)
    except ImportError as exc:  # optional extras (torch, onnx) not installed
        failed[info.name] = str(exc)
import numpy as np
from scopeline.cryoem.dose_plots import plot_dose_vs_time
from scopeline.present.figures import save_figure
rows = [{"mean_dose": 1.0 + 0.01 * i, "status": "accepted", "reference_dose": 1.0, "diff_percent": i}
        for i in range(5)]
save_figure(plot_dose_vs_time(rows, 5.0), sys.argv[1])
print(json.dumps({"before": before, "after": matplotlib.get_backend(), "failed": failed,
                  "pyplot": "matplotlib.pyplot" in sys.modules}))
"""


def test_importing_every_module_and_drawing_keeps_the_users_backend(tmp_path):
    """Main called matplotlib.use("Agg") in eight places, some at import time, which switched
    a notebook user's backend."""
    env = {**os.environ, "MPLBACKEND": "svg", "PYTHONPATH": str(SRC.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "f.png")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["before"] == "svg" and result["after"] == "svg"
    assert not result["pyplot"]  # nothing imports pyplot and its global figure registry
    assert set(result["failed"]) <= {"scopeline.cryoem.cleaner.train", "scopeline.cryoem.cleaner.model",
                                     "scopeline.cryoem.cleaner.onnx_export"}, result["failed"]
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_no_module_selects_a_backend_or_uses_pyplot():
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "use" and getattr(node.value, "id", "") == "matplotlib":
                pytest.fail(f"{path}: matplotlib.use")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any("pyplot" in n for n in names), f"{path}: imports pyplot"


def _motion_records():
    rng = np.random.default_rng(0)
    out = []
    for i, status in enumerate(["accepted", "discarded", "accepted"]):
        shifts = np.cumsum(rng.normal(0, 1, (10, 2)), axis=0)
        out.append({"movie": f"m{i}.tif", "status": status, "shifts_px": shifts.tolist(), "pixel_size": 1.0,
                    "max_frame_shift_A": 2.0 + i, "total_path_A": 10.0 + i, "early_A": 1.0})
    return out


def test_figure_functions_return_figures():
    from scopeline.cryoem import dose_plots, maxshift_plots
    from scopeline.cryoem.cleaner import plots as clean_plots
    from scopeline.miniscope import report as mini
    from scopeline.miniscope.steps.cnmf_common import plot_traces
    from scopeline.miniscope.steps.cnmf_spatial import footprints_figure
    from scopeline.miniscope.steps.export import distributions_figure, units_figure
    from scopeline.miniscope.steps.noise import noise_figure

    rows = [{"mean_dose": 1.0, "status": s, "reference_dose": 1.0, "diff_percent": 0.5}
            for s in ("accepted", "discarded", "failed")]
    records = _motion_records()
    image = np.random.default_rng(1).random((32, 32))
    footprints = np.zeros((2, 32, 32))
    footprints[0, 5:10, 5:10] = footprints[1, 20:25, 20:25] = 1
    units = {"A": footprints, "unit_ids": np.array([1, 2]), "snr": np.array([3.0, 4.0]),
             "size_px": np.array([25, 25])}
    traces = np.abs(np.random.default_rng(2).normal(size=(2, 50)))
    figures = [
        dose_plots.plot_dose_vs_time(rows, 5.0), dose_plots.plot_dose_difference(rows, 5.0),
        maxshift_plots.plot_trajectory_page(records, "t"), maxshift_plots.plot_histograms(records, 3.0, 11.0, 2.0),
        clean_plots.score_histogram(np.linspace(0, 1, 20), 0.5),
        clean_plots.thumbnail(image, image, np.array([5.0]), np.array([6.0]), np.array([True]), 8.0, "m"),
        mini.frames_figure(image, image), mini.motion_figure(np.zeros((5, 2)), np.arange(5), np.array([2])),
        mini.line_split_figure(np.arange(5.0), 2.0, np.array([3])), mini.variance_figure(np.linspace(0.1, 1, 5)),
        mini.components_figure(image, footprints, "units"),
        footprints_figure(image, (np.zeros((32, 32, 4)), 2), (np.zeros((32, 32, 4)), 1)),
        units_figure(image, units), distributions_figure(units), noise_figure(image, image),
        plot_traces(traces, traces, traces, np.array([1, 2]), 2, 10.0),
    ]
    assert all(isinstance(f, Figure) for f in figures)


def test_save_figure_is_atomic_and_readable(tmp_path):
    from scopeline.present.figures import new_figure, save_figure

    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1])
    path = save_figure(fig, tmp_path / "a.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
