"""Lazy movie I/O: every format against what was written, gains, bad input, and the dose of
synthetic Poisson counting movies against the truth."""

from __future__ import annotations

import struct

import mrcfile
import numpy as np
import pytest
import tifffile

from scopeline.cryoem.simulate import (
    simulate_counting_movie,
    simulate_eer_events,
    write_corrupt_movie,
    write_eer_movie,
    write_mrc_movie,
    write_tiff_movie,
)
from scopeline.errors import InputError
from scopeline.io.movies import (
    GainTransform,
    default_eer_fractions,
    eer_fraction_bounds,
    open_movie,
    read_gain,
    read_image,
)

SHAPE = (48, 40)  # ny, nx: not square, so transposed axes show


@pytest.fixture
def rng():
    return np.random.default_rng(20260521)


@pytest.fixture
def counts(rng):
    return simulate_counting_movie(SHAPE, 7, 1.2, rng)


# --------------------------------------------------------------------------- MRC
def test_mrc_uint8_stack_round_trip(tmp_path, counts):
    path = write_mrc_movie(tmp_path / "m.mrcs", counts, pixel_size=0.83)
    with open_movie(path) as movie:
        assert movie.format == "mrc"
        assert (movie.n_frames, movie.shape, movie.dtype) == (7, SHAPE, np.uint8)
        assert movie.pixel_size == pytest.approx(0.83, rel=1e-6)
        np.testing.assert_array_equal(movie.frame(3), counts[3])
        np.testing.assert_array_equal(movie.frame(-1), counts[-1])
        np.testing.assert_array_equal(movie.frames([0, 6]), counts[[0, 6]])
        assert movie.frame_mean(5) == pytest.approx(counts[5].mean(), abs=1e-12)
        with pytest.raises(IndexError):
            movie.frame(7)


@pytest.mark.parametrize("dtype, mode", [(np.int16, 1), (np.float32, 2), (np.uint16, 6), (np.float16, 12)])
def test_mrc_modes(tmp_path, rng, dtype, mode):
    stack = (rng.random((3, *SHAPE)) * 100 - (0 if np.dtype(dtype).kind == "u" else 50)).astype(dtype)
    path = write_mrc_movie(tmp_path / "m.mrc", stack, pixel_size=1.1)
    with mrcfile.open(path, header_only=True) as mrc:
        assert int(mrc.header.mode) == mode
    with open_movie(path) as movie:
        assert movie.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(movie.frame(1), stack[1])
        assert movie.frame_mean(2) == pytest.approx(stack[2].astype(np.float64).mean(), rel=1e-12)


def test_mrc_mode0_without_imod_stamp_is_signed(tmp_path):
    stack = np.array([[[-3, 5], [127, -128]]], dtype=np.int8)
    with mrcfile.new(tmp_path / "s.mrc") as mrc:
        mrc.set_data(stack)
    with open_movie(tmp_path / "s.mrc") as movie:
        assert movie.dtype == np.int8
        np.testing.assert_array_equal(movie.frame(0), stack[0])
        assert movie.frame_mean(0) == pytest.approx((-3 + 5 + 127 - 128) / 4)


def test_mrc_big_endian_is_returned_native(tmp_path):
    stack = np.arange(24, dtype=">i2").reshape(2, 3, 4)
    with mrcfile.new(tmp_path / "be.mrc") as mrc:
        mrc.set_data(stack)
    with open_movie(tmp_path / "be.mrc") as movie:
        frame = movie.frame(1)
        assert frame.dtype == movie.dtype == np.dtype(np.int16) and frame.dtype.isnative
        np.testing.assert_array_equal(frame, stack[1])
        assert movie.frame_mean(1) == pytest.approx(17.5)


def test_mrc_extended_header_is_skipped(tmp_path, counts):
    with mrcfile.new(tmp_path / "ext.mrcs") as mrc:  # an FEI-style extended header before the data
        mrc.set_data(counts.view(np.int8))
        mrc.set_extended_header(np.arange(768, dtype=np.uint8))
        mrc.voxel_size = 1.7
    with open_movie(tmp_path / "ext.mrcs") as movie:
        np.testing.assert_array_equal(movie.frame(4), counts[4].view(np.int8))
        assert movie.pixel_size == pytest.approx(1.7)
    size = (tmp_path / "ext.mrcs").stat().st_size
    with open(tmp_path / "ext.mrcs", "r+b") as handle:
        handle.truncate(size - 1)
    with pytest.raises(InputError, match=f"ext.mrcs: truncated: .* {1024 + 768 + counts.size} bytes"):
        open_movie(tmp_path / "ext.mrcs")


def test_mrc_4bit_mode_101(tmp_path, rng):
    stack = rng.integers(0, 16, size=(3, 6, 7), dtype=np.uint8)  # odd width: padded rows
    path = write_mrc_movie(tmp_path / "p.mrc", stack, pixel_size=2.0, four_bit=True)
    assert path.stat().st_size == 1024 + 3 * 6 * 4
    with open_movie(path) as movie:
        assert (movie.n_frames, movie.shape, movie.dtype) == (3, (6, 7), np.uint8)
        assert movie.pixel_size == pytest.approx(2.0)
        np.testing.assert_array_equal(movie.frames(range(3)), stack)
        assert movie.frame_mean(1) == pytest.approx(stack[1].mean())


@pytest.mark.parametrize("voxel", [0.0, 1.0])
def test_mrc_unset_pixel_size_is_none(tmp_path, counts, voxel):
    path = write_mrc_movie(tmp_path / "m.mrc", counts, pixel_size=voxel)
    with open_movie(path) as movie:
        assert movie.pixel_size is None


# --------------------------------------------------------------------------- TIFF
@pytest.mark.parametrize("compression, tag", [("lzw", 5), ("zlib", 8), ("zstd", 50000), (None, 1)])
def test_tiff_compressions_round_trip(tmp_path, counts, compression, tag):
    path = write_tiff_movie(tmp_path / "m.tif", counts, pixel_size=1.07, compression=compression)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].compression == tag
    with open_movie(path) as movie:
        assert movie.format == "tiff"
        assert (movie.n_frames, movie.shape, movie.dtype) == (7, SHAPE, np.uint8)
        assert movie.pixel_size == pytest.approx(1.07, rel=1e-6)
        np.testing.assert_array_equal(movie.frame(6), counts[6])
        assert movie.frame_mean(0) == pytest.approx(counts[0].mean(), abs=1e-12)


def test_tiff_pixel_size_only_when_unambiguous(tmp_path, counts):
    tifffile.imwrite(tmp_path / "none.tif", counts)
    tifffile.imwrite(tmp_path / "inch.tif", counts, resolution=(72, 72), resolutionunit="INCH")
    tifffile.imwrite(tmp_path / "xy.tif", counts, resolution=(1e8, 2e8), resolutionunit="CENTIMETER")
    tifffile.imwrite(tmp_path / "ij.tif", counts, imagej=True, resolution=(0.5, 0.5),
                     metadata={"unit": "nm", "axes": "ZYX"})
    for name in ("none", "inch", "xy"):
        with open_movie(tmp_path / f"{name}.tif") as movie:
            assert movie.pixel_size is None, name
    with open_movie(tmp_path / "ij.tif") as movie:  # 0.5 px/nm = 2 nm/px
        assert movie.pixel_size == pytest.approx(20.0)


def test_imagej_stack_with_a_single_ifd_keeps_every_frame(tmp_path, rng):
    stack = rng.integers(0, 4000, size=(5, *SHAPE), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "big.tif", stack, imagej=True, truncate=True,
                     resolution=(0.5, 0.5), metadata={"unit": "nm"})
    with tifffile.TiffFile(tmp_path / "big.tif") as tif:
        assert len(tif.pages) == 1  # what a page-by-page reader would see
    with open_movie(tmp_path / "big.tif") as movie:
        assert (movie.n_frames, movie.shape, movie.dtype) == (5, SHAPE, np.uint16)
        assert movie.pixel_size == pytest.approx(20.0)
        np.testing.assert_array_equal(movie.frames(range(5)), stack)
    size = (tmp_path / "big.tif").stat().st_size
    with open(tmp_path / "big.tif", "r+b") as handle:
        handle.truncate(size - 100)
    with pytest.raises(InputError, match="big.tif: truncated: 5 ImageJ images"):
        open_movie(tmp_path / "big.tif")


def test_tiff_frames_of_different_sizes(tmp_path, counts):
    with tifffile.TiffWriter(tmp_path / "mixed.tif") as tw:
        tw.write(counts[0])
        tw.write(counts[1, :, :20])
    with pytest.raises(InputError, match="mixed.tif: frame 1 is 20x48"):
        open_movie(tmp_path / "mixed.tif")  # the last page is checked on opening
    with tifffile.TiffWriter(tmp_path / "middle.tif") as tw:
        for frame in (counts[0], counts[1, :, :20], counts[2]):
            tw.write(frame)
    with open_movie(tmp_path / "middle.tif") as movie:  # a middle page when it is read
        for read in (movie.frame, movie.frame_mean):
            with pytest.raises(InputError, match="middle.tif: frame 1 is 20x48, the first frame is 40x48"):
                read(1)


# --------------------------------------------------------------------------- EER
@pytest.mark.parametrize("compression", [65000, 65001, 65002])
def test_eer_fractions_sum_raw_frames(tmp_path, rng, compression):
    events = simulate_eer_events(SHAPE, 12, 0.05, rng)
    path = write_eer_movie(tmp_path / "m.eer", events, pixel_size=0.93, compression=compression)
    with tifffile.TiffFile(path) as tif:  # the independent decoder reads our encoder exactly
        assert tif.is_eer
        np.testing.assert_array_equal(tif.asarray(), events)
    with open_movie(path, eer_fractions=4) as movie:
        assert movie.format == "eer"
        assert (movie.n_frames, movie.shape, movie.dtype) == (4, SHAPE, np.uint16)
        assert movie.pixel_size == pytest.approx(0.93)
        expected = events.reshape(4, 3, *SHAPE).sum(axis=1)
        np.testing.assert_array_equal(movie.frames(range(4)), expected)
        assert movie.frame_mean(2) == pytest.approx(expected[2].mean(), abs=1e-12)


def test_eer_uneven_fractions_use_every_raw_frame(tmp_path, rng):
    events = simulate_eer_events(SHAPE, 10, 0.1, rng)
    with open_movie(write_eer_movie(tmp_path / "m.eer", events), eer_fractions=3) as movie:
        assert movie.fraction_bounds == [(0, 3), (3, 6), (6, 10)]
        total = sum(movie.frame(i).astype(np.int64) for i in range(3))
        np.testing.assert_array_equal(total, events.sum(axis=0))
        assert movie.pixel_size is None


@pytest.mark.parametrize("upsampling, superres", [(2, 1), (4, 2)])
def test_eer_upsampling_places_sub_pixel_events(tmp_path, rng, upsampling, superres):
    events = simulate_eer_events((16, 12), 6, 0.2, rng)
    sub = rng.integers(0, 16, size=events.shape)  # true position: v * 4 + h on a 4x4 grid
    path = write_eer_movie(tmp_path / "m.eer", events, pixel_size=1.2, subpixels=sub)
    n, y, x = np.nonzero(events)
    h, v = sub[n, y, x] & 3, sub[n, y, x] >> 2
    shift = 2 - superres
    truth = np.zeros((6, 16 * upsampling, 12 * upsampling), np.uint16)
    np.add.at(truth, (n, y * upsampling + (v >> shift), x * upsampling + (h >> shift)), 1)
    with open_movie(path, eer_fractions=6, eer_upsampling=upsampling) as movie:
        assert movie.pixel_size == pytest.approx(1.2 / upsampling)
        np.testing.assert_array_equal(movie.frames(range(6)), truth)
    with tifffile.TiffFile(path, superres=superres) as tif:
        np.testing.assert_array_equal(tif.asarray(), truth.astype(bool))


def test_default_eer_fractions():
    assert default_eer_fractions(1000) == 40
    assert default_eer_fractions(648) == 36  # divisors 36 and 54: 36 is nearer 40
    assert default_eer_fractions(997) == 1  # a prime: one fraction rather than dropping frames
    assert default_eer_fractions(12) == 12
    assert eer_fraction_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]


# --------------------------------------------------------------------------- AVI, zarr, npy
def _write_avi(path, frames):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=20)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "gray"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_avi_gray_frames_in_and_out_of_order(tmp_path, rng):
    frames = rng.integers(0, 256, size=(5, *SHAPE), dtype=np.uint8)
    _write_avi(tmp_path / "msCam1.avi", frames)
    with open_movie(tmp_path / "msCam1.avi") as movie:
        assert (movie.format, movie.n_frames, movie.shape, movie.dtype) == ("avi", 5, SHAPE, np.uint8)
        assert movie.pixel_size is None
        for i in (0, 1, 4, 2):
            np.testing.assert_array_equal(movie.frame(i), frames[i])
        assert movie.frame_mean(3) == pytest.approx(frames[3].mean())


def test_zarr_array_group_and_npy(tmp_path, counts):
    import zarr

    arr = zarr.create_array(tmp_path / "a.zarr", shape=counts.shape, chunks=(1, *SHAPE), dtype=counts.dtype)
    arr[:] = counts
    arr.attrs["pixel_size"] = 1.5
    group = zarr.open_group(tmp_path / "g.zarr", mode="w")
    group.create_array("movie", data=counts, chunks=(1, *SHAPE))
    np.save(tmp_path / "s.npy", counts)
    for name, px in (("a.zarr", 1.5), ("g.zarr", None), ("s.npy", None)):
        with open_movie(tmp_path / name) as movie:
            assert (movie.n_frames, movie.shape, movie.pixel_size) == (7, SHAPE, px), name
            np.testing.assert_array_equal(movie.frame(2), counts[2])
            assert movie.frame_mean(4) == pytest.approx(counts[4].mean())


# --------------------------------------------------------------------------- gain
def test_gain_is_multiplied_in(tmp_path, counts, rng):
    gain = rng.uniform(0.8, 1.2, size=SHAPE).astype(np.float32)
    write_mrc_movie(tmp_path / "gain.mrc", gain[None], pixel_size=None)
    write_tiff_movie(tmp_path / "gain.tif", gain[None], pixel_size=None, compression=None)
    path = write_mrc_movie(tmp_path / "m.mrc", counts, pixel_size=1.0)
    for source in (gain, tmp_path / "gain.mrc", tmp_path / "gain.tif"):
        with open_movie(path, gain=source) as movie:
            assert movie.dtype == np.float32
            np.testing.assert_array_equal(movie.frame(2), counts[2] * gain)
            assert movie.frame_mean(2) == pytest.approx(float((counts[2] * gain.astype(np.float64)).mean()), rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int16])
def test_gain_mean_of_other_dtypes(tmp_path, rng, dtype):
    stack = (rng.random((3, *SHAPE)) * 50).astype(dtype)
    gain = rng.uniform(0.5, 1.5, size=SHAPE).astype(np.float32)
    with open_movie(write_mrc_movie(tmp_path / "m.mrc", stack, 1.0), gain=gain) as movie:
        expected = (stack[1].astype(np.float64) * gain).mean()
        assert movie.frame_mean(1) == pytest.approx(expected, rel=1e-9)
        np.testing.assert_allclose(movie.frame(1), stack[1].astype(np.float32) * gain, rtol=1e-6)


def test_gain_transform_orientation(tmp_path):
    gain = np.arange(6, dtype=np.float32).reshape(2, 3) + 1  # [[1 2 3] [4 5 6]]
    write_tiff_movie(tmp_path / "g.tif", gain[None], pixel_size=None, compression=None)
    clockwise = read_gain(tmp_path / "g.tif", GainTransform(rotate=1))
    np.testing.assert_array_equal(clockwise, [[4, 1], [5, 2], [6, 3]])
    np.testing.assert_array_equal(read_gain(tmp_path / "g.tif", GainTransform(flip="upside_down")),
                                  [[4, 5, 6], [1, 2, 3]])
    np.testing.assert_array_equal(read_gain(tmp_path / "g.tif", GainTransform(rotate=2, flip="left_right")),
                                  [[4, 5, 6], [1, 2, 3]])


def test_gain_size_mismatch_names_the_gain(tmp_path, counts):
    write_mrc_movie(tmp_path / "gain.mrc", np.ones((1, 10, 10), np.float32), pixel_size=None)
    path = write_mrc_movie(tmp_path / "m.mrc", counts, pixel_size=1.0)
    with pytest.raises(InputError, match=r"gain.mrc: gain reference is 10x10 but the frames of .*m.mrc are 40x48"):
        open_movie(path, gain=tmp_path / "gain.mrc")


def test_eer_gain_at_sensor_resolution_is_upsampled(tmp_path, rng):
    events = simulate_eer_events((8, 6), 4, 0.3, rng)
    gain = rng.uniform(0.5, 2.0, size=(8, 6)).astype(np.float32)
    path = write_eer_movie(tmp_path / "m.eer", events)
    with open_movie(path, eer_fractions=1, eer_upsampling=2, gain=gain) as movie:
        frame = movie.frame(0)
        raw = open_movie(path, eer_fractions=1, eer_upsampling=2).frame(0)
        np.testing.assert_allclose(frame, raw * np.kron(gain, np.ones((2, 2), np.float32)))


def test_simulated_gain_is_corrected_by_the_gain(rng):
    gain = np.where(np.arange(64) % 2, 0.5, 2.0)[None, :].repeat(64, 0)  # strong column pattern
    movie = simulate_counting_movie((64, 64), 40, 1.0, rng, gain=gain)
    raw_cols = movie.mean(axis=(0, 1))
    assert raw_cols[1] / raw_cols[0] == pytest.approx(4.0, rel=0.1)  # recorded: d / gain
    corrected = (movie * gain).mean(axis=(0, 1))
    assert corrected[1] / corrected[0] == pytest.approx(1.0, abs=0.1)


# --------------------------------------------------------------------------- read_image
def test_read_image_and_single_frame_rule(tmp_path, rng, counts):
    image = rng.normal(size=SHAPE).astype(np.float32)
    write_mrc_movie(tmp_path / "mic.mrc", image[None], pixel_size=1.34)
    got, px = read_image(tmp_path / "mic.mrc")
    assert got.dtype == np.float32 and px == pytest.approx(1.34)
    np.testing.assert_array_equal(got, image)
    write_tiff_movie(tmp_path / "mic.tif", counts[:1], pixel_size=2.5)
    got, px = read_image(tmp_path / "mic.tif")
    np.testing.assert_array_equal(got, counts[0].astype(np.float32))
    assert px == pytest.approx(2.5)
    write_mrc_movie(tmp_path / "movie.mrc", counts, pixel_size=1.0)
    with pytest.raises(InputError, match="movie.mrc: expected one image, found 7 frames"):
        read_image(tmp_path / "movie.mrc")


# --------------------------------------------------------------------------- bad input
def _one_line_naming(exc: InputError, name: str) -> str:
    text = str(exc)
    assert "\n" not in text and name in text
    return text


@pytest.mark.parametrize("name, kind, problem", [
    ("t.mrc", "truncated", "truncated: the header describes 6 frames"),
    ("t.tif", "truncated", "truncated"),
    ("t.eer", "truncated", "truncated"),
    ("b.mrc", "bad_header", "bad MRC header"),
    ("b.tif", "bad_header", "bad header"),
    ("b.eer", "bad_header", "bad header"),
    ("z.mrc", "zero_frames", "zero frames"),
])
def test_corrupt_movies_raise_input_error_naming_the_file(tmp_path, name, kind, problem):
    path = write_corrupt_movie(tmp_path / name, kind)
    with pytest.raises(InputError) as info:
        with open_movie(path) as movie:  # noqa: F841 - a truncated EER may be found on reading
            for i in range(movie.n_frames):
                movie.frame(i)
    assert problem in _one_line_naming(info.value, name)


def test_corrupt_eer_bit_stream(tmp_path, rng):
    path = write_eer_movie(tmp_path / "c.eer", simulate_eer_events(SHAPE, 3, 0.05, rng))
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[1].dataoffsets[0], tif.pages[1].databytecounts[0]
    with open(path, "r+b") as handle:  # all-ones runs only: the stream runs past the last pixel
        handle.seek(offset)
        handle.write(b"\xff" * count)
    with open_movie(path, eer_fractions=3) as movie:
        movie.frame(0)
        with pytest.raises(InputError, match="c.eer: corrupt EER bit stream in raw frame 1"):
            movie.frame_mean(1)


@pytest.mark.parametrize("name", ["n.mrc", "n.tif"])
def test_nan_frame_is_an_error_in_frame_and_frame_mean(tmp_path, name):
    path = write_corrupt_movie(tmp_path / name, "nan_frame")
    with open_movie(path) as movie:
        movie.frame(0)
        for read in (movie.frame, movie.frame_mean):
            with pytest.raises(InputError) as info:
                read(3)
            assert "frame 3 of 6 contains NaN or Inf" in _one_line_naming(info.value, name)


def test_missing_unknown_and_misnamed_files(tmp_path, counts):
    with pytest.raises(InputError, match="nope.mrc: file not found"):
        open_movie(tmp_path / "nope.mrc")
    (tmp_path / "data.xyz").write_bytes(b"\x01" * 2048)
    with pytest.raises(InputError, match=r"data.xyz: unknown movie format \(fix: supported"):
        open_movie(tmp_path / "data.xyz")
    write_mrc_movie(tmp_path / "real.mrc", counts, pixel_size=1.0)
    (tmp_path / "fake.tif").write_bytes((tmp_path / "real.mrc").read_bytes())
    with pytest.raises(InputError, match="fake.tif: bad header: named .tif but the content is not TIFF"):
        open_movie(tmp_path / "fake.tif")
    (tmp_path / "tiny.mrc").write_bytes(b"MRC?")
    with pytest.raises(InputError, match="tiny.mrc: bad MRC header"):
        open_movie(tmp_path / "tiny.mrc")


def test_unsupported_mrc_mode(tmp_path, counts):
    path = write_mrc_movie(tmp_path / "m.mrc", counts, pixel_size=1.0)
    with open(path, "r+b") as handle:
        handle.seek(12)
        handle.write(struct.pack("<i", 3))  # complex int16: no numpy dtype
    with pytest.raises(InputError, match="m.mrc: bad MRC header: unknown mode 3"):
        open_movie(path)


# --------------------------------------------------------------------------- dose truth
def _sampled_dose(movie, pixel_size):
    n = movie.n_frames
    means = [movie.frame_mean(i) for i in sorted({0, n // 2, n - 1})]
    return float(np.mean(means)) / pixel_size**2


@pytest.mark.parametrize("suffix", [".mrc", ".tif"])
def test_dose_of_poisson_counting_movie_within_1_percent(tmp_path, suffix):
    rng = np.random.default_rng(7)
    pixel_size, per_pixel = 0.9, 0.85  # truth: 0.85 / 0.81 e/Å² per frame
    stack = simulate_counting_movie((512, 512), 9, per_pixel, rng)
    writer = write_mrc_movie if suffix == ".mrc" else write_tiff_movie
    path = writer(tmp_path / f"dose{suffix}", stack, pixel_size)
    truth = per_pixel / pixel_size**2
    with open_movie(path) as movie:
        assert movie.pixel_size == pytest.approx(pixel_size, rel=1e-6)
        assert _sampled_dose(movie, movie.pixel_size) == pytest.approx(truth, rel=0.01)
    _check_lead_dose(path, truth)


def test_dose_of_eer_movie_within_1_percent(tmp_path):
    rng = np.random.default_rng(8)
    pixel_size, per_raw = 0.75, 0.04
    events = simulate_eer_events((256, 256), 40, per_raw, rng)
    path = write_eer_movie(tmp_path / "dose.eer", events, pixel_size=pixel_size)
    truth = 10 * per_raw / pixel_size**2  # 4 fractions of 10 raw frames
    with open_movie(path, eer_fractions=4) as movie:
        assert _sampled_dose(movie, movie.pixel_size) == pytest.approx(truth, rel=0.01)
    with open_movie(path, eer_fractions=4, eer_upsampling=2) as movie:  # dose per Å² is unchanged
        assert _sampled_dose(movie, movie.pixel_size) == pytest.approx(truth, rel=0.01)


def _check_lead_dose(path, truth):
    """The dose step measures through ``frame_mean``; check it agrees when it is there."""
    dose = pytest.importorskip("scopeline.cryoem.dose")
    if not hasattr(dose, "measure_movie_dose"):
        return
    result = dose.measure_movie_dose(path)
    assert result["mean_dose"] == pytest.approx(truth, rel=0.01)
