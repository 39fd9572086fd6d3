"""Real-data training pieces: label mapping, folder pairing, augmented windows, defects,
figures on labelled micrographs, and fine-tuning on a user's own labels (tiny)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from scopeline.cryoem.cleaner.augment import (
    paste_defects,
    phase_randomised,
    reduce,
    sample_window,
    thicker_ice,
    vary_look,
)
from scopeline.cryoem.cleaner.realdata import BAD, GOOD, IGNORE, Labelled, labels_to_target, pair_folders, read_labelled
from scopeline.cryoem.cleaner.realeval import evaluate_micrograph
from scopeline.errors import InputError


def test_class_and_binary_label_conventions():
    classes = np.array([[0, 1, 2, 3, 4, 5]], np.uint8)
    assert labels_to_target(classes).tolist() == [[GOOD, GOOD, BAD, BAD, IGNORE, BAD]]
    assert labels_to_target(np.array([[0, 1, 255]]), "binary").tolist() == [[GOOD, BAD, BAD]]
    assert labels_to_target(np.array([[0.0, 2.0, 4.0]], np.float32)).tolist() == [[GOOD, BAD, IGNORE]]


def test_pair_folders_matches_by_stem_and_names_the_folder_when_nothing_matches(tmp_path):
    (tmp_path / "im").mkdir()
    (tmp_path / "lab").mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / "im" / name), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(tmp_path / "lab" / "a_class.png"), np.zeros((8, 8), np.uint8))
    pairs = pair_folders(tmp_path / "im", tmp_path / "lab")
    assert [(m.name, k.name) for m, k in pairs] == [("a.png", "a_class.png")]
    with pytest.raises(InputError, match="no label file"):
        pair_folders(tmp_path / "lab", tmp_path / "im")
    cv2.imwrite(str(tmp_path / "lab" / "b.png"), np.zeros((9, 8), np.uint8))
    with pytest.raises(InputError, match="differs"):
        read_labelled(tmp_path / "im" / "b.png", tmp_path / "lab" / "b.png", 16)


def _half_bad(size=1024, box=64.0):
    target = np.zeros((size, size), np.uint8)
    target[:, : size // 2] = BAD
    target[:40] = IGNORE
    image = np.where(target == BAD, 200, 50).astype(np.uint8)
    return Labelled("half", image, target, box)


def test_windows_keep_image_and_labels_aligned_under_zoom_and_rotation():
    window = reduce(_half_bad())
    rng = np.random.default_rng(3)
    for _ in range(20):
        image, mask, weight = sample_window(rng, window, size=96)
        assert image.shape == mask.shape == weight.shape == (96, 96)
        sure = (weight > 0) & ((mask < 0.01) | (mask > 0.99))
        sure = cv2.erode(sure.astype(np.uint8), np.ones((3, 3))) > 0  # away from the edge blur
        assert np.all(image[sure & (mask > 0.99)] > 190) and np.all(image[sure & (mask < 0.01)] < 60)


def test_pasted_defects_change_the_image_where_the_mask_says():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, (128, 128)).astype(np.float32)
    for seed in range(10):
        image, mask = paste_defects(np.random.default_rng(seed), base, np.zeros_like(base))
        assert 0 <= mask.min() and mask.max() <= 1 and mask.max() > 0.5
        inside, outside = mask > 0.99, mask < 0.01
        if inside.sum() < 20 or outside.sum() < 20:
            continue
        change = image - base
        change -= np.median(change[outside])  # a thickness gradient may shift everything
        assert np.mean(np.abs(change[inside])) > 3 * np.mean(np.abs(change[outside]))


def _particles_on_ice(rng, size=160, n=120):
    """Model-scale ice with dark particle disks (radius 6 px) and pixel noise."""
    image = rng.normal(0, 0.3, (size, size)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    for y, x in rng.uniform(0, size, (n, 2)):
        image[np.hypot(yy - y, xx - x) < 6] -= 1.0
    return image


@pytest.mark.parametrize("grain", ["fine", "spectrum"])
def test_pasted_carbon_film_replaces_the_ice_without_particles(grain):
    rng = np.random.default_rng(4)
    base = _particles_on_ice(rng)
    q25, median, q75 = np.percentile(base, [25, 50, 75])
    checked = 0
    for seed in range(12):
        image, mask = paste_defects(np.random.default_rng(seed), base, np.zeros_like(base), n_max=1,
                                    carbon="film", carbon_share=1.0, film_grain=grain)
        deep = cv2.erode((mask > 0.99).astype(np.uint8), np.ones((15, 15))) > 0  # away from the fringe
        if deep.sum() < 200 or (mask < 0.01).sum() < 200:
            continue
        checked += 1
        # another level than the ice (darker, sometimes brighter: >= 0.2 IQR less the faint kept particles)
        assert abs(np.median(image[deep]) - median) > 0.1 * (q75 - q25)
        # the particles are gone: the film hardly follows the ice it replaced
        assert abs(np.corrcoef(image[deep], base[deep])[0, 1]) < 0.5
    assert checked >= 4


def test_spectrum_grain_has_the_ice_power_at_every_scale_but_no_particles():
    base = _particles_on_ice(np.random.default_rng(4))
    grain = phase_randomised(np.random.default_rng(0), base)
    power = lambda a: np.abs(np.fft.rfft2(a - a.mean())) ** 2  # noqa: E731
    assert np.allclose(power(grain), power(base), rtol=1e-3, atol=1e-3 * power(base).max())
    skew = lambda a: float(np.mean((a - a.mean()) ** 3) / a.std() ** 3)  # noqa: E731
    assert skew(base) < -1.0  # dark disks: a long dark tail
    assert abs(skew(grain)) < 0.2  # Gaussian texture: the disks' shapes are gone
    assert abs(np.corrcoef(grain.ravel(), base.ravel())[0, 1]) < 0.1


def test_thicker_ice_is_darker_and_fades_the_particles_but_keeps_the_texture_strength():
    base = _particles_on_ice(np.random.default_rng(4))
    size = base.shape[1]
    pattern = np.tile(np.linspace(-2, 2, size, dtype=np.float32), (base.shape[0], 1))  # thicker to the right
    out = thicker_ice(np.random.default_rng(0), base, pattern, amplitude=0.5)
    thin, thick = np.s_[:, : size // 4], np.s_[:, -size // 4 :]
    assert np.median(out[thick]) < np.median(base[thick]) - 0.5  # darker by ~ amplitude * pattern
    assert np.median(out[thin]) > np.median(base[thin]) + 0.5
    detail = lambda a: a - cv2.GaussianBlur(a, (0, 0), 3.0)  # noqa: E731
    assert np.corrcoef(detail(out)[thin].ravel(), detail(base)[thin].ravel())[0, 1] > 0.95  # particles kept
    assert np.corrcoef(detail(out)[thick].ravel(), detail(base)[thick].ravel())[0, 1] < 0.8  # fading
    assert 0.7 < detail(out)[thick].std() / detail(base)[thick].std() < 1.3  # as strong a texture


def test_normalisation_context_keeps_crop_and_labels_aligned():
    from pathlib import Path

    from scopeline.cryoem.cleaner.train import TrainConfig, real_crop

    window = reduce(_half_bad())
    rng = np.random.default_rng(5)
    config = TrainConfig(out=Path("."), norm_context=160)
    for _ in range(20):
        image, mask, weight = real_crop(rng, window, 48, 96, config)
        assert image.shape == mask.shape == weight.shape == (48, 48)
        bad, good = (weight > 0) & (mask > 0.99), (weight > 0) & (mask < 0.01)
        if bad.sum() > 50 and good.sum() > 50:
            assert np.median(image[bad]) > np.median(image[good])  # the bad half is the bright one


def test_look_variation_keeps_shape_and_finite_values():
    rng = np.random.default_rng(1)
    image = rng.normal(0, 1, (64, 80)).astype(np.float32)
    for _ in range(10):
        out = vary_look(rng, image)
        assert out.shape == image.shape and out.dtype == np.float32 and np.isfinite(out).all()


def test_figures_of_a_perfect_mask():
    item = _half_bad(size=512, box=32.0)
    prob = cv2.resize((item.target == BAD).astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    particles = np.array([[400.0, 300.0], [300.0, 100.0], [270.0, 300.0]])  # the last one's box crosses the edge
    r = evaluate_micrograph(prob, item.target, particles, item.box_size, threshold=0.65)
    assert r["pixel_auc"] == 1.0 and r["deep_bad_removed"] == 1.0
    assert r["n_good"] == 2 and r["good_kept"] == 1.0
    assert r["n_deep_bad"] > 50 and r["area_flagged"] < 0.15


def test_fine_tune_on_own_labels_gives_a_model_clean_can_use(tmp_path):
    pytest.importorskip("torch")
    from scopeline.cryoem.cleaner.predict import BadRegionModel
    from scopeline.cryoem.cleaner.train import TrainConfig, train

    rng = np.random.default_rng(0)
    (tmp_path / "im").mkdir()
    (tmp_path / "lab").mkdir()
    for i in range(2):
        labels = np.zeros((256, 256), np.uint8)
        labels[:, :100] = 3
        labels[200:] = 4
        image = np.clip(rng.normal(120, 20, labels.shape) - 40 * (labels == 3), 0, 255).astype(np.uint8)
        cv2.imwrite(str(tmp_path / "im" / f"m{i}.png"), image)
        cv2.imwrite(str(tmp_path / "lab" / f"m{i}_class.png"), labels)
    config = TrainConfig(out=tmp_path / "run", steps=2, batch=2, crop=32, window=48, image_size=64, buffer=0,
                         channels=(4, 8), images=tmp_path / "im", labels=tmp_path / "lab", box_size=32)
    summary = train(config, log=lambda text: None)
    assert summary["steps_done"] == 2 and summary["real_micrographs"] == ["m0", "m1"]
    logits = BadRegionModel(tmp_path / "run" / "cleaner_unet.onnx", device="cpu").logits(np.zeros((1, 1, 32, 32), np.float32))
    assert logits.shape == (1, 1, 32, 32) and np.isfinite(logits).all()


def test_clean_train_command_reports_bad_options_in_one_line(tmp_path):
    from scopeline.cli import app

    result = CliRunner().invoke(app, ["clean-train", "--images", str(tmp_path / "nope"), "--labels", str(tmp_path),
                                      "--out", str(tmp_path / "o"), "--box-size", "64"])
    assert result.exit_code == 2 and "--images" in result.output
    result = CliRunner().invoke(app, ["clean-train", "--images", str(tmp_path), "--labels", str(tmp_path),
                                      "--out", str(tmp_path / "o"), "--box-size", "64", "--label-format", "rgb"])
    assert result.exit_code == 2 and "label format" in result.output


def test_clean_train_spelling_of_the_issue_runs_the_same_command(tmp_path):
    from scopeline.cli import app

    result = CliRunner().invoke(app, ["clean", "train", "--images", str(tmp_path / "nope"), "--labels", str(tmp_path),
                                      "--out", str(tmp_path / "o"), "--box-size", "64"])
    assert result.exit_code == 2 and "--images" in result.output
    result = CliRunner().invoke(app, ["clean", "--help"])  # `clean` itself is unchanged
    assert result.exit_code == 0 and "--micrographs" in result.output


def test_threshold_chosen_on_other_micrographs_balances_removed_and_kept():
    from scopeline.cryoem.cleaner.realeval import choose_threshold

    # deep-bad picks score 0.5-0.7, good ones 0.8-1.0: any threshold in [0.7, 0.8) separates them;
    # the lowest of the tied grid values is taken
    deep, good = np.linspace(0.5, 0.7, 21), np.linspace(0.8, 1.0, 21)
    assert choose_threshold([(deep[:10], good[:10]), (deep[10:], good[10:])]) == 0.7
    # overlapping (deep 0.45-0.65, good 0.55-0.75): 0.55 removes 11/21, 0.6 removes 16/21 and keeps
    # 15/21, 0.65 keeps 10/21: 0.6 balances them
    assert choose_threshold([(deep - 0.05, good - 0.25)]) == 0.6


def test_a_look_resamples_regions_and_particles_with_the_image():
    from scopeline.cryoem.cleaner.realeval import apply_look

    item = _half_bad(size=512, box=32.0)
    item.particles = np.array([[400.0, 300.0], [99.5, 0.0]])
    image, target, particles, box = apply_look(item, "resampled x0.5")
    assert image.shape == target.shape == (256, 256) and box == 16.0
    assert np.array_equal(target, item.target[::2, ::2])  # the half-bad split stays where it was
    assert np.allclose(particles, [[199.75, 149.75], [49.5, -0.25]])  # pixel centres: (x + 0.5) / 2 - 0.5
    image, target, particles, box = apply_look(item, "box x1.4")
    assert target is item.target and box == pytest.approx(44.8) and np.array_equal(particles, item.particles)
