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
