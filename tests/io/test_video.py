import numpy as np
import pytest
import tifffile

from scopeline.errors import InputError
from scopeline.io.video import find_videos, natural_key, probe_video, read_frames, write_avi


def _frames(n=30, h=24, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


def test_natural_order_and_regex(tmp_path):
    for name in ["10.avi", "2.avi", "1.avi", "notes.txt", "msCam3.avi"]:
        (tmp_path / name).write_bytes(b"")
    files = find_videos(tmp_path, r"^\d+\.avi$")
    assert [f.name for f in files] == ["1.avi", "2.avi", "10.avi"]
    assert sorted(["b10", "b2", "a1"], key=natural_key) == ["a1", "b2", "b10"]


def test_no_match_names_the_folder(tmp_path):
    with pytest.raises(InputError, match=str(tmp_path)):
        find_videos(tmp_path, r"\.avi$")


def test_avi_roundtrip_is_lossless_and_chunks_agree(tmp_path):
    frames = _frames()
    path = tmp_path / "0.avi"
    assert write_avi(path, frames) == len(frames)
    info = probe_video(path)
    assert (info.n_frames, info.height, info.width, info.dtype) == (30, 24, 32, "uint8")
    assert np.array_equal(read_frames(path, 0, 30), frames)
    assert np.array_equal(read_frames(path, 7, 19), frames[7:19])


def test_avi_with_keyframe_interval_reads_exact_frames(tmp_path):
    """Codecs with inter-frame state (FFV1 with GOP > 1) must decode from the keyframe."""
    import av

    frames = _frames(40)
    path = tmp_path / "gop.avi"
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("ffv1", rate=30)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "gray"
        stream.codec_context.gop_size = 12
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    for start, stop in [(0, 5), (13, 27), (35, 40)]:
        assert np.array_equal(read_frames(path, start, stop), frames[start:stop])


def test_truncated_and_junk_files_are_named(tmp_path):
    path = tmp_path / "0.avi"
    write_avi(path, _frames(50, 64, 64))
    data = path.read_bytes()
    truncated = tmp_path / "cut.avi"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match=r"cut\.avi: truncated"):
        probe_video(truncated)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"RIFF" + bytes(200))
    with pytest.raises(InputError, match=r"junk\.avi: unreadable"):
        probe_video(junk)


def test_tiff_stack(tmp_path):
    frames = _frames(12).astype(np.uint16) * 3
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, frames)
    info = probe_video(path)
    assert info.n_frames == 12 and info.dtype == "uint16"
    assert np.array_equal(read_frames(path, 3, 9), frames[3:9])


def _write_yuv420_avi(path, frames):
    """An FFV1 video stored as YUV 4:2:0 whose luma plane is ``frames`` (chroma neutral)."""
    import av

    h, w = frames.shape[1:]
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("ffv1", rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for f in frames:
            frame = av.VideoFrame(w, h, "yuv420p")
            line = frame.planes[0].line_size
            frame.planes[0].update(np.ascontiguousarray(np.pad(f, ((0, 0), (0, line - w)))).tobytes())
            for p in (1, 2):
                frame.planes[p].update(bytes([128]) * frame.planes[p].buffer_size)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_one_grey_conversion_for_the_video_reader_and_open_movie(tmp_path):
    """Issue 12 item 4: the chunked reader and ``open_movie`` give the same grey frames:
    for YUV video the luma plane as stored (the old miniscope reader rescaled it by up to
    20 grey levels)."""
    from scopeline.io.movies import open_movie

    frames = _frames(6)
    path = tmp_path / "yuv.avi"
    _write_yuv420_avi(path, frames)
    assert np.array_equal(read_frames(path, 0, 6), frames)
    movie = open_movie(path)
    assert np.array_equal(np.stack([movie.frame(i) for i in range(6)]), frames)


def test_reader_set_spans_files_in_natural_order(tmp_path):
    from scopeline.io.video import frame_segments, read_segments

    frames = _frames(30)
    for k, (a, b) in enumerate([(0, 10), (10, 25), (25, 30)]):
        write_avi(tmp_path / f"{[2, 10, 1][k]}.avi", frames[a:b])
    files = find_videos(tmp_path)
    assert [f.name for f in files] == ["1.avi", "2.avi", "10.avi"]
    infos = [probe_video(f) for f in files]  # 5, 10, 15 frames in this order
    segments = frame_segments(infos, 3, 18)
    assert segments == [(str(files[0]), 3, 5), (str(files[1]), 0, 10), (str(files[2]), 0, 3)]
    expected = np.concatenate([frames[25:30], frames[0:10], frames[10:25]])[3:18]
    assert np.array_equal(read_segments(segments), expected)


def test_miniscope_has_no_reader_of_its_own():
    import importlib.util

    assert importlib.util.find_spec("scopeline.miniscope.io_video") is None
