"""Inputs that name nothing (defect 10) and Scipion sets written while streaming (defect 13),
through the command line as a user meets them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from scopeline.cli import app
from scopeline.errors import InputError
from scopeline.io.sets import movie_set
from tests.cryoem.test_dose_run import PIXEL, write_movie


def _run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result, " ".join(result.output.split())


@pytest.fixture
def empty(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a movie")
    return folder


@pytest.mark.parametrize("tool", ["dose", "maxshift"])
def test_empty_folder_or_glob_exits_2_naming_the_input(tmp_path, empty, tool):
    """Defect 10: main exited 0 in silence with nothing processed."""
    result, text = _run(tool, empty, "--out", tmp_path / "out", "--pixel-size", 1.0)
    assert result.exit_code == 2, result.output
    assert f"error: {empty}: folder holds no" in text and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 or text.count("error:") == 1
    pattern = str(tmp_path / "nothing_*.mrc")
    result, text = _run(tool, pattern, "--out", tmp_path / "out", "--pixel-size", 1.0)
    assert result.exit_code == 2 and f"error: {pattern}: pattern matches no " in text


def test_clean_empty_inputs_exit_2(tmp_path, empty):
    mics = tmp_path / "mics"
    mics.mkdir()
    (mics / "a.mrc").write_bytes(b"x")
    for args, named in (([empty, mics / "*.star"], empty), ([mics, tmp_path / "none_*.star"], tmp_path / "none_*.star")):
        result, text = _run("clean", "--micrographs", args[0], "--coords", args[1], "--box-size", 32,
                            "--out", tmp_path / "out")
        assert result.exit_code == 2, result.output
        assert f"error: {named}:" in text and ("folder holds no" in text or "matches no " in text)


def test_empty_inputs_are_fine_while_watching(tmp_path, empty):
    assert movie_set([empty], allow_empty=True).items == []
    with pytest.raises(InputError, match="folder holds no movies"):
        movie_set([empty])
    star = tmp_path / "movies.star"
    star.write_text("data_movies\n\nloop_\n_rlnMicrographMovieName #1\n\n")
    with pytest.raises(InputError, match="lists no movies"):
        movie_set([star])


# --------------------------------------------------------------------------- Scipion


def make_streaming_scipion_set(path: Path, names: list) -> None:
    """A Scipion movie set as Scipion writes it (Properties, Classes naming the Objects
    columns, Objects), names as given: None is a NULL, str may hold NUL bytes."""
    con = sqlite3.connect(path)
    con.execute("create table Properties(id integer primary key, key text unique, value text)")
    con.executemany("insert into Properties(key, value) values(?,?)",
                    [("self", "SetOfMovies"), ("_samplingRate", str(PIXEL)),
                     ("_acquisition._dosePerFrame", "1.0"), ("_streamState", "1")])
    con.execute("create table Classes(id integer primary key, label_property text, column_name text, "
                "class_name text)")
    con.executemany("insert into Classes(label_property, column_name, class_name) values(?,?,?)",
                    [("self", "self", "Movie"), ("_filename", "c01", "String"),
                     ("_samplingRate", "c02", "Float"), ("_micName", "c03", "String")])
    con.execute("create table Objects(id integer primary key, enabled integer default 1, label text, "
                "comment text, creation date, c01 text, c02 real, c03 text)")
    con.executemany("insert into Objects(enabled, label, comment, creation, c01, c02, c03) values(?,?,?,?,?,?,?)",
                    [(1, "", "", "2026-01-01", n, PIXEL, None if n is None else Path(n.replace("\0", "")).name)
                     for n in names])
    con.commit()
    con.close()


def test_scipion_set_with_null_and_nul_byte_names_runs_the_rest(tmp_path, monkeypatch):
    """Defect 13: one row's name is NUL bytes, one row's is NULL; main stopped with
    'ValueError: embedded null byte' before reading any movie."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Movies").mkdir()
    good = [f"Movies/m{i}.mrc" for i in range(4)]
    for i, name in enumerate(good):
        write_movie(tmp_path / name, 1.0, seed=i)
    names = good[:2] + ["\0" * 64, None, "Movies/m\0\0.mrc"] + good[2:]
    make_streaming_scipion_set(tmp_path / "movies.sqlite", names)
    result, text = _run("dose", "movies.sqlite", "--out", tmp_path / "out", "--workers", 0, "--samples", 2)
    assert result.exit_code == 0, result.output
    assert "accepted 4, discarded 0, failed 3" in text
    table = pd.read_csv(tmp_path / "out" / "dose.csv")
    assert len(table) == 7
    failed = table[table["status"] == "failed"]
    errors = failed["error"].tolist()
    assert "file name contains 64 NUL byte(s)" in errors[0] and "movies.sqlite" in errors[0]
    assert "no file name (_filename is NULL" in errors[1]
    assert "contains 2 NUL byte(s) ('Movies/m.mrc' without them)" in errors[2]
    assert (table.loc[table["status"] == "accepted", "movie"].tolist() == good)
