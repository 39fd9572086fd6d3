"""Readers of movie-alignment results: real RELION files, synthetic MotionCor2 logs, CSV and
Scipion sets, and every way a file can be malformed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from scopeline.errors import InputError
from scopeline.io.motion import (
    NOT_OBSERVED,
    Trajectory,
    detect_format,
    format_relion_motion_star,
    parse_relion_motion_star,
    read_micrographs_table,
    read_motion_csv,
    read_motioncor2_log,
    read_relion_motion_star,
    read_scipion_movies,
    trajectory_from_micrograph_row,
)
from tests.shared_data import RELION

T20S_MOTION = RELION / "T20S_14sep05c_00024sq_00003hl_00002es_motion.star"
BETAGAL_MOTION = RELION / "betagal_20170629_00021_frameImage_motion.star"
BETAGAL_FULL = RELION / "betagal_20170629_00027_frameImage_motion_full.star"
needs_relion = pytest.mark.skipif(not RELION.is_dir(), reason="shared RELION files not present")


def synthetic(movie="m.tiff", n=5, pixel_size=1.0, dose=1.0, first=1) -> Trajectory:
    shifts = np.cumsum(np.full((n, 2), 0.5), axis=0) - 0.5
    return Trajectory(movie=movie, shifts_px=shifts, pixel_size=pixel_size, dose_per_frame=dose,
                      frame_numbers=np.arange(first, first + n))


# --------------------------------------------------------------------------- RELION motion STAR


@needs_relion
def test_relion_motion_star_values_as_in_the_file():
    t = read_relion_motion_star(T20S_MOTION)
    assert t.movie == "Movies/14sep05c_00024sq_00003hl_00002es.frames.out.mrc"
    assert t.n_frames == 19 and list(t.frame_numbers[:3]) == [1, 2, 3]
    assert t.shifts_px[1] == pytest.approx([-0.92947, 1.351926])
    assert t.shifts_px[-1] == pytest.approx([0.456827, 21.571432])
    assert (t.pixel_size, t.dose_per_frame, t.pre_exposure, t.binning) == (0.98, 1.0, 0.0, 1.0)


@needs_relion
def test_relion_motion_star_with_local_motion_and_hot_pixels_blocks():
    """The 5.0-style file and the full 3.1 file (local_shift, hot_pixels): only global shifts."""
    t = read_relion_motion_star(BETAGAL_MOTION)
    assert t.n_frames == 24 and t.shifts_px[-1] == pytest.approx([11.276052, -11.53595])
    assert t.pixel_size == 0.885 and t.dose_per_frame == 1.277
    full = read_relion_motion_star(BETAGAL_FULL)
    assert full.n_frames == 24 and full.shifts_px[-1] == pytest.approx([8.079392, -10.98261])


def test_unobserved_frames_are_dropped_and_frame_numbers_kept():
    text = format_relion_motion_star(synthetic(n=6))
    lines = text.splitlines()
    for i, line in enumerate(lines):  # frames 1 and 2 outside the aligned range (--first_frame 3)
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("1", "2"):
            lines[i] = f"{parts[0]} {NOT_OBSERVED} {NOT_OBSERVED}"
    t = parse_relion_motion_star("\n".join(lines), "x.star")
    assert list(t.frame_numbers) == [3, 4, 5, 6] and t.n_frames == 4


def test_format_then_parse_round_trip(tmp_path):
    original = synthetic(movie='dir/a "movie".tiff', n=7, pixel_size=0.83, dose=1.5, first=2)
    path = tmp_path / "a.star"
    path.write_text(format_relion_motion_star(original))
    back = read_relion_motion_star(path)
    assert back.movie == original.movie
    np.testing.assert_allclose(back.shifts_px, original.shifts_px, atol=1e-6)
    assert list(back.frame_numbers) == list(original.frame_numbers)
    assert (back.pixel_size, back.dose_per_frame) == (0.83, 1.5)


@pytest.mark.parametrize("breakage, problem", [
    (lambda t: t.split("data_global_shift")[0], "no data_global_shift block"),
    (lambda t: t.replace("           3     1.000000     1.000000", "3 nan 1.0"), "NaN/inf) at frame 3"),
    (lambda t: t.replace("           3     1.000000     1.000000", "3 abc 1.0"), "malformed row"),
    (lambda t: t.replace("           3     1.000000     1.000000", "3 1.0"), "row 3 has 2 value(s) for 3 labels"),
    (lambda t: t.replace("_rlnMicrographShiftY", "_rlnSomethingElse"), "lacks rlnMicrographShiftX/rlnMicrographShiftY"),
    (lambda t: t[: t.index("           2 ")], "1 frame(s) (up to frame 1) where rlnImageSizeZ declares 5"),
    (lambda t: t[: t.index("           2 ")].replace("rlnImageSizeZ", "rlnOther"), "only 1 aligned frame"),
])
def test_malformed_motion_star_names_file_and_problem(tmp_path, breakage, problem):
    text = format_relion_motion_star(synthetic(n=5))
    assert "           3     1.000000     1.000000" in text
    path = tmp_path / "broken_motion.star"
    path.write_text(breakage(text))
    with pytest.raises(InputError) as err:
        read_relion_motion_star(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_missing_motion_star(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_relion_motion_star(tmp_path / "nope.star")


def _cut_offsets(path: Path) -> tuple[bytes, int, int]:
    """The file's bytes, where its data_global_shift rows start and where the last row ends
    (after its line break)."""
    data = path.read_bytes()
    start = data.index(b"data_global_shift")
    first_row = data.index(b"\n", data.index(b"_rlnMicrographShiftY", start)) + 1
    block_end = data.find(b"data_", first_row)
    body = data[first_row: block_end if block_end != -1 else len(data)]
    last_row = max(i for i, line in enumerate(body.split(b"\n")) if line.strip()[:1].isdigit())
    end = first_row + sum(len(line) + 1 for line in body.split(b"\n")[: last_row + 1])
    return data, first_row, end


@needs_relion
@pytest.mark.parametrize("path", [T20S_MOTION, BETAGAL_MOTION, BETAGAL_FULL], ids=lambda p: p.name[:12])
def test_motion_star_cut_inside_global_shift_loop_is_rejected(tmp_path, path):
    """Defect 3: a real motion STAR cut at every byte inside its data_global_shift rows is
    rejected (main accepted 3 of 19 frames and parsed the cut last value as a number); cut
    after the loop (in the local motion blocks) the global shifts are complete and read."""
    full = read_relion_motion_star(path)
    data, first_row, end = _cut_offsets(path)
    for offset in range(first_row, end):
        with pytest.raises(InputError) as err:
            parse_relion_motion_star(data[:offset].decode(), path)
        assert str(path) in str(err.value)
    for offset in range(end, len(data), 97):
        t = parse_relion_motion_star(data[:offset].decode(), path)
        np.testing.assert_array_equal(t.shifts_px, full.shifts_px)
    # the reproduction: cut inside the 3rd row's last value (3 frames, the cut value
    # still a number)
    row4 = data.index(b"\n           4 ", first_row)
    with pytest.raises(InputError, match=r"3 frame\(s\) \(up to frame 3\) where rlnImageSizeZ declares (19|24)"):
        parse_relion_motion_star(data[: row4 - 3].decode(), path)


# --------------------------------------------------------------------------- corrected_micrographs


@needs_relion
def test_corrected_micrographs_relion30_and_31():
    plain = read_micrographs_table(RELION / "T20S_corrected_micrographs.star")
    assert plain.optics is None and len(plain.rows) == 4
    assert plain.rows[0]["rlnAccumMotionTotal"] == pytest.approx(22.132552)
    with_optics = read_micrographs_table(RELION / "betagal_corrected_micrographs.star")
    assert with_optics.block == "micrographs" and len(with_optics.rows) == 8
    assert float(with_optics.optics_for(with_optics.rows[0])["rlnMicrographOriginalPixelSize"]) == 0.885


@needs_relion
def test_micrograph_row_follows_metadata_from_the_project_folder(tmp_path, monkeypatch):
    job = tmp_path / "MotionCorr" / "job002"
    (job / "Movies").mkdir(parents=True)
    (job / "Movies" / "20170629_00021_frameImage.star").write_text(BETAGAL_MOTION.read_text())
    table_path = job / "corrected_micrographs.star"
    table_path.write_text((RELION / "betagal_corrected_micrographs.star").read_text())
    monkeypatch.chdir(tmp_path / "MotionCorr")  # not the project folder: found via the STAR's parents
    table = read_micrographs_table(table_path)
    row = table.rows[0]
    t = trajectory_from_micrograph_row(row, table_path, table.optics_for(row))
    assert t.source == "relion_corrected_micrographs" and t.n_frames == 24
    assert t.micrograph == "MotionCorr/job002/Movies/20170629_00021_frameImage.mrc"
    assert t.row["rlnAccumMotionTotal"] == pytest.approx(16.429035)
    fallback = trajectory_from_micrograph_row(table.rows[1], table_path, table.optics_for(table.rows[1]))
    assert fallback.source == "relion_accumulated_motion" and "motion STAR" in fallback.warning
    assert fallback.accumulated_px == pytest.approx((19.556374, 2.480002, 17.076372))
    no_accum = {k: v for k, v in table.rows[1].items() if not k.startswith("rlnAccum")}
    with pytest.raises(InputError, match="20170629_00022_frameImage.star does not exist and the row "
                                         "has no rlnAccumMotionTotal"):
        trajectory_from_micrograph_row(no_accum, table_path, table.optics_for(table.rows[1]))
    accumulated = trajectory_from_micrograph_row(table.rows[1], table_path, table.optics_for(table.rows[1]),
                                                 use_accumulated=True)
    assert accumulated.accumulated_px == pytest.approx((19.556374, 2.480002, 17.076372))
    assert accumulated.pixel_size == 0.885 and accumulated.n_frames == 0


def test_micrograph_row_without_metadata_uses_accumulated_motion(tmp_path):
    row = {"rlnMicrographName": "a.mrc", "rlnAccumMotionTotal": "12.5", "rlnAccumMotionEarly": "2",
           "rlnAccumMotionLate": "10.5"}
    t = trajectory_from_micrograph_row(row, tmp_path / "c.star")
    assert t.accumulated_px == (12.5, 2.0, 10.5) and t.pixel_size is None
    with pytest.raises(InputError, match="neither rlnMicrographMetadata nor rlnAccumMotionTotal"):
        trajectory_from_micrograph_row({"rlnMicrographName": "a.mrc"}, tmp_path / "c.star")
    with pytest.raises(InputError, match="not a number"):
        trajectory_from_micrograph_row({**row, "rlnAccumMotionTotal": "nan"}, tmp_path / "c.star")


# --------------------------------------------------------------------------- MotionCor2


MOTIONCOR2_LOG = """# full-frame alignment shift
# Pixel size: 1.06
# Frame     x Shift     y Shift
      1        0.00        0.00
      2       -0.30        0.40
      3       -0.90        1.20
"""


def test_motioncor2_full_log(tmp_path):
    path = tmp_path / "movie_001.mrc0-Full.log"
    path.write_text(MOTIONCOR2_LOG)
    t = read_motioncor2_log(path)
    assert t.movie == "movie_001.mrc" and t.pixel_size == 1.06
    np.testing.assert_allclose(t.shifts_px, [[0, 0], [-0.3, 0.4], [-0.9, 1.2]])
    path.write_text(MOTIONCOR2_LOG + "      4        abc        1.0\n")
    with pytest.raises(InputError, match="line 7: expected 'frame shift_x shift_y'"):
        read_motioncor2_log(path)
    path.write_text("# header only\n")
    with pytest.raises(InputError, match="no shift rows"):
        read_motioncor2_log(path)


# --------------------------------------------------------------------------- CSV


def test_csv_one_trajectory_per_movie_bad_movie_reported(tmp_path):
    path = tmp_path / "shifts.csv"
    path.write_text("movie,frame,x,y,pixel_size\n"
                    "b.tif,2,0.3,0.4,1.1\nb.tif,1,0,0,1.1\n"
                    "a.tif,1,0,0,1.1\na.tif,2,,0.4,1.1\n"
                    "c.tif,1,0,0,1.1\n")
    pairs = read_motion_csv(path)
    assert [m for m, _ in pairs] == ["b.tif", "a.tif", "c.tif"]
    b = pairs[0][1]
    assert isinstance(b, Trajectory) and b.pixel_size == 1.1
    np.testing.assert_allclose(b.shifts_px, [[0, 0], [0.3, 0.4]])  # sorted by frame
    assert isinstance(pairs[1][1], InputError) and "NaN" in str(pairs[1][1])
    assert isinstance(pairs[2][1], InputError) and "only 1 aligned frame" in str(pairs[2][1])
    path.write_text("movie,x,y\na,0,0\n")
    with pytest.raises(InputError, match="missing column"):
        read_motion_csv(path)


# --------------------------------------------------------------------------- Scipion


def write_scipion_movies(path: Path, movies: list[tuple[str, list[float], list[float]]],
                         sampling: float = 1.14, dose: float = 1.2) -> None:
    """A Scipion SetOfMovies .sqlite as Scipion writes it: attributes in Objects.cNN columns
    named through the Classes table, lists as comma-separated text."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE Properties(key TEXT UNIQUE, value TEXT DEFAULT NULL)")
    con.executemany("INSERT INTO Properties VALUES (?, ?)",
                    [("self", "SetOfMovies"), ("_samplingRate", str(sampling)),
                     ("_acquisition._dosePerFrame", str(dose))])
    con.execute("CREATE TABLE Classes(id INTEGER PRIMARY KEY AUTOINCREMENT, label_property TEXT UNIQUE,"
                " column_name TEXT UNIQUE, class_name TEXT DEFAULT NULL)")
    classes = [("self", "id", "Movie"), ("_filename", "c01", "String"), ("_samplingRate", "c02", "Float"),
               ("_alignment._xshifts", "c03", "CsvList"), ("_alignment._yshifts", "c04", "CsvList"),
               ("_alignment._first", "c05", "Integer")]
    con.executemany("INSERT INTO Classes(label_property, column_name, class_name) VALUES (?, ?, ?)", classes)
    con.execute("CREATE TABLE Objects(id INTEGER PRIMARY KEY, enabled INTEGER DEFAULT 1, label TEXT,"
                " comment TEXT, creation DATE, c01 TEXT, c02 FLOAT, c03 TEXT, c04 TEXT, c05 INTEGER)")
    for i, (name, xs, ys) in enumerate(movies, start=1):
        con.execute("INSERT INTO Objects(id, enabled, label, comment, creation, c01, c02, c03, c04, c05)"
                    " VALUES (?, 1, '', '', '', ?, ?, ?, ?, 1)",
                    (i, name, sampling, ",".join(map(str, xs)), ",".join(map(str, ys))))
    con.commit()
    con.close()


def test_scipion_movies_with_alignment(tmp_path):
    path = tmp_path / "movies.sqlite"
    write_scipion_movies(path, [("m1.tif", [0, 0.3, 0.6], [0, 0.4, 0.8]), ("m2.tif", [0, 1], [0])])
    pairs = read_scipion_movies(path)
    assert [m for m, _ in pairs] == ["m1.tif", "m2.tif"]
    m1 = pairs[0][1]
    assert m1.pixel_size == 1.14 and m1.dose_per_frame == 1.2 and m1.source == "scipion"
    np.testing.assert_allclose(m1.shifts_px, [[0, 0], [0.3, 0.4], [0.6, 0.8]])
    assert isinstance(pairs[1][1], InputError) and "2 x shifts but 1 y shifts" in str(pairs[1][1])


def test_scipion_set_without_alignment_is_rejected(tmp_path):
    path = tmp_path / "movies.sqlite"
    write_scipion_movies(path, [("m1.tif", [0, 1], [0, 1])])
    con = sqlite3.connect(path)
    con.execute("DELETE FROM Classes WHERE label_property LIKE '_alignment%'")
    con.commit()
    con.close()
    with pytest.raises(InputError, match="no _alignment._xshifts"):
        read_scipion_movies(path)


# --------------------------------------------------------------------------- detection


@needs_relion
def test_detect_format():
    assert detect_format(T20S_MOTION) == "relion_motion_star"
    assert detect_format(RELION / "T20S_corrected_micrographs.star") == "relion_micrographs"
    assert detect_format(RELION / "betagal_corrected_micrographs.star") == "relion_micrographs"
    assert detect_format("x-Full.log") == "motioncor2_log"
    assert detect_format("x.csv") == "csv" and detect_format("x.sqlite") == "scipion"
    with pytest.raises(InputError, match="unknown motion file type"):
        detect_format("x.txt")
