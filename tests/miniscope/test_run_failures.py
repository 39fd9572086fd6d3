"""Issue 12 defects 6, 7 and 9 (miniscope): dead Dask workers, relative paths sent to
workers in another folder, and an output folder that is read-only or full."""

import contextlib
import errno
import logging
import os
import subprocess
import sys
import threading
import time

import pytest
from typer.testing import CliRunner

from scopeline.cli import app
from scopeline.errors import OutputError, WorkersLostError
from scopeline.miniscope.api import run_pipeline
from scopeline.miniscope.params import MiniscopeParams
from scopeline.miniscope.simulate import SimulationParams, simulate_recording

SIM = SimulationParams(height=48, width=48, n_frames=200, n_neurons=4, frames_per_file=100, seed=5)


def _params():
    p = MiniscopeParams()
    p.load.chunk_frames = 20
    return p


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    simulate_recording(folder, SIM)
    return folder


# ----------------------------------------------------------------------------- defect 7
def test_relative_paths_work_on_workers_in_another_folder(videos, tmp_path, monkeypatch):
    from distributed import LocalCluster

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "project").mkdir()
    os.symlink(videos, tmp_path / "project" / "videos")
    monkeypatch.chdir(elsewhere)  # the worker processes start here
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster:
        monkeypatch.chdir(tmp_path / "project")  # the user runs from here, with relative paths
        result = run_pipeline("videos", "out", _params(), to_step="load", scheduler=cluster.scheduler_address)
    assert result.steps[-1].summary["frames_loaded"] == 200
    assert (tmp_path / "project" / "out" / "steps" / "load" / "complete.json").exists()
    assert not (elsewhere / "out").exists()


# ----------------------------------------------------------------------------- defect 9
def _refuse_writes_in(monkeypatch, folder):
    from scopeline.io import atomic

    real = atomic._create_temp

    def create_temp(dir, prefix, suffix):  # a read-only folder, also for root
        if os.path.abspath(dir).startswith(os.path.abspath(folder)):
            raise PermissionError(errno.EACCES, "Permission denied", os.path.join(str(dir), ".hidden.tmp"))
        return real(dir, prefix, suffix)

    monkeypatch.setattr(atomic, "_create_temp", create_temp)


def test_read_only_output_folder_is_one_line_naming_it(videos, tmp_path, monkeypatch):
    out = tmp_path / "readonly"
    out.mkdir()
    _refuse_writes_in(monkeypatch, out)
    result = CliRunner().invoke(app, ["miniscope", "run", str(videos), "--out", str(out), "--to", "load",
                                      "--scheduler", "synchronous"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0] and "another --out" in lines[0], result.output
    assert ".hidden" not in lines[0] and "Traceback" not in result.output
    assert os.listdir(out) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_chmod(videos, tmp_path):
    out = tmp_path / "readonly"
    out.mkdir()
    out.chmod(0o555)
    with pytest.raises(OutputError, match="permission denied"):
        run_pipeline(videos, out, _params(), to_step="load", scheduler="synchronous")


def test_full_disk_during_the_store_write_is_one_line(videos, tmp_path, monkeypatch):
    from scopeline.miniscope.steps import load

    class Full:
        def __setitem__(self, key, value):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(load, "open_for_writing", lambda store, path: Full())
    out = tmp_path / "out"
    with pytest.raises(OutputError) as info:
        run_pipeline(videos, out, _params(), to_step="load", scheduler="synchronous")
    line = str(info.value)
    assert str(out) in line and "no space left" in line and "\n" not in line
    assert not (out / "steps" / "load" / "complete.json").exists()  # the step re-runs on resume


# ----------------------------------------------------------------------------- defect 6
@pytest.fixture
def one_worker_cluster(tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    common = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                  **common)]
    try:
        processes.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                           str(scheduler_file), "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                           "--host", "127.0.0.1"], **common))
        from distributed import Client

        deadline = time.time() + 60
        while not scheduler_file.exists():
            assert time.time() < deadline, "scheduler did not start"
            time.sleep(0.2)
        client = Client(scheduler_file=str(scheduler_file), timeout="30s")
        client.wait_for_workers(1, timeout=60)
        yield client, processes[1]
        client.close()
    finally:
        for process in processes[::-1]:
            process.kill()
            process.wait(timeout=10)


def test_every_worker_dead_stops_with_one_line(videos, tmp_path, one_worker_cluster, monkeypatch):
    client, worker = one_worker_cluster
    monkeypatch.setenv("SCOPELINE_WORKER_TIMEOUT", "3")
    address = client.scheduler.address

    def kill_when_busy():
        deadline = time.time() + 60
        with contextlib.suppress(Exception):
            while time.time() < deadline and not any(client.processing().values()):
                time.sleep(0.05)
        worker.kill()

    outcome = {}

    def run():
        try:
            run_pipeline(videos, tmp_path / "out", _params(), to_step="load", scheduler=address)
            outcome["result"] = "finished"
        except Exception as exc:  # noqa: BLE001
            outcome["error"] = exc

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    t0 = time.time()
    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(90)
    assert not runner.is_alive(), "the run hangs after every worker died"
    error = outcome.get("error")
    assert isinstance(error, WorkersLostError), outcome
    assert "every Dask worker" in str(error) and address in str(error) and "\n" not in str(error)
    assert time.time() - t0 < 60
