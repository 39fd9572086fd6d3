"""Re-export of a finished run with its curation applied (no re-run), API and CLI."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from scopeline import miniscope
from scopeline.cli import app
from scopeline.errors import ConfigError, InputError
from scopeline.miniscope.curation import Curation, apply_curation
from scopeline.miniscope.export_curated import read_curation, read_result, write_curation
from scopeline.miniscope.simulate_result import write_synthetic_result


@pytest.fixture
def run(tmp_path):
    return write_synthetic_result(tmp_path / "run", n_units=6, n_frames=200, shape=(32, 32))


def test_reexport_applies_the_curation_and_is_repeatable(run):
    before_C = np.load(run / "export" / "C.npy")
    (run / "export" / "shifts.npy").write_bytes(b"kept")  # a file of the step that the re-export carries over
    write_curation(run, Curation(rejected=[11], merges=[[13, 14]]))
    summary = miniscope.export(run)
    assert summary["units_exported"] == 4 and summary["rejected"] == [11] and summary["merged"] == [[13, 14]]
    units = json.loads((run / "export" / "units.json").read_text())
    assert units["unit_ids"] == [10, 12, 13, 15] and units["n_units"] == 4
    assert units["curation"]["rejected"] == [11] and units["curation"]["units_before"] == 6
    A, C = np.load(run / "export" / "A.npy"), np.load(run / "export" / "C.npy")
    assert A.shape == (4, 32, 32) and C.shape == (4, 200)
    np.testing.assert_array_equal(C[[0, 1, 3]], before_C[[0, 2, 5]])  # untouched units keep their traces
    arrays, ids, _ = read_result(run)
    expected = apply_curation(arrays, ids, read_curation(run))
    np.testing.assert_allclose(C[2], expected.arrays["C"][2])
    assert (run / "export" / "shifts.npy").read_bytes() == b"kept"
    assert not [p for p in run.iterdir() if p.name.startswith(".export")]  # no temporary folder left

    write_curation(run, Curation(rejected=[15]))  # from the store again, not from the curated files
    assert miniscope.export(run)["units_exported"] == 5
    assert json.loads((run / "export" / "units.json").read_text())["unit_ids"] == [10, 11, 12, 13, 14]
    assert miniscope.export(run, curation=False)["units_exported"] == 6


def test_reexport_refusals(run, tmp_path):
    write_curation(run, Curation(rejected=[99]))
    with pytest.raises(ConfigError, match="unit 99 is not in this result"):
        miniscope.export(run)
    (run / "curation.json").write_text("{not json")
    with pytest.raises(ConfigError, match="curation.json: not a readable curation file"):
        miniscope.export(run)
    with pytest.raises(InputError, match="no finished export step"):
        miniscope.export(tmp_path)


def test_cli_export(run):
    write_curation(run, Curation(rejected=[10]))
    result = CliRunner().invoke(app, ["miniscope", "export", str(run)])
    assert result.exit_code == 0, result.output
    assert "exported 5 of 6 units (rejected: 10; merged: -)" in result.output
    assert np.load(run / "export" / "A.npy").shape[0] == 5
    result = CliRunner().invoke(app, ["miniscope", "export", str(run), "--no-curation"])
    assert result.exit_code == 0 and np.load(run / "export" / "A.npy").shape[0] == 6
    bad = CliRunner().invoke(app, ["miniscope", "export", str(run / "nowhere")])
    assert bad.exit_code == 2 and "no finished export step" in bad.output


def test_reexport_of_a_real_run_matches_the_export_step(tmp_path):
    """On a real (tiny) pipeline run: without curation the re-export writes what the export
    step wrote (A in the input frame, C, S, ids); a rejection removes exactly that unit."""
    from scopeline.miniscope.api import run_pipeline
    from scopeline.miniscope.params import MiniscopeParams
    from scopeline.miniscope.simulate import SimulationParams, simulate_recording

    p = MiniscopeParams()
    p.config.fps = 10.0
    p.load.chunk_frames = p.crop.chunk_frames = p.init.chunk_frames = 100
    p.init.n_components = 8
    p.export.formats = ["zarr"]
    simulate_recording(tmp_path / "video", SimulationParams(height=64, width=64, n_frames=200, n_neurons=6, fps=10.0,
                                                            frames_per_file=100, seed=3, jump_times=()))
    out = tmp_path / "out"
    run_pipeline(tmp_path / "video", out, p, scheduler="synchronous")
    before = {name: np.load(out / "export" / f"{name}.npy") for name in ("A", "C", "S", "b", "f")}
    ids = json.loads((out / "export" / "units.json").read_text())["unit_ids"]
    assert len(ids) >= 2
    miniscope.export(out)
    for name, array in before.items():
        np.testing.assert_array_equal(np.load(out / "export" / f"{name}.npy"), array, err_msg=name)
    write_curation(out, Curation(rejected=[ids[0]]))
    miniscope.export(out)
    np.testing.assert_array_equal(np.load(out / "export" / "A.npy"), before["A"][1:])
    np.testing.assert_array_equal(np.load(out / "export" / "C.npy"), before["C"][1:])
    assert json.loads((out / "export" / "units.json").read_text())["unit_ids"] == ids[1:]
    assert (out / "export" / "shifts.npy").exists() and (out / "export" / "results.zarr").is_dir()
