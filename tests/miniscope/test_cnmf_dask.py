"""Steps 5-8 sent to a Dask scheduler with two workers, each a separate process on
127.0.0.1, give the same result as the local run."""

import subprocess
import sys
import time

import numpy as np
import pytest

from .cnmf_synthetic import make_cnmf_movie, run_cnmf_steps, write_fake_upstream


@pytest.fixture
def loopback_cluster(tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    common = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                  **common)]
    try:
        for _ in range(2):
            processes.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker",
                                               "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                                               "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1"],
                                              **common))
        from distributed import Client

        deadline = time.time() + 60
        while not scheduler_file.exists():
            assert time.time() < deadline, "scheduler did not start"
            time.sleep(0.2)
        client = Client(scheduler_file=str(scheduler_file), timeout="30s")
        client.wait_for_workers(2, timeout=60)
        yield client
        client.close()
    finally:
        for process in processes[::-1]:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def test_distributed_run_equals_local_run(tmp_path, loopback_cluster):
    data = make_cnmf_movie(h=40, w=40, n=6, T=800, seed=21)
    local, remote = tmp_path / "local", tmp_path / "remote"
    for out in (local, remote):
        write_fake_upstream(out, data)
    run_cnmf_steps(local)
    client = loopback_cluster
    assert all(host.startswith("tcp://127.0.0.1") for host in client.scheduler_info()["workers"])
    from distributed import get_task_stream

    with client.as_current(), get_task_stream(client) as stream:
        run_cnmf_steps(remote, client=client)
    # the work really ran on the separate worker processes
    assert len({task["worker"] for task in stream.data}) == 2
    for name in ("A", "C", "S", "b", "f"):
        a, b = np.load(local / "export" / f"{name}.npy"), np.load(remote / "export" / f"{name}.npy")
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(a).max())))
