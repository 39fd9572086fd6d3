import json

import pytest

from scopeline.errors import ConfigError, InputError
from scopeline.miniscope.api import write_default_params
from scopeline.miniscope.params import MiniscopeParams, load_params, save_params


def test_defaults_are_the_documented_ones():
    p = MiniscopeParams()
    assert p.load.pattern == r"\.avi$"
    assert (p.detect.min_distances, p.detect.threshold_rels, p.detect.sigmas) == ([10, 20, 30], [0.1, 0.2], [1.0, 2.0])
    assert (p.detect.merge_distance, p.detect.merge_size_ratio, p.detect.min_component_size) == (25.0, 5.0, 9)
    assert (p.detect.temporal_corr_threshold, p.detect.spatial_overlap_threshold) == (0.75, 0.3)
    assert (p.init.power_iterations, p.init.sparsity_threshold) == (5, 0.05)
    assert p.detect.normalize == "max" and p.motion.fill_value == 0.0


def test_save_and_load_roundtrip(tmp_path):
    p = MiniscopeParams()
    p.config.animal_id = "mouse-A7"  # ids need not be numeric
    p.preprocess.denoise = "bilateral"
    p.motion.mesh = (5, 5)
    save_params(p, tmp_path / "p.json")
    assert load_params(tmp_path / "p.json") == p


def test_partial_file_takes_defaults(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"detect": {"normalize": "l1"}}))
    p = load_params(tmp_path / "p.json")
    assert p.detect.normalize == "l1" and p.load.chunk_frames == MiniscopeParams().load.chunk_frames


def test_bad_files_give_one_line_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="bad.json"):
        load_params(tmp_path / "bad.json")
    (tmp_path / "typo.json").write_text(json.dumps({"detect": {"normalise": "l1"}}))
    with pytest.raises(ConfigError, match=r"typo.json: invalid parameter detect.normalise"):
        load_params(tmp_path / "typo.json")
    (tmp_path / "even.json").write_text(json.dumps({"preprocess": {"denoise_size": 4}}))
    with pytest.raises(ConfigError, match="odd"):
        load_params(tmp_path / "even.json")


def test_write_default_params(tmp_path):
    path = write_default_params(tmp_path / "defaults.json")
    assert load_params(path) == MiniscopeParams()


def test_static_params_class_and_explicit_step_registry():
    """Issue 12 item 6: a class written in the source (not built by create_model at run
    time) and a registry pairing every step with its field and model."""
    import inspect

    from scopeline.miniscope import pipeline
    from scopeline.miniscope.params import STEP_PARAMS

    assert "class MiniscopeParams" in inspect.getsource(MiniscopeParams)
    assert [s.name for s in pipeline.STEPS] == list(MiniscopeParams.model_fields) == list(STEP_PARAMS)
    for step in pipeline.STEPS:
        assert MiniscopeParams.model_fields[step.name].annotation is step.params_model
        assert MiniscopeParams.model_fields[step.name].description


def test_params_file_of_an_earlier_version_loads(tmp_path):
    """A params.json written by `scopeline miniscope params` before the static class."""
    from pathlib import Path

    old = Path(__file__).parent / "data" / "params_main_2026-12.json"
    loaded = json.loads(load_params(old).model_dump_json())
    new = json.loads(write_default_params(tmp_path / "new.json").read_text())
    for section, values in json.loads(old.read_text()).items():  # the old values are kept
        assert {k: loaded[section][k] for k in values} == values, section
        assert set(new[section]) >= set(values), section  # no parameter lost since
