"""Atomic outputs: permissions like a plain write (defect 8), one-line errors for read-only or
full output folders with nothing half-written (defect 9)."""

import errno
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from scopeline.errors import OutputError, ScopelineError
from scopeline.io import atomic
from scopeline.io.atomic import (
    atomic_path,
    atomic_write,
    ensure_output_dir,
    make_temp_dir,
    write_json,
    write_text,
)
from scopeline.io.star import write_star
from scopeline.outputs import write_table


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_outputs_get_the_permissions_of_a_plain_write(tmp_path, umask_022):
    """Defect 8: every writer of io.atomic gave 0600; a plain open() gives 0644 here."""
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    expected = _mode(plain)
    assert expected == 0o644
    write_text(tmp_path / "a.txt", "x")
    write_json(tmp_path / "a.json", {"a": 1})
    write_star(tmp_path / "a.star", {"movies": pd.DataFrame({"rlnMicrographMovieName": ["m.mrc"]})})
    write_table(tmp_path / "a.csv", [{"a": 1}], ["a"])
    with atomic_write(tmp_path / "a.pkl", "wb") as handle:  # the pickle export's path
        handle.write(b"\x80\x04N.")
    with atomic_path(tmp_path / "a.html") as tmp:
        tmp.write_text("<html/>")
    for name in ("a.txt", "a.json", "a.star", "a.csv", "a.pkl", "a.html"):
        assert _mode(tmp_path / name) == expected, name
    folder = make_temp_dir(tmp_path / "store.zarr")
    assert _mode(folder) == 0o755


def test_permissions_follow_a_stricter_umask(tmp_path):
    old = os.umask(0o077)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.txt") == 0o600


def _raise_on(monkeypatch, name: str, err: int, module=os) -> None:
    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(module, name, fail)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("err", [errno.EROFS, errno.EACCES])
def test_read_only_output_folder_one_line_naming_the_folder(tmp_path, monkeypatch, err):
    """Defect 9: tests run as root (chmod does not stop root), so os.open raises like a
    read-only mount would."""
    out = tmp_path / "out"
    out.mkdir()
    _raise_on(monkeypatch, "open", err)
    with pytest.raises(OutputError) as info:
        write_text(out / "summary.json", "{}")
    line = str(info.value)
    assert line.startswith(f"{out}: cannot write to this folder") and "\n" not in line
    assert "choose another --out" in line and ".tmp" not in line
    with pytest.raises(OutputError, match="cannot write to this folder"):
        ensure_output_dir(out)
    monkeypatch.undo()
    assert _leftovers(out) == []


def test_output_folder_that_cannot_be_created(tmp_path, monkeypatch):
    _raise_on(monkeypatch, "mkdir", errno.EROFS, module=Path)
    with pytest.raises(OutputError) as info:
        ensure_output_dir(tmp_path / "new" / "out")
    assert str(info.value).startswith(f"{tmp_path}: cannot write to this folder (read-only file system)")
    (tmp_path / "file").write_text("x")
    monkeypatch.undo()
    with pytest.raises(OutputError, match="exists and is not a folder"):
        ensure_output_dir(tmp_path / "file")


def test_full_disk_names_the_file_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    """Defect 9: ENOSPC while writing or at fsync: the old output is untouched, no temp file."""
    out = tmp_path / "out"
    write_text(out / "dose.csv", "old\n")
    _raise_on(monkeypatch, "fsync", errno.ENOSPC)
    with pytest.raises(OutputError) as info:
        write_text(out / "dose.csv", "new\n")
    assert str(info.value) == (f"{out / 'dose.csv'}: no space left on device writing this output "
                               "(fix: free space on that device or choose another --out)")
    monkeypatch.undo()
    assert _leftovers(out) == ["dose.csv"] and (out / "dose.csv").read_text() == "old\n"
    _raise_on(monkeypatch, "replace", errno.EDQUOT)
    with pytest.raises(OutputError, match="disk quota exceeded"):
        with atomic_path(out / "plot.png") as tmp:
            tmp.write_bytes(b"png")
    monkeypatch.undo()
    assert _leftovers(out) == ["dose.csv"]


def test_other_os_errors_pass_through(tmp_path, monkeypatch):
    _raise_on(monkeypatch, "fsync", errno.EIO)
    with pytest.raises(OSError) as info:
        write_text(tmp_path / "a.txt", "x")
    assert not isinstance(info.value, ScopelineError)
    monkeypatch.undo()
    assert _leftovers(tmp_path) == []


def test_cli_read_only_out_exits_2_with_one_line(tmp_path, monkeypatch):
    """Through ``scopeline maxshift``: the run stops before any work with the folder named."""
    from typer.testing import CliRunner

    from scopeline.cli import app

    star = tmp_path / "a.csv"
    star.write_text("movie,frame,x,y,pixel_size\na,1,0,0,1\na,2,1,1,1\n")
    out = tmp_path / "out"
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(out)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "open", read_only)
    result = CliRunner().invoke(app, ["maxshift", str(star), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert f"{out}: cannot write to this folder (read-only file system)" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_journal_on_a_full_disk_names_the_file(tmp_path, monkeypatch):
    from scopeline.stream import Journal

    journal = Journal(tmp_path / ".scopeline" / "journal.jsonl")
    journal.append([{"key": "a"}])
    _raise_on(monkeypatch, "fsync", errno.ENOSPC)
    with pytest.raises(OutputError, match=r"journal.jsonl: no space left on device"):
        journal.append([{"key": "b"}])
