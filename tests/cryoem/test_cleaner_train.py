"""Training runs end to end (tiny), the ONNX export agrees with torch, fine-tuning reads pairs."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scopeline.cryoem.cleaner.onnx_export import load_unet  # noqa: E402
from scopeline.cryoem.cleaner.predict import BadRegionModel  # noqa: E402
from scopeline.cryoem.cleaner.train import (  # noqa: E402
    TrainConfig,
    WeightAverage,
    init_unet,
    load_pair,
    train,
    train_ensemble,
)


def _write_mrc(path, data):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.asarray(data, np.float32))


def test_tiny_training_run_writes_consistent_models(tmp_path):
    mic = np.random.default_rng(0).normal(100, 5, (256, 256)).astype(np.float32)
    mask = np.zeros_like(mic)
    mask[:, :100] = 1
    mic[:, :100] -= 30
    _write_mrc(tmp_path / "m.mrc", mic)
    _write_mrc(tmp_path / "k.mrc", mask)
    config = TrainConfig(out=tmp_path / "run", steps=3, batch=2, crop=64, image_size=64, buffer=4,
                         channels=(4, 8), pairs=[(tmp_path / "m.mrc", tmp_path / "k.mrc")], box_size=32)
    summary = train(config, log=lambda text: None)
    assert summary["steps_done"] == 3
    log = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert log["config"]["steps"] == 3 and log["pairs"][0][0].endswith("m.mrc")

    x = np.random.default_rng(1).normal(size=(2, 1, 64, 96)).astype(np.float32)
    with torch.no_grad():
        expected = load_unet(tmp_path / "run" / "cleaner_unet.pt")(torch.from_numpy(x)).numpy()
    got = BadRegionModel(tmp_path / "run" / "cleaner_unet.onnx").logits(x)
    assert np.allclose(got, expected, atol=1e-4)

    # the same seed gives the same weights
    train(config.__class__(**{**vars(config), "out": tmp_path / "again"}), log=lambda text: None)
    first = torch.load(tmp_path / "run" / "cleaner_unet.pt", weights_only=True)["state_dict"]
    second = torch.load(tmp_path / "again" / "cleaner_unet.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_an_ensemble_is_the_maximum_of_its_members_and_resumes(tmp_path):
    from dataclasses import replace

    from scopeline.errors import ConfigError

    mic = np.random.default_rng(0).normal(100, 5, (256, 256)).astype(np.float32)
    mask = np.zeros_like(mic)
    mask[:, :100] = 1
    _write_mrc(tmp_path / "m.mrc", mic)
    _write_mrc(tmp_path / "k.mrc", mask)
    config = TrainConfig(out=tmp_path / "ens", steps=2, batch=2, crop=64, image_size=64, buffer=4, channels=(4, 8),
                         pairs=[(tmp_path / "m.mrc", tmp_path / "k.mrc")], box_size=32, seed=5, members=2)
    summary = train_ensemble(config, log=lambda text: None)
    assert [m["config"]["seed"] for m in summary["members"]] == [5, 6]
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 1, 64, 64)).astype(np.float32))
    with torch.no_grad():
        members = [load_unet(tmp_path / "ens" / f"member-{k}" / "cleaner_unet.pt")(x).numpy() for k in (0, 1)]
        ensemble = load_unet(tmp_path / "ens" / "cleaner_unet.pt")(x).numpy()
    assert not np.allclose(members[0], members[1])
    assert np.array_equal(ensemble, np.maximum(*members))  # worked by hand: the larger logit wins
    onnx = BadRegionModel(tmp_path / "ens" / "cleaner_unet.onnx").logits(x.numpy())
    assert np.allclose(onnx, ensemble, atol=1e-4)

    # an interrupted run resumes: a member with a log is not trained again
    (tmp_path / "ens" / "train_log.json").unlink()
    stamp = (tmp_path / "ens" / "member-0" / "cleaner_unet.pt").stat().st_mtime_ns
    lines = []
    train_ensemble(config, log=lines.append)
    assert any("member 0: trained already" in line for line in lines)
    assert (tmp_path / "ens" / "member-0" / "cleaner_unet.pt").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="other options"):  # never mixes members of other recipes
        train_ensemble(replace(config, lr=1e-2), log=lambda text: None)

    # fine-tuning from an ensemble starts member k from member k
    first = init_unet(tmp_path / "ens" / "cleaner_unet.pt", member=1).state_dict()
    second = torch.load(tmp_path / "ens" / "member-1" / "cleaner_unet.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(first[k], second[k]) for k in second)


def test_weight_average_is_the_exponential_moving_average_of_the_steps():
    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    average = WeightAverage(model, decay=0.5)
    expected = model[0].weight.detach().clone()
    for step, value in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        with torch.no_grad():
            model[0].weight.fill_(value)
        model[1].num_batches_tracked += 1
        average.update(model)
        decay = min(0.5, (1 + step) / (10 + step))  # a shorter memory over the first steps
        expected = decay * expected + (1 - decay) * value
    assert torch.allclose(average.model[0].weight, expected)
    assert int(average.model[1].num_batches_tracked) == 4  # counters are copied, not averaged
    assert not torch.equal(average.model[0].weight, model[0].weight)


def test_a_deeper_unet_starts_from_the_checkpoint_outer_levels(tmp_path):
    from scopeline.cryoem.cleaner.model import UNet
    from scopeline.errors import ConfigError

    small = UNet((4, 8))
    torch.save({"channels": [4, 8], "state_dict": small.state_dict()}, tmp_path / "small.pt")
    deep = init_unet(tmp_path / "small.pt", (4, 8, 16))
    assert deep.channels == (4, 8, 16) and deep.multiple == 4
    old, new = small.state_dict(), deep.state_dict()
    assert torch.equal(new["down.0.0.weight"], old["down.0.0.weight"])
    assert torch.equal(new["down.1.0.weight"], old["down.1.0.weight"])
    assert torch.equal(new["up.1.0.weight"], old["up.0.0.weight"])  # the outer decoder block, renumbered
    assert torch.equal(new["head.weight"], old["head.weight"])
    assert new["up.0.0.weight"].shape[1] == 16 + 8  # the new inner block: random
    assert init_unet(tmp_path / "small.pt", (4, 8)).channels == (4, 8)
    with pytest.raises(ConfigError):
        init_unet(tmp_path / "small.pt", (8, 8, 16))


def test_user_pair_is_brought_to_model_scale(tmp_path):
    mic = np.ones((320, 480), np.float32)
    mic[:, :240] = 0
    _write_mrc(tmp_path / "m.mrc", mic)
    _write_mrc(tmp_path / "k.mrc", mic)
    image, mask = load_pair(tmp_path / "m.mrc", tmp_path / "k.mrc", box_size=64)  # factor 4
    assert image.shape == mask.shape == (80, 120)
    assert mask[:, :60].max() == 0 and mask[:, 60:].min() == 1


def test_sampling_variation_keeps_image_and_mask_aligned():
    from scopeline.cryoem.cleaner.train import vary_sampling

    image = np.zeros((200, 200), np.float32)
    image[50:150, 50:150] = -10  # a dark square, and its mask
    mask = (image < 0).astype(np.float32)
    for seed in range(8):
        a, m = vary_sampling(np.random.default_rng(seed), image, mask)
        again, _ = vary_sampling(np.random.default_rng(seed), image, mask)
        assert np.array_equal(a, again)  # reproducible from the seed
        assert a.shape == m.shape and 0 <= m.min() and m.max() <= 1
        assert a[m > 0.99].mean() < -5 and abs(a[m < 0.01].mean()) < 2


def test_shipped_recipe_command_line_holds_the_documented_recipe():
    from scopeline.cryoem.cleaner.train import WEIGHTS, parse_config

    config = parse_config(["shipped", "--out", "runs/x", "--hold-out", "Falcon_A", "--real", "/data"])
    assert (config.steps, config.seed, config.threads, config.crop, config.window) == (600, 2, 1, 112, 176)
    assert config.init == WEIGHTS / "cleaner_unet_simulated.pt" and config.init.exists()
    assert str(config.real) == "/data" and config.hold_out == ["Falcon_A"] and config.real_fraction == 0.7
    assert parse_config(["--out", "runs/y"]).steps == 1500  # plain training keeps its defaults
