"""Running generation blocks on a Dask cluster (``jetlab data generate --cluster``).

``("local", N)``: a ``LocalCluster`` of N worker processes with one thread each, started and
stopped here. ``("address", "tcp://HOST:PORT")``: the scheduler of a cluster the user
started (``dask scheduler`` + ``dask worker``, or dask-jobqueue on Slurm/HTCondor); jetlab
must be importable on the workers. Each task is :func:`jetlab.data.generate.run_block`:
it builds (once per worker thread) its own Pythia and returns the block's arrays to this
process, which writes them, so the workers need no shared file system. The scheduler reruns
the tasks of a lost worker elsewhere; a block's result is the same wherever it is computed.
"""

from __future__ import annotations

import logging

from jetlab.data.generate import run_block
from jetlab.errors import JetlabError

__all__ = ["dask_results"]

#: seconds to wait for a scheduler given by address
CONNECT_TIMEOUT = 30


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise JetlabError("--cluster needs Dask: pip install 'jetlab[cluster]' (dask[distributed])") from None
    return distributed


def dask_results(todo: list[tuple], where: tuple, salvage=None):
    """Yield (task, arrays) for each block task as the cluster finishes them. Stopped early
    (Ctrl-C, SIGTERM, an error), ``salvage(task, arrays)`` gets the blocks that finished but
    were not yielded, the rest is cancelled, and the worker processes of a local cluster are
    killed at once (closing the cluster politely waits for their running Pythia blocks)."""
    import os

    distributed = _import_distributed()
    logging.getLogger("distributed").setLevel(logging.ERROR)  # its INFO lines would drown the progress bar
    kind, value = where
    cluster, worker_pids = None, []
    try:
        if kind == "local":
            cluster = distributed.LocalCluster(
                n_workers=value, threads_per_worker=1, processes=True, dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
            client = distributed.Client(cluster)
            from jetlab.physics.substructure_fast import skip_numba_extensions  # lazy: start-up (numba)

            client.run(skip_numba_extensions)  # workers started here run nothing else
            worker_pids = list(client.run(os.getpid).values())
        else:
            client = distributed.Client(value, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise JetlabError(f"cannot reach the Dask scheduler at {value} ({exc})") from None
    futures, handed = {}, set()
    try:
        futures = {
            client.submit(run_block, task, key=f"jetlab-block-{task[0]}-{task[3]}-{task[5]}", pure=False): task
            for task in todo
        }
        for future in distributed.as_completed(futures):
            try:
                arrays = future.result()
            except distributed.KilledWorker as exc:
                raise JetlabError(f"Dask workers died repeatedly running a block ({exc}); rerun the same command to continue") from None
            handed.add(future)
            yield futures[future], arrays
    finally:
        finished = [f for f in futures if f not in handed and f.status == "finished"] if salvage else []
        for future in finished:
            salvage(futures[future], future.result())
        client.cancel([f for f in futures if not f.done()])
        _kill(worker_pids)
        client.close()
        if cluster is not None:
            cluster.close()


def _kill(pids: list[int]) -> None:
    import os
    import signal

    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
