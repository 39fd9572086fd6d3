"""Server jobs (scopeline.ui.jobs): real ``python -m scopeline.cli`` subprocesses."""

from __future__ import annotations

import os
import time

import pytest

from scopeline.errors import ConfigError
from scopeline.ui.jobs import JobManager


def _wait_state(job, seconds=60.0):
    deadline = time.monotonic() + seconds
    while job.state == "running":
        assert time.monotonic() < deadline, f"{job} did not end"
        time.sleep(0.05)
    return job.state


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _watching(tmp_path, name="w"):
    """argv of a dose run that waits for movies in an empty folder until stopped."""
    (tmp_path / "empty").mkdir(exist_ok=True)
    stop = tmp_path / f"{name}.STOP"
    return ["dose", str(tmp_path / "empty"), "--out", str(tmp_path / f"out_{name}"), "--watch",
            "--idle-timeout", "600", "--poll-interval", "0.1", "--workers", "0", "--stop-file", str(stop)], stop


def test_finished_job_and_log_tail(tmp_path):
    jobs = JobManager(tmp_path / "logs")
    job = jobs.start("help", ["--help"])
    assert job.argv == ["--help"] and job.log_path == tmp_path / "logs" / "help.log"
    assert _wait_state(job) == "finished" and job.returncode == 0
    tail = job.log_tail(5)
    assert 0 < len(tail) <= 5
    full = job.log_path.read_text().splitlines()
    assert tail == full[-len(tail):] and any("dose" in line for line in full)
    assert jobs.get("help") is job and jobs.jobs() == [job] and jobs.get("nope") is None
    assert job.info()["state"] == "finished" and job.finished_at is not None


def test_failed_job_keeps_the_one_line_error(tmp_path):
    jobs = JobManager(tmp_path / "logs")
    job = jobs.start("bad", ["dose", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--workers", "0"],
                     cwd=tmp_path)
    assert _wait_state(job) == "failed" and job.returncode == 2
    assert any("missing" in line for line in job.log_tail())


def test_cancel_duplicate_name_and_restart(tmp_path):
    jobs = JobManager(tmp_path / "logs")
    argv, _ = _watching(tmp_path)
    job = jobs.start("watch", argv)
    time.sleep(0.3)
    assert job.state == "running" and job.returncode is None
    with pytest.raises(ConfigError, match="running"):
        jobs.start("watch", ["--help"])
    job.cancel(grace_s=2)
    assert job.state == "cancelled" and job.returncode is not None and _group_gone(job.pid)
    again = jobs.start("watch", ["--help"])  # the name is free once the job ended
    assert _wait_state(again) == "finished"
    assert (tmp_path / "logs" / "watch.log.1").is_file()  # the earlier log kept


def test_cancel_through_the_stop_file_ends_cleanly(tmp_path):
    jobs = JobManager(tmp_path / "logs")
    argv, stop = _watching(tmp_path, "s")
    job = jobs.start("s", argv, stop_file=stop)
    deadline = time.monotonic() + 60
    while not (tmp_path / "out_s" / ".scopeline" / "run.json").is_file():  # watching now
        assert time.monotonic() < deadline and job.alive
        time.sleep(0.05)
    job.cancel(stop_file_grace_s=30)
    assert stop.exists() and job.state == "cancelled"
    assert job.returncode == 0  # it closed its input: no signal was needed
    assert (tmp_path / "out_s" / "summary.json").is_file()  # and wrote its final outputs


def test_stop_all_leaves_no_process(tmp_path):
    jobs = JobManager(tmp_path / "logs")
    started = [jobs.start(f"j{i}", _watching(tmp_path, f"j{i}")[0]) for i in range(2)]
    time.sleep(0.3)
    jobs.stop_all(grace_s=2)
    for job in started:
        assert job.state == "cancelled" and _group_gone(job.pid)


@pytest.mark.parametrize("name", ["", "../x", "a b", "-x", "a/b", "x" * 101])
def test_bad_job_names_refused(tmp_path, name):
    with pytest.raises(ConfigError):
        JobManager(tmp_path).start(name, ["--help"])
