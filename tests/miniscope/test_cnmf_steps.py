"""Steps 5-8 on a small synthetic movie (steps 1-4 replaced by their known outputs):
accuracy, export formats (NWB read back with pynwb), clear failures, re-running a step."""

import json
import pickle

import numpy as np
import pytest

from scopeline.errors import ScopelineError
from scopeline.miniscope.cnmf.metrics import accuracy_summary

from .cnmf_synthetic import make_cnmf_movie, run_cnmf_steps, write_fake_upstream


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cnmf_run")
    data = make_cnmf_movie(h=48, w=48, n=8, T=1500, seed=11)
    write_fake_upstream(out, data)
    summaries = run_cnmf_steps(out)
    return out, data, summaries


def test_recovers_ground_truth(finished_run):
    out, data, _ = finished_run
    A, C, S = (np.load(out / "export" / f"{k}.npy") for k in "ACS")
    result = accuracy_summary(A, C, S, data["A"], data["C"], data["S"])
    assert result["f1"] == 1.0
    assert result["median_corr_C"] > 0.98
    assert result["median_corr_S"] > 0.9
    assert result["median_footprint_similarity"] > 0.98


def test_export_layout_and_formats(finished_run):
    out, data, summaries = finished_run
    export = out / "export"
    A, C, S, b, f = (np.load(export / f"{k}.npy") for k in ("A", "C", "S", "b", "f"))
    n = summaries["export"]["units_exported"]
    assert A.shape == (n, 48, 48) and A.dtype == np.float32
    assert C.shape == S.shape == (n, 1500)
    assert b.shape == (8, 48, 48) and f.shape == (8, 1500)  # eight background components by default
    units = json.loads((export / "units.json").read_text())
    assert len(units["unit_ids"]) == n and len(units["timestamps_s"]) == 1500
    assert units["timestamps_s"][10] == pytest.approx(1.0)  # fps 10
    assert {"created", "temporal_settings", "dropped_units", "parameters"} <= set(units)
    with open(export / "results.pkl", "rb") as handle:
        pickled = pickle.load(handle)
    np.testing.assert_array_equal(pickled["C"], C)
    import zarr

    group = zarr.open_group(str(export / "results.zarr"), mode="r")
    np.testing.assert_array_equal(group["A"][...], A)
    assert group.attrs["unit_ids"] == units["unit_ids"]
    assert not list(export.glob(".*"))  # no temporary leftovers


def test_nwb_round_trip(finished_run):
    out, _, _ = finished_run
    from pynwb import NWBHDF5IO

    A, C, S = (np.load(out / "export" / f"{k}.npy") for k in "ACS")
    with NWBHDF5IO(str(out / "export" / "results.nwb"), "r") as io:
        nwb = io.read()
        ophys = nwb.processing["ophys"]
        masks = ophys["ImageSegmentation"]["PlaneSegmentation"]["image_mask"][:]
        fluorescence = ophys["Fluorescence"]["C"]
        spikes = ophys["Deconvolved"]["S"]
        np.testing.assert_allclose(masks, A)
        np.testing.assert_allclose(fluorescence.data[:].T, C)
        np.testing.assert_allclose(spikes.data[:].T, S)
        np.testing.assert_allclose(fluorescence.timestamps[:3], [0.0, 0.1, 0.2])
        assert len(fluorescence.rois) == len(A)


def test_report_figures_written(finished_run):
    out, _, _ = finished_run
    names = {p.name for p in (out / "report").glob("*.png")}
    assert {"export_footprints.png", "export_traces.png", "export_distributions.png",
            "noise_noise_map.png", "cnmf_spatial_footprints.png"} <= names


def test_rerunning_a_step_gives_the_same_export(finished_run):
    out, _, _ = finished_run
    before = np.load(out / "export" / "C.npy")
    run_cnmf_steps(out, names=["cnmf_spatial", "export"])
    np.testing.assert_array_equal(np.load(out / "export" / "C.npy"), before)


def test_no_surviving_units_fails_clearly(tmp_path):
    data = make_cnmf_movie(h=32, w=32, n=3, T=400, seed=2)
    write_fake_upstream(tmp_path, data)
    with pytest.raises(ScopelineError) as err:
        run_cnmf_steps(tmp_path, params={"export": {"min_snr": 1e9}})
    message = str(err.value)
    assert "no components survive the final filter" in message and "store.zarr" in message
    assert "\n" not in message
    dropped = json.loads((tmp_path / "steps" / "export" / "dropped_units.json").read_text())
    assert len(dropped) == 3 and all("SNR" in d["reason"] for d in dropped)


def test_size_filter_records_dropped_units(tmp_path):
    data = make_cnmf_movie(h=32, w=32, n=3, T=400, seed=3)
    data["A_init"][1] = 0
    data["A_init"][1, 5, 5] = 1.0  # a 1-pixel component
    write_fake_upstream(tmp_path, data)
    run_cnmf_steps(tmp_path, names=["noise"])
    dropped = json.loads((tmp_path / "steps" / "noise" / "dropped_units.json").read_text())
    assert [d["unit_id"] for d in dropped] == [2] and "size 1 px < 10" in dropped[0]["reason"]


def test_nan_in_footprints_fails_clearly(tmp_path):
    data = make_cnmf_movie(h=32, w=32, n=2, T=200, seed=4)
    data["A_init"][0, 3, 3] = np.nan
    write_fake_upstream(tmp_path, data)
    with pytest.raises(ScopelineError, match="A_init holds 1 NaN/Inf values"):
        run_cnmf_steps(tmp_path, names=["noise"])


def test_missing_upstream_fails_clearly(tmp_path):
    with pytest.raises(ScopelineError, match="no stored array 'Y'"):
        run_cnmf_steps(tmp_path, names=["noise"])


def test_ring_background_runs_through_steps_6_to_8(tmp_path):
    """background_model='ring': steps 6 and 7 store a ring background (step 7's refitted
    on its units), steps 7-8 fit Y minus it, and the cells are still all found (issue 11's
    sparse target: F1 >= 0.97) with their traces (corr C >= 0.95)."""
    data = make_cnmf_movie(h=48, w=48, n=8, T=800, seed=11)
    write_fake_upstream(tmp_path, data)
    run_cnmf_steps(tmp_path, params={"cnmf_temporal": {"background_model": "ring", "ring_radius": 6}})
    for step in ("cnmf_temporal", "cnmf_spatial"):
        ring = json.loads((tmp_path / "steps" / step / "ring_background.json").read_text())
        assert ring["radius"] == 6 and ring["width"] == 2
    A, C, S = (np.load(tmp_path / "export" / f"{k}.npy") for k in "ACS")
    result = accuracy_summary(A, C, S, data["A"], data["C"], data["S"])
    assert result["f1"] >= 0.97
    assert result["median_corr_C"] >= 0.95
