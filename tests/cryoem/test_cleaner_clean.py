"""`scopeline clean` end to end with the shipped model on micrographs whose answer is known."""

from __future__ import annotations

import json
from dataclasses import replace

import mrcfile
import numpy as np
import pandas as pd
import pytest

from scopeline.cryoem.cleaner import clean as clean_module
from scopeline.cryoem.cleaner.clean import CleanParams, rethreshold, run_clean
from scopeline.errors import ConfigError
from scopeline.io.coords import read_coordinates
from scopeline.stream import StreamOptions

SIZE, BOX = 1024, 64
BLOB_CENTRE, BLOB_RADIUS = (330.0, 360.0), 190.0


def obvious_micrograph(seed: int = 0) -> np.ndarray:
    """Bright ice with dark particles and one large, dark, sharp-edged contamination blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    image = np.full((SIZE, SIZE), 100.0, np.float32)
    for x, y in rng.uniform(0, SIZE, (150, 2)):
        image -= 12 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 9.0**2)).astype(np.float32)
    blob = np.hypot(xx - BLOB_CENTRE[0], yy - BLOB_CENTRE[1]) < BLOB_RADIUS
    image[blob] *= 0.35
    return (image + rng.normal(0, 8, image.shape)).astype(np.float32)


def obvious_picks() -> tuple[np.ndarray, np.ndarray]:
    angles = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    inside = np.c_[BLOB_CENTRE[0] + 100 * np.cos(angles), BLOB_CENTRE[1] + 100 * np.sin(angles)]
    outside = np.c_[np.linspace(620, 950, 10), np.linspace(900, 650, 10)]
    return inside, outside


def write_mrc(path, image, pixel_size=1.5):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.asarray(image, np.float32))
        mrc.voxel_size = pixel_size


def write_star(path, xy):
    lines = ["", "data_", "", "loop_", "_rlnCoordinateX #1", "_rlnCoordinateY #2", "_rlnAutopickFigureOfMerit #3"]
    lines += [f"{x:.2f} {y:.2f} {i / 10:.2f}" for i, (x, y) in enumerate(xy)]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def obvious_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("obvious")
    write_mrc(folder / "mic01.mrc", obvious_micrograph())
    inside, outside = obvious_picks()
    write_star(folder / "mic01_autopick.star", np.r_[inside, outside])
    out = folder / "out"
    summary = run_clean([folder / "mic01.mrc"], [folder / "mic01_autopick.star"], out,
                        CleanParams(box_size=BOX, save_masks=True, thumbnails=1))
    return folder, out, summary


def test_picks_inside_a_dark_blob_are_removed_outside_kept(obvious_run):
    folder, out, summary = obvious_run
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns[:5]) == ["micrograph", "x", "y", "good_region_score", "kept"]
    inside, outside = scores.iloc[:10], scores.iloc[10:]
    assert not inside["kept"].any(), inside
    assert outside["kept"].all(), outside
    assert inside["good_region_score"].max() < 0.2 and outside["good_region_score"].min() > 0.8
    cleaned, fmt = read_coordinates(out / "coords" / "mic01_autopick.star")
    assert fmt == "star" and len(cleaned) == 10
    assert np.allclose(cleaned["x"], obvious_picks()[1][:, 0], atol=0.01)
    assert cleaned["rlnAutopickFigureOfMerit"].tolist() == pytest.approx([1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9])
    assert summary["n_kept"] == 10 and summary["n_removed"] == 10


def test_mask_is_saved_at_micrograph_shape_and_marks_the_blob(obvious_run):
    _, out, _ = obvious_run
    with mrcfile.open(out / "masks" / "mic01.mrc") as mrc:
        mask = mrc.data.copy()
        assert mrc.voxel_size.x == pytest.approx(1.5)
    assert mask.shape == (SIZE, SIZE) and mask.dtype == np.float32
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    distance = np.hypot(xx - BLOB_CENTRE[0], yy - BLOB_CENTRE[1])
    assert mask[distance < BLOB_RADIUS - 20].mean() > 0.9
    assert mask[distance > BLOB_RADIUS + 40].mean() < 0.1
    assert (out / "thumbnails" / "mic01.png").is_file()
    assert "data:image/png;base64" in (out / "report.html").read_text()


def test_rethreshold_reapplies_without_the_model(obvious_run, monkeypatch):
    _, out, _ = obvious_run
    monkeypatch.setattr(clean_module, "BadRegionModel", None)  # any model use would fail
    summary = rethreshold(out, -1)
    assert summary["n_kept"] == 20
    assert len(read_coordinates(out / "coords" / "mic01_autopick.star")[0]) == 20
    assert json.loads((out / "params.json").read_text())["threshold"] == -1
    scores = pd.read_csv(out / "scores.csv")
    distinct = np.unique(scores["good_region_score"])
    cut = float(distinct[-3:-1].mean())  # keeps the two best distinct scores, with their ties
    expected = int((scores["good_region_score"] > cut).sum())
    assert 0 < expected < 20 and rethreshold(out, cut)["n_kept"] == expected
    with pytest.raises(ConfigError):
        rethreshold(out, 2.0)
    rethreshold(out, CleanParams(box_size=1).threshold)


def test_bad_inputs_are_failed_rows_and_the_run_goes_on(tmp_path):
    image = obvious_micrograph(1)
    inside, outside = obvious_picks()
    write_mrc(tmp_path / "good.mrc", image)
    write_star(tmp_path / "good_autopick.star", np.r_[outside, [[SIZE + 50.0, 10.0]]])  # one off the image
    write_mrc(tmp_path / "lonely.mrc", image[:300, :300])  # no coordinates
    (tmp_path / "broken.mrc").write_bytes(b"not an mrc file at all")  # unreadable
    write_star(tmp_path / "broken_autopick.star", outside)
    write_mrc(tmp_path / "tiny.mrc", image[:50, :50])  # smaller than the box
    write_star(tmp_path / "tiny_autopick.star", [[10.0, 10.0]])
    write_star(tmp_path / "orphan_autopick.star", [[10.0, 10.0]])  # no micrograph
    summary = run_clean([tmp_path / "*.mrc"], [tmp_path], tmp_path / "out", CleanParams(box_size=BOX))

    mics = pd.read_csv(tmp_path / "out" / "micrographs.csv").set_index("micrograph")
    assert mics.loc["good.mrc", "status"] == "accepted" and mics.loc["good.mrc", "n_outside"] == 1
    assert "outside the image" in mics.loc["good.mrc", "error"]
    assert "no coordinate file" in mics.loc["lonely.mrc", "error"]
    assert "broken.mrc" in mics.loc["broken.mrc", "error"] and mics.loc["broken.mrc", "status"] == "failed"
    assert "larger than the micrograph" in mics.loc["tiny.mrc", "error"]
    assert "no micrograph matches" in mics.loc["orphan_autopick.star", "error"]
    assert summary["n_ok"] == 1 and summary["n_failed"] == 4
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    good = scores[scores["micrograph"] == "good.mrc"]
    assert good["status"].tolist() == ["ok"] * 10 + ["outside"] and not good["kept"].iloc[-1]
    assert (scores[scores["micrograph"] == "broken.mrc"]["status"] == "failed").sum() == 10  # picks kept on record
    assert sorted(p.name for p in (tmp_path / "out" / "coords").iterdir()) == ["good_autopick.star"]


def test_other_micrographs_rescale_coordinates(tmp_path, obvious_run):
    folder, out, _ = obvious_run
    image = obvious_micrograph()
    binned = image.reshape(SIZE // 2, 2, SIZE // 2, 2).mean(axis=(1, 3))
    write_mrc(tmp_path / "mic01.mrc", binned, pixel_size=3.0)  # picking micrographs, 3 A/px
    inside, outside = obvious_picks()
    write_star(tmp_path / "mic01_autopick.star", np.r_[inside, outside] / 2)
    params = CleanParams(box_size=BOX / 2, output_scale="other")
    run_clean([tmp_path / "mic01.mrc"], [tmp_path / "mic01_autopick.star"], tmp_path / "out", params,
              other_micrographs=[folder / "mic01.mrc"])  # 1.5 A/px: coordinates x2
    rescaled = pd.read_csv(tmp_path / "out" / "scores.csv")
    direct = pd.read_csv(out / "scores.csv")
    assert np.allclose(rescaled["good_region_score"], direct["good_region_score"], atol=0.02)
    cleaned, _ = read_coordinates(tmp_path / "out" / "coords" / "mic01_autopick.star")
    assert np.allclose(cleaned["x"], outside[:, 0], atol=0.01)  # written at the other scale


def test_watch_records_unmatched_files_when_the_stream_closes(tmp_path):
    write_mrc(tmp_path / "a.mrc", obvious_micrograph(2)[:512, :512])
    write_star(tmp_path / "a.star", [[100.0, 100.0]])
    write_mrc(tmp_path / "b.mrc", obvious_micrograph(3)[:512, :512])
    options = StreamOptions(watch=True, idle_timeout=0.0, poll_interval=0.0)
    summary = run_clean([tmp_path / "*.mrc"], [tmp_path / "*.star"], tmp_path / "out", CleanParams(box_size=BOX),
                        stream=replace(options, min_file_age=0))
    assert summary["n_ok"] == 1 and summary["n_failed"] == 1
    again = run_clean([tmp_path / "*.mrc"], [tmp_path / "*.star"], tmp_path / "out", CleanParams(box_size=BOX))
    assert again["n_micrographs"] == 2  # resumed from the journal, nothing duplicated


def test_tiff_micrograph_with_eman_box_and_xmipp_pos(tmp_path):
    import tifffile

    image = obvious_micrograph()
    tifffile.imwrite(tmp_path / "t1.tif", image)
    write_mrc(tmp_path / "p1.mrc", image)
    inside, outside = obvious_picks()
    picks = np.r_[inside[:3], outside[:3]]
    (tmp_path / "t1.box").write_text("".join(f"{x - 32:.0f}\t{y - 32:.0f}\t64\t64\n" for x, y in picks))
    pos = ["# XMIPP_STAR_1 *", "#", "data_particles", "loop_", " _xcoor", " _ycoor"]
    (tmp_path / "p1.pos").write_text("\n".join(pos + [f" {x:.0f} {y:.0f}" for x, y in picks]) + "\n")
    summary = run_clean([tmp_path], [tmp_path], tmp_path / "out", CleanParams(box_size=BOX))
    assert summary["n_ok"] == 2 and summary["n_kept"] == 6
    box_text = (tmp_path / "out" / "coords" / "t1.box").read_text().splitlines()
    assert [line.split("\t")[2:] for line in box_text] == [["64", "64"]] * 3
    pos_out, fmt = read_coordinates(tmp_path / "out" / "coords" / "p1.pos")
    assert fmt == "pos" and np.allclose(pos_out["x"], np.round(outside[:3, 0]))


def test_onnx_and_torch_weights_agree():
    pytest.importorskip("torch")
    from scopeline.cryoem.cleaner.predict import BadRegionModel

    x = np.random.default_rng(0).normal(size=(1, 1, 256, 256)).astype(np.float32)
    onnx = BadRegionModel(device="cpu").logits(x)
    torch_cpu = BadRegionModel(device="torch-cpu")
    assert torch_cpu.backend == "torch-cpu"
    assert np.allclose(onnx, torch_cpu.logits(x), atol=1e-3)


def test_relion_index_star_lists_the_coordinate_files(tmp_path):
    (tmp_path / "Micrographs").mkdir()
    (tmp_path / "AutoPick" / "job007" / "Micrographs").mkdir(parents=True)
    write_mrc(tmp_path / "Micrographs" / "m1.mrc", obvious_micrograph(4)[:512, :512])
    write_star(tmp_path / "AutoPick" / "job007" / "Micrographs" / "m1_autopick.star", [[400.0, 450.0]])
    index = ["", "data_coordinate_files", "", "loop_", "_rlnMicrographName #1", "_rlnMicrographCoordinates #2",
             "Micrographs/m1.mrc AutoPick/job007/Micrographs/m1_autopick.star", ""]
    (tmp_path / "AutoPick" / "job007" / "autopick.star").write_text("\n".join(index))
    summary = run_clean([tmp_path / "Micrographs"], [tmp_path / "AutoPick" / "job007" / "autopick.star"],
                        tmp_path / "out", CleanParams(box_size=BOX))
    assert summary["n_ok"] == 1 and summary["n_picks"] == 1
    assert (tmp_path / "out" / "coords" / "m1_autopick.star").is_file()


def test_new_weights_at_the_same_path_are_measured_afresh(tmp_path):
    key = clean_module.TOOL.journal_key
    weights = tmp_path / "model.onnx"
    weights.write_bytes(b"first weights")
    params = CleanParams(box_size=BOX, model=weights)
    first = key(params)
    assert key(CleanParams(box_size=BOX, model=weights, threshold=0.9)) == first
    weights.write_bytes(b"retrained weights")  # same path, other content: the old scores are not reused
    assert key(params) != first
    assert key(CleanParams(box_size=BOX)) != key(params)


def test_a_new_revision_of_the_region_rules_is_measured_afresh(monkeypatch):
    from scopeline.cryoem.cleaner import regions

    params = CleanParams(box_size=BOX)
    before = clean_module.TOOL.journal_key(params)
    monkeypatch.setattr(regions, "RULES_REVISION", regions.RULES_REVISION + 1)
    assert clean_module.TOOL.journal_key(params) != before


def test_turning_the_dark_part_rule_off_is_measured_afresh():
    params = CleanParams(box_size=BOX)
    assert params.region_dark_part
    off = CleanParams(box_size=BOX, region_dark_part=False)
    assert clean_module.TOOL.journal_key(off) != clean_module.TOOL.journal_key(params)
