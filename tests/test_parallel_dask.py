"""Feature extraction on a real Dask cluster (two worker processes), one worker
killed mid-run; and an unreachable scheduler through the CLI."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import numpy as np
import pytest
from conftest import run_cli, snapshot

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      dashboard_address=None, silence_logs=logging.CRITICAL) as local:
        yield local


def _digits_run(tmp_path, backend="nest", **changes):
    from spinnconv.cli import build_parser, make_run

    args = build_parser().parse_args(["--mode", "testing", "--backend", backend, "--quiet",
                                      "--model-dir", str(tmp_path / "m"),
                                      "--data-dir", str(tmp_path / "data")])
    run = make_run(args)
    for name, value in changes.items():
        setattr(run, name, value)
    return run


def _kill_a_busy_worker(address: str, killed: dict, stop: threading.Event) -> None:
    """SIGKILL the process of the first worker seen running a block."""
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        while not stop.is_set():
            busy = [worker for worker, keys in client.processing().items() if keys]
            if busy:
                worker = busy[0]
                pid = client.run(os.getpid, workers=[worker])[worker]
                time.sleep(0.3)  # let it get into the simulation
                keys = client.processing(workers=[worker])[worker]
                os.kill(pid, signal.SIGKILL)
                killed.update(worker=worker, pid=pid, keys=keys)
                return
            time.sleep(0.05)


def test_map_calls_keeps_order_and_reports_worker_failures(cluster):
    import math
    import operator

    from spinnconv.errors import RuntimeFailure
    from spinnconv.parallel import map_calls, workers_for

    address = cluster.scheduler_address
    calls = [(i, 10 * i) for i in range(12)]
    assert list(map_calls(operator.add, calls, scheduler=address)) == [11 * i for i in range(12)]
    assert list(map_calls(operator.add, calls, jobs=2)) == [11 * i for i in range(12)]
    assert workers_for(12, 1, address) == 2 and workers_for(1, 1, address) == 1
    assert workers_for(12, 3) == 3 and workers_for(1, 3) == 0 and workers_for(12, 1) == 0
    with pytest.raises(RuntimeFailure, match="failed on a Dask worker .ValueError: math domain"):
        list(map_calls(math.sqrt, [(4.0,), (-1.0,)], scheduler=address))


def test_features_on_cluster_equal_jobs_1_after_a_worker_is_killed(cluster, tmp_path):
    pytest.importorskip("pyNN.nest")

    from spinnconv.parallel import connect
    from spinnconv.pipeline import count_spikes

    run = _digits_run(tmp_path)
    run.params = {**run.params, "block_images": 20}
    data = run.load()
    model = run.model(data.image_shape)
    kernels = {0: np.random.default_rng(0).random((16, 3, 3, 2)) * 1.5}
    images = data.test_images[:160]  # 8 blocks
    expected = count_spikes(run, model, kernels, images, "jobs 1")
    assert expected.sum() > 0

    address = cluster.scheduler_address
    connect(address)  # the pipeline's client, before the killer starts looking
    killed, stop = {}, threading.Event()
    killer = threading.Thread(target=_kill_a_busy_worker, args=(address, killed, stop))
    killer.start()
    try:
        on_cluster = count_spikes(_digits_run(tmp_path, params=run.params,
                                              dask_scheduler=address),
                                  model, kernels, images, "cluster")
    finally:
        stop.set()
        killer.join()
    assert killed.get("keys"), "no worker was seen running a block"
    np.testing.assert_array_equal(on_cluster, expected)
    _assert_recomputed(address, killed)


def _assert_recomputed(address: str, killed: dict) -> None:
    """The block the killed worker was running went to a worker twice (recomputed),
    and that worker is gone."""
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        stories = [client.run_on_scheduler(lambda dask_scheduler, key=key:
                                           dask_scheduler.story(key)) for key in killed["keys"]]
        assert any(sum(1 for entry in story if entry[2] == "processing") >= 2
                   for story in stories), stories
        assert killed["pid"] not in client.run(os.getpid).values()


def test_batched_features_on_cluster_equal_local_after_a_worker_is_killed(cluster, tmp_path):
    """--backend batched with a scheduler: the engine's blocks run on the workers (one
    block per task), the counts equal the local engine's, a killed worker's blocks
    are recomputed; the layers read side by side too."""
    pytest.importorskip("numba")

    from spinnconv.parallel import connect
    from spinnconv.pipeline import count_spikes

    run = _digits_run(tmp_path, backend="batched")
    run.params = {**run.params, "block_images": 60}
    data = run.load()
    # digits enlarged to 24×24: blocks that take a while, as MNIST's do
    images = np.kron(data.train_images[:1200], np.ones((1, 3, 3), np.float32))
    model = run.model(images.shape[1:])
    kernels = {0: np.random.default_rng(2).random((16, 3, 3, 2)) * 1.5}
    expected = count_spikes(run, model, kernels, images, "local")
    assert expected.sum() > 0

    address = cluster.scheduler_address
    connect(address)
    on_cluster_run = _digits_run(tmp_path, backend="batched", params=run.params,
                                 dask_scheduler=address)
    killed, stop = {}, threading.Event()
    killer = threading.Thread(target=_kill_a_busy_worker, args=(address, killed, stop))
    killer.start()
    try:
        on_cluster = count_spikes(on_cluster_run, model, kernels, images, "cluster")
    finally:
        stop.set()
        killer.join()
    assert killed.get("keys"), "no worker was seen running a block"
    np.testing.assert_array_equal(on_cluster, expected)
    _assert_recomputed(address, killed)
    assert on_cluster_run.worker_peak_mb > 0  # the workers' memory is accounted
    positions = [0, 1]
    np.testing.assert_array_equal(
        count_spikes(on_cluster_run, model, kernels, images[:120], "cluster", positions),
        count_spikes(run, model, kernels, images[:120], "local", positions))


def test_a_worker_with_two_threads_runs_one_simulation_at_a_time(tmp_path):
    pytest.importorskip("pyNN.nest")
    from distributed import LocalCluster

    from spinnconv.pipeline import count_spikes

    run = _digits_run(tmp_path)
    run.params = {**run.params, "block_images": 15}
    data = run.load()
    model = run.model(data.image_shape)
    kernels = {0: np.random.default_rng(1).random((16, 3, 3, 2)) * 1.5}
    images = data.test_images[:45]
    expected = count_spikes(run, model, kernels, images, "jobs 1")
    with LocalCluster(n_workers=1, processes=True, threads_per_worker=2,
                      dashboard_address=None, silence_logs=logging.CRITICAL) as local:
        on_cluster = count_spikes(_digits_run(tmp_path, params=run.params,
                                              dask_scheduler=local.scheduler_address),
                                  model, kernels, images, "two threads")
    np.testing.assert_array_equal(on_cluster, expected)


def test_unreachable_scheduler_is_one_line_and_writes_nothing(tmp_path):
    started = time.perf_counter()
    result = run_cli("--mode", "all", "--dataset", "digits", "--backend", "nest",
                     "--model-dir", str(tmp_path / "model"), "--data-dir",
                     str(tmp_path / "data"), "--dask-scheduler", "tcp://127.0.0.1:1")
    assert time.perf_counter() - started < 30
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:1")
    assert "dask scheduler" in lines[0]
    assert snapshot(tmp_path) == {}


def test_a_scheduler_without_workers_is_refused():
    from distributed import LocalCluster

    from spinnconv.errors import RuntimeFailure
    from spinnconv.parallel import connect

    with LocalCluster(n_workers=0, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as local:
        started = time.perf_counter()
        with pytest.raises(RuntimeFailure, match="has no workers: start them with 'dask worker"):
            connect(local.scheduler_address, timeout_s=1.0)
        assert time.perf_counter() - started < 10


def test_malformed_scheduler_address_is_a_usage_error(tmp_path):
    result = run_cli("--mode", "testing", "--model-dir", str(tmp_path / "model"),
                     "--dask-scheduler", "somehost")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --dask-scheduler somehost: missing port number")
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(tmp_path) == {}
