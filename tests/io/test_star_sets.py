"""STAR writing (read back by starfile) and movie sets from every kind of input."""

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import starfile

from scopeline.errors import InputError
from scopeline.io.sets import movie_set, natural_key, read_scipion_set
from scopeline.io.star import read_star, write_star
from tests.shared_data import RELION as SHARED


def test_write_star_round_trip_and_empty_loop(tmp_path):
    optics = pd.DataFrame({"rlnOpticsGroupName": ["opticsGroup1"], "rlnOpticsGroup": [1],
                           "rlnMicrographOriginalPixelSize": [0.885]})
    movies = pd.DataFrame({"rlnMicrographMovieName": ["a b.tiff", "c.tiff"], "rlnOpticsGroup": [1, 1]})
    write_star(tmp_path / "m.star", {"optics": optics, "movies": movies})
    back = starfile.read(tmp_path / "m.star", always_dict=True)
    assert back["movies"]["rlnMicrographMovieName"].tolist() == ["a b.tiff", "c.tiff"]
    assert back["optics"]["rlnMicrographOriginalPixelSize"].iloc[0] == pytest.approx(0.885)
    write_star(tmp_path / "e.star", {"movies": movies.iloc[:0]})
    text = (tmp_path / "e.star").read_text()
    assert "_rlnMicrographMovieName #1" in text and "loop_" in text
    assert len(read_star(tmp_path / "e.star")["movies"]) == 0


@pytest.mark.skipif(not SHARED.exists(), reason="shared RELION data not present")
def test_read_real_relion_star():
    blocks = read_star(SHARED / "betagal_corrected_micrographs_emtools.star")
    assert {"optics", "micrographs"} <= set(blocks)
    assert blocks["optics"]["rlnMicrographOriginalPixelSize"].iloc[0] == pytest.approx(0.885)


def test_natural_order():
    assert sorted(["10.mrc", "2.mrc", "1.mrc"], key=natural_key) == ["1.mrc", "2.mrc", "10.mrc"]


def test_folder_glob_and_star_sets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Movies").mkdir()
    for n in ("10.mrc", "2.mrc", "1.tiff", "notes.txt"):
        (tmp_path / "Movies" / n).write_bytes(b"x")
    folder = movie_set(["Movies"])
    assert [Path(i.key).name for i in folder.items] == ["1.tiff", "2.mrc", "10.mrc"]
    globbed = movie_set(["Movies/*.mrc", "Movies/2.mrc"])
    assert [Path(i.key).name for i in globbed.items] == ["2.mrc", "10.mrc"]  # each once
    (tmp_path / "Import" / "job001").mkdir(parents=True)
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnMicrographOriginalPixelSize": [1.1],
                           "rlnMicrographDoseRate": [0.9]})
    movies = pd.DataFrame({"rlnMicrographMovieName": ["Movies/2.mrc"], "rlnOpticsGroup": [1]})
    write_star(tmp_path / "Import/job001/movies.star", {"optics": optics, "movies": movies})
    monkeypatch.chdir(tmp_path / "Import")  # not the project folder: resolved via parents
    s = movie_set([str(tmp_path / "Import/job001/movies.star")])
    assert s.items[0].key == str((tmp_path / "Movies/2.mrc").resolve())
    assert s.items[0].meta == {"pixel_size": 1.1, "dose_per_frame": 0.9}
    assert s.items[0].row["rlnMicrographMovieName"] == "Movies/2.mrc"
    with pytest.raises(InputError, match="nothere"):
        movie_set(["nothere.mrc"])


def make_scipion_movies(path: Path, names, sampling=1.2, dose=1.5):
    con = sqlite3.connect(path)
    con.execute("create table Properties(key text, value text)")
    con.executemany("insert into Properties values(?,?)",
                    [("_samplingRate", str(sampling)), ("_acquisition._dosePerFrame", str(dose))])
    con.execute("create table Classes(id integer, label_property text, column_name text, class_name text)")
    con.executemany("insert into Classes values(?,?,?,?)",
                    [(1, "self", "id", "Movie"), (2, "_filename", "c01", "String"),
                     (3, "_samplingRate", "c02", "Float")])
    con.execute("create table Objects(id integer primary key, enabled integer, label text, comment text, c01 text, c02 real)")
    con.executemany("insert into Objects values(?,?,?,?,?,?)",
                    [(i + 1, 1 if i != 1 else 0, "", "", n, sampling) for i, n in enumerate(names)])
    con.commit()
    con.close()


def test_scipion_sqlite_set(tmp_path):
    make_scipion_movies(tmp_path / "movies.sqlite", ["a.mrc", "b.mrc", "c.mrc"])
    objects, props = read_scipion_set(tmp_path / "movies.sqlite")
    assert list(objects["_filename"]) == ["a.mrc", "c.mrc"]  # disabled item skipped
    s = movie_set([tmp_path / "movies.sqlite"])
    assert [Path(i.key).name for i in s.items] == ["a.mrc", "c.mrc"]
    assert s.items[0].meta["pixel_size"] == 1.2 and s.items[0].meta["dose_per_frame"] == 1.5
    (tmp_path / "bad.sqlite").write_bytes(b"not a database at all, just text" * 10)
    with pytest.raises(InputError, match="bad.sqlite"):
        movie_set([tmp_path / "bad.sqlite"])


NASTY_NAMES = ['a"b.mrc', 'a "b.mrc', '"ab.mrc', 'ab.mrc"', "it's.mrc", "a 'b.mrc", "'q'.mrc",
               'he said "hi" there.mrc', 'a b.mrc', '', 'x"', "#1.mrc", "data_1.mrc", "_x.mrc",
               "Movies/it's a \"test\".tiff"]


def test_star_quotes_names_by_starfile_rules(tmp_path):
    """Defect 12: a '"' in a name was written as "'" (the file could no longer be found).
    Names with '"', "'" and spaces come back unchanged, read by starfile itself (for every
    name without "'", which starfile alone reads as '"') and by read_star."""
    df = pd.DataFrame({"rlnMicrographMovieName": NASTY_NAMES, "rlnOpticsGroup": list(range(len(NASTY_NAMES)))})
    write_star(tmp_path / "m.star", {"movies": df})
    back = read_star(tmp_path / "m.star")["movies"]
    assert back["rlnMicrographMovieName"].tolist() == NASTY_NAMES
    assert back["rlnOpticsGroup"].tolist() == list(range(len(NASTY_NAMES)))
    plain = [n for n in NASTY_NAMES if "'" not in n]
    write_star(tmp_path / "p.star", {"movies": df[df["rlnMicrographMovieName"].isin(plain)]})
    by_starfile = starfile.read(tmp_path / "p.star", always_dict=True)["movies"]
    assert by_starfile["rlnMicrographMovieName"].tolist() == plain


def test_read_star_cif_single_quotes_and_apostrophes(tmp_path):
    path = tmp_path / "q.star"
    path.write_text("data_general\n\n_rlnMicrographMovieName 'it''s x.tiff'\n\n"
                    "data_movies\n\nloop_\n_rlnMicrographMovieName #1\n_rlnX #2\n"
                    "'a b.tiff' 1\nit's.tiff 2\n\"c 'd\".tiff\" 3\n\n")
    blocks = read_star(path)
    assert blocks["movies"]["rlnMicrographMovieName"].tolist() == ["a b.tiff", "it's.tiff", "c 'd\".tiff"]
    assert blocks["movies"]["rlnX"].tolist() == [1, 2, 3]
    assert blocks["general"]["rlnMicrographMovieName"].iloc[0] == "it''s x.tiff"
