"""Particle coordinate files: read what the tools write, write what they read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scopeline.errors import InputError
from scopeline.io.coords import micrograph_key, read_coordinates, write_coordinates

XMIPP_POS = """# XMIPP_STAR_1 *
#
data_header
loop_
 _pickingMicrographState
Auto
data_particles
loop_
 _xcoor
 _ycoor
 _cost
 _enabled
  1165   2380   0.91  1
  1473    952   0.55  1
   310     77   0.12 -1
"""

RELION_AUTOPICK = """
# version 30001

data_

loop_
_rlnCoordinateX #1
_rlnCoordinateY #2
_rlnClassNumber #3
_rlnAutopickFigureOfMerit #4
_rlnAnglePsi #5
  1024.000000   512.500000            0     2.345000  -999.00000
   100.000000  3000.000000            0     0.501000  -999.00000
"""


def test_xmipp_pos_reads_centres_and_keeps_columns(tmp_path):
    path = tmp_path / "mic01.pos"
    path.write_text(XMIPP_POS)
    df, fmt = read_coordinates(path)
    assert fmt == "pos"
    assert df["x"].tolist() == [1165, 1473, 310]
    assert df["y"].tolist() == [2380, 952, 77]
    assert df["cost"].tolist() == pytest.approx([0.91, 0.55, 0.12])
    out = tmp_path / "out" / "mic01.pos"
    write_coordinates(out, df.iloc[[0, 2]], fmt, box_size=200)
    text = out.read_text()
    assert text.startswith("# XMIPP_STAR_1 *")
    assert "data_header" in text and "data_particles" in text
    again, _ = read_coordinates(out)
    assert again["x"].tolist() == [1165, 310]
    assert again["enabled"].tolist() == [1, -1]


def test_relion_autopick_star_round_trip(tmp_path):
    path = tmp_path / "mic_0007_autopick.star"
    path.write_text(RELION_AUTOPICK)
    df, fmt = read_coordinates(path)
    assert fmt == "star"
    assert df["x"].tolist() == [1024.0, 100.0]
    assert df["y"].tolist() == [512.5, 3000.0]
    assert list(df.columns[2:]) == ["rlnClassNumber", "rlnAutopickFigureOfMerit", "rlnAnglePsi"]
    out = tmp_path / "out.star"
    write_coordinates(out, df.iloc[[1]], fmt)
    again, _ = read_coordinates(out)
    assert again["x"].tolist() == [100.0]
    assert again["rlnAutopickFigureOfMerit"].tolist() == pytest.approx([0.501])
    assert micrograph_key(path) == "mic_0007"


def test_eman_box_corner_to_centre_and_back(tmp_path):
    path = tmp_path / "mic.box"
    path.write_text("100\t200\t64\t64\n0\t10\t50\t40\n")
    df, fmt = read_coordinates(path)
    # centre = lower-left corner + half the box
    assert df["x"].tolist() == [132.0, 25.0]
    assert df["y"].tolist() == [232.0, 30.0]
    out = tmp_path / "o.box"
    write_coordinates(out, df, fmt, box_size=100)
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert rows[0] == ["82", "182", "100", "100"]
    write_coordinates(out, df, fmt)  # no box given: the file's own sizes
    assert out.read_text().splitlines()[1].split("\t") == ["0", "10", "50", "40"]


def test_csv_with_header_and_plain_text(tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text("X,Y,score\n10.5,20,0.9\n30,40,0.1\n")
    df, fmt = read_coordinates(csv)
    assert fmt == "csv" and df["x"].tolist() == [10.5, 30.0] and df["score"].tolist() == [0.9, 0.1]
    write_coordinates(tmp_path / "b.csv", df.iloc[:1], fmt)
    assert pd.read_csv(tmp_path / "b.csv").to_dict("list") == {"x": [10.5], "y": [20.0], "score": [0.9]}

    txt = tmp_path / "a.txt"
    txt.write_text("# picks\n1 2\n3 4\n")
    df, fmt = read_coordinates(txt)
    assert fmt == "txt" and df["y"].tolist() == [2.0, 4.0]
    write_coordinates(tmp_path / "b.txt", df, fmt)
    assert read_coordinates(tmp_path / "b.txt")[0]["x"].tolist() == [1.0, 3.0]


def test_empty_coordinate_file_is_zero_picks(tmp_path):
    path = tmp_path / "none.csv"
    path.write_text("x,y\n")
    df, _ = read_coordinates(path)
    assert len(df) == 0


@pytest.mark.parametrize(
    "name, text, problem",
    [
        ("m.star", "data_\nloop_\n_rlnCoordinateX #1\n_rlnAnglePsi #2\n1 2\n", "rlnCoordinateY"),
        ("m.csv", "a,b\n1,2\n", "no x and y columns"),
        ("m.csv", "x,y\n1,nan\n", "not finite"),
        ("m.box", "1 2 3\n", "4 columns"),
        ("m.box", "this is not a box file\n", "not an EMAN"),
        ("m.xyz", "1 2\n", "unknown coordinate format"),
    ],
)
def test_bad_coordinate_files_name_the_file(tmp_path, name, text, problem):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_coordinates(path)
    assert str(path) in str(err.value) and problem in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_coordinates(tmp_path / "gone.pos")


def test_micrograph_key_strips_picker_suffixes():
    assert micrograph_key("a/FoilHole_1_Data_2_autopick.star") == "FoilHole_1_Data_2"
    assert micrograph_key("mic12_manualpick.star") == "mic12"
    assert micrograph_key("mic12.pos") == "mic12"
    assert micrograph_key("mic12_coords.csv") == "mic12"
    assert np.isscalar(micrograph_key("x.box"))
