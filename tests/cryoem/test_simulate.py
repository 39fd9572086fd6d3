"""Synthetic movies: known statistics, hand-worked EER bit streams, file headers."""

from __future__ import annotations

import struct

import imagecodecs
import mrcfile
import numpy as np
import pytest

from scopeline.cryoem.simulate import (
    encode_eer_frame,
    simulate_counting_movie,
    simulate_eer_events,
    write_corrupt_movie,
    write_mrc_movie,
)


def _bits_to_bytes(value: int, n_bytes: int) -> bytes:
    return value.to_bytes(n_bytes, "little")


def test_eer_single_event_hand_worked():
    # 1x4 frame, event on pixel 1: run 1 + sub-pixel (0,0) stored XOR-ed as h=2, v=2,
    # then the closing run 2 to the last pixel. LSB first: 1 | 2<<7 | 2<<9 | 2<<11 = 0x1501.
    data = encode_eer_frame(np.array([[0, 1, 0, 0]]))
    assert data[:3] == _bits_to_bytes(0x1501, 3)
    assert len(data) % 2 == 0
    decoded = imagecodecs.eer_decode(data, (1, 4), 7, 2, 2)
    np.testing.assert_array_equal(decoded, [[0, 1, 0, 0]])


def test_eer_long_gap_uses_continuation_runs():
    frame = np.zeros((1, 300), np.uint8)
    frame[0, 200] = 1
    # 200 = 127 (continue) + 73, then event code, then the closing run 300 - 201 = 99.
    expected = 127 | (73 | 2 << 7 | 2 << 9) << 7 | 99 << 18
    data = encode_eer_frame(frame)
    assert data[:4] == _bits_to_bytes(expected, 4)
    np.testing.assert_array_equal(imagecodecs.eer_decode(data, (1, 300), 7, 2, 2), frame.astype(bool))


@pytest.mark.parametrize("positions", [[], [253], [0, 1, 2], [126, 127, 253]])
def test_eer_edge_runs_decode_exactly(positions):
    frame = np.zeros((2, 127), np.uint8)  # 254 pixels: an empty frame closes with two 127 runs
    frame.ravel()[positions] = 1
    for skipbits in (7, 8):
        data = encode_eer_frame(frame, skipbits=skipbits)
        np.testing.assert_array_equal(imagecodecs.eer_decode(data, frame.shape, skipbits, 2, 2), frame.astype(bool))


def test_eer_encoder_refuses_two_events_in_a_pixel():
    with pytest.raises(ValueError, match="at most one event"):
        encode_eer_frame(np.array([[2, 0]]))


def test_counting_movie_statistics():
    rng = np.random.default_rng(3)
    movie = simulate_counting_movie((200, 100), 10, 2.5, rng)
    assert movie.dtype == np.uint8 and movie.shape == (10, 200, 100)
    assert movie.mean() == pytest.approx(2.5, rel=0.01)
    assert movie.var() == pytest.approx(2.5, rel=0.03)  # Poisson: variance = mean
    events = simulate_eer_events((100, 100), 20, 0.1, rng)
    assert events.dtype == bool and events.mean() == pytest.approx(0.1, rel=0.03)


def test_mrc_writer_header(tmp_path):
    stack = np.zeros((4, 8, 6), np.uint8)
    path = write_mrc_movie(tmp_path / "m.mrcs", stack, pixel_size=1.25)
    with mrcfile.open(path, header_only=True) as mrc:
        assert (int(mrc.header.mode), int(mrc.header.ispg), int(mrc.header.nz)) == (0, 0, 4)
        assert float(mrc.voxel_size.x) == pytest.approx(1.25)
    raw = path.read_bytes()
    assert struct.unpack("<ii", raw[152:160]) == (1146047817, 0)  # IMOD stamp, unsigned bytes


def test_corrupt_kinds_are_checked(tmp_path):
    with pytest.raises(ValueError):
        write_corrupt_movie(tmp_path / "x.mrc", "melted")
    with pytest.raises(ValueError):
        write_corrupt_movie(tmp_path / "x.tif", "zero_frames")
