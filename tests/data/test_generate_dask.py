"""Generation on a Dask cluster: the same files as a local run, even when a worker is killed
mid-run (its tasks rerun elsewhere, nothing missing or duplicated)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from jetlab.data.driver import generate_dataset

distributed = pytest.importorskip("distributed")

JETS = 500  # 5 blocks of one class


@pytest.fixture(scope="module")
def reference(shared):
    return shared("dask-reference", lambda out: generate_dataset(
        out, classes=["w"], jets_per_class=JETS, seed=8, workers=1, show_progress=False))


def assert_same_files(a, b):
    names = sorted(p.name for p in a.glob("*.h5"))
    assert names and names == sorted(p.name for p in b.glob("*.h5"))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.slow
def test_local_cluster_of_two_workers_writes_the_local_files(tmp_path, reference):
    generate_dataset(tmp_path, classes=["w"], jets_per_class=JETS, seed=8, cluster="local:2", show_progress=False)
    assert_same_files(tmp_path, reference)


@pytest.mark.slow
def test_a_worker_killed_mid_run_changes_nothing(tmp_path, reference):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            errors = []

            def run():
                try:
                    generate_dataset(tmp_path, classes=["w"], jets_per_class=JETS, seed=8, cluster=cluster.scheduler_address,
                                     show_progress=False)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            thread = threading.Thread(target=run)
            thread.start()
            deadline = time.monotonic() + 300
            while not list((tmp_path / ".blocks").glob("*.npz")) and not list(tmp_path.glob("*.h5")):
                assert thread.is_alive() and time.monotonic() < deadline, errors
                time.sleep(0.2)
            victim = sorted(client.run(os.getpid).values())[0]
            os.kill(victim, signal.SIGKILL)  # the nanny restarts it; its task goes elsewhere
            thread.join(timeout=600)
            assert not thread.is_alive() and not errors, errors
    assert_same_files(tmp_path, reference)
    assert not (tmp_path / ".blocks").exists()
