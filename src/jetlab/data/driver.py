"""The parallel, resumable driver of ``jetlab data generate``: local processes or a Dask cluster.

The jets of a class are made in blocks of :data:`~jetlab.io.manifest.BLOCK_JETS`; block ``b``
of class ``c`` comes from the Pythia seed ``SeedSequence([seed, c, b])``
(:func:`jetlab.data.generate.block_seed`) wherever it runs, so the files depend on the
command only, not on ``--workers``, ``--cluster`` or scheduling. Workers only *compute* a
block and hand its arrays back; this process alone writes: each block atomically to
``OUT/.blocks``, each file (:func:`jetlab.io.manifest.planned_files`) as soon as its blocks
are in. A rerun of an interrupted command therefore resumes where it stopped, and a block
computed twice (a Dask task rerun after its worker was lost) is written once.

Where the blocks run:

* ``workers=1``: in this process;
* ``workers=K``: K spawned processes that die with this one (``PR_SET_PDEATHSIG`` on Linux,
  and a parent watch everywhere), ignore Ctrl-C (this process stops them) and are terminated
  on SIGTERM, Ctrl-C or an error;
* ``cluster="local[:N]"``: a Dask ``LocalCluster`` of N single-threaded worker processes
  (default: one per core); ``cluster="tcp://HOST:PORT"``: the scheduler of a running Dask
  cluster (e.g. started with dask-jobqueue on Slurm). Dask reschedules the tasks of a lost
  worker. Needs the ``cluster`` extra.

The output directory is locked (:func:`jetlab.utils.locking.cache_lock`) while a run writes
into it: a second run on the same directory waits, then finds the work done.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing as mp
import os
import re
import signal
import sys
import threading
from dataclasses import asdict
from pathlib import Path

import numpy as np

from jetlab.data.cluster import dask_results
from jetlab.data.generate import GeneratorSettings, block_seed, pythia_version, run_block
from jetlab.errors import InputError, JetlabError, Stopped
from jetlab.io.jet_files import open_jet_file, write_hls4ml_file
from jetlab.io.layout import CLASS_NAMES, SUPPORTED_PARTICLES
from jetlab.io.manifest import BLOCK_JETS, MANIFEST_NAME, planned_files, read_manifest
from jetlab.physics.particles import dense_images
from jetlab.utils.atomic import atomic_path, atomic_write_json
from jetlab.utils.locking import cache_lock
from jetlab.utils.progress import progress

__all__ = ["GenerationStopped", "generate_dataset", "parse_cluster"]

log = logging.getLogger(__name__)


class GenerationStopped(Stopped):
    """The run was stopped by a signal; finished files are kept (exit status 128 + signal)."""


def parse_cluster(spec: str | None) -> tuple[str, int | str] | None:
    """``"local"``, ``"local:N"`` or a scheduler address -> ("local", N) / ("address", spec)."""
    if spec is None:
        return None
    match = re.fullmatch(r"local(?::(\d+))?", spec)
    if match:
        n = int(match.group(1)) if match.group(1) else (os.cpu_count() or 1)
        if n < 1:
            raise JetlabError(f"--cluster local:N needs N >= 1, got {spec!r}")
        return "local", n
    if re.fullmatch(r"(tcp|tls|ucx|ws|wss)://[^\s/]+", spec):
        return "address", spec
    raise JetlabError(f"--cluster must be local, local:N or a Dask scheduler address such as tcp://host:8786, got {spec!r}")


def _validate(out: Path, classes, jets_per_class: int, n_particles: int, workers) -> tuple[str, ...]:
    classes = tuple(dict.fromkeys(str(c).strip().lower() for c in classes if str(c).strip()))
    if not classes:
        raise JetlabError(f"--jet-class names no jet class (known: {', '.join(CLASS_NAMES)})")
    bad = [c for c in classes if c not in CLASS_NAMES]
    if bad:
        raise JetlabError(f"unknown jet class '{bad[0]}' (known: {', '.join(CLASS_NAMES)})")
    if n_particles not in SUPPORTED_PARTICLES:
        raise JetlabError(f"--particles must be one of {', '.join(map(str, SUPPORTED_PARTICLES))}, got {n_particles}")
    if jets_per_class < 1:
        raise JetlabError(f"--jets-per-class must be positive, got {jets_per_class}")
    if workers is not None and workers < 1:
        raise JetlabError(f"--workers must be positive, got {workers}")
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a directory; --out must be a directory")
    return classes


def _manifest_matches(out: Path, manifest: dict) -> bool:
    previous = read_manifest(out)
    if previous is not None and previous != manifest:
        raise InputError(out, "holds jets generated with other settings; choose another --out")
    return previous is not None


def generate_dataset(
    out,
    *,
    classes=CLASS_NAMES,
    jets_per_class: int,
    n_particles: int = 30,
    seed: int = 0,
    workers: int | None = None,
    cluster: str | None = None,
    settings=None,
    show_progress: bool = True,
    lock: bool = True,
) -> list[Path]:
    """Generate ``jets_per_class`` jets of each class into directory ``out`` (hls4ml layout).

    Returns the files in plan order. Files already complete are kept; a rerun of the same
    command finishes an interrupted one. ``workers``: local processes (default: one per
    core); ``cluster``: run on Dask instead (module docstring). ``lock=False``: the caller
    already holds ``out``'s :func:`~jetlab.utils.locking.cache_lock`.
    """
    settings = settings or GeneratorSettings()
    out = Path(out).expanduser()
    classes = _validate(out, classes, jets_per_class, n_particles, workers)
    where = parse_cluster(cluster)
    manifest = {  # unchanged when jet finding moved into Pythia (same jets): old directories still resume
        "generator": "pythia8mc + fastjet", "classes": list(classes), "jets_per_class": jets_per_class,
        "n_particles": n_particles, "seed": seed, "settings": asdict(settings),
    }
    _manifest_matches(out, manifest)  # before anything is written
    if not out.exists():
        try:
            out.mkdir(parents=True)
        except OSError as exc:
            raise InputError(out, f"cannot create the output directory ({exc.strerror})") from None
    with cache_lock(out, what="jet directory") if lock else contextlib.nullcontext():
        if not _manifest_matches(out, manifest):
            atomic_write_json(out / MANIFEST_NAME, manifest)
        blocks_dir = out / ".blocks"
        blocks_dir.mkdir(exist_ok=True)
        _remove_stale_temporaries(out, blocks_dir)
        plan = []  # (final path, [block tasks])
        for planned in planned_files(classes, jets_per_class, n_particles):
            class_index = CLASS_NAMES.index(planned.jet_class)
            tasks = []
            for b0 in range(planned.start, planned.stop, BLOCK_JETS):
                block, n = b0 // BLOCK_JETS, min(BLOCK_JETS, planned.stop - b0)
                path = blocks_dir / f"{planned.jet_class}_{n_particles}p_{block:06d}_{n}.npz"
                seed_b = block_seed(seed, class_index, block)
                tasks.append((planned.jet_class, n_particles, asdict(settings), block, n, seed_b, str(path)))
            plan.append((out / planned.name, tasks))
        _run_plan(plan, seed, workers, where, show_progress)
        if not any(blocks_dir.iterdir()):
            blocks_dir.rmdir()
    return [final for final, _ in plan]


def _remove_stale_temporaries(*directories: Path) -> None:
    """Drop ``.<name>.tmp-<pid>`` files of writers that no longer run (we hold the lock)."""
    for directory in directories:
        for tmp in directory.glob(".*.tmp-*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
                tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_plan(plan, seed: int, workers, where, show_progress: bool) -> None:
    done = set()
    for final, tasks in plan:
        if _complete(final, sum(t[4] for t in tasks), open_jet_file):
            done.add(final)
            for t in tasks:  # leftovers of a run killed between writing the file and cleaning up
                Path(t[6]).unlink(missing_ok=True)
    todo = [t for final, tasks in plan if final not in done for t in tasks if not Path(t[6]).exists()]
    total = sum(t[4] for _, tasks in plan for t in tasks)
    already = total - sum(t[4] for t in todo)
    if already:
        log.info("resuming: %d of %d jets already generated", already, total)
    pending = {final: tasks for final, tasks in plan if final not in done}

    def write_ready_files() -> None:
        for final, tasks in list(pending.items()):
            if all(Path(t[6]).exists() for t in tasks):
                _assemble_file(final, tasks, seed)
                del pending[final]

    bar = progress(total=total, initial=already, desc="generating jets", unit="jet", disable=None if show_progress else True)
    try:
        with _stop_on_sigterm(), contextlib.closing(_results(todo, workers, where, _save_finished)) as results:
            write_ready_files()
            for task, arrays in results:
                _save_block(task[6], arrays)
                bar.update(task[4])
                write_ready_files()
    finally:
        bar.close()


@contextlib.contextmanager
def _stop_on_sigterm():
    """Turn SIGTERM into :class:`GenerationStopped` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise GenerationStopped(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _results(todo: list[tuple], workers, where, salvage=None):
    """Yield (task, arrays) as blocks finish, wherever they run; when stopped early,
    ``salvage(task, arrays)`` is called for blocks that finished but were not yielded."""
    if not todo:
        return
    if where is not None:
        yield from dask_results(todo, where, salvage)
        return
    workers = min(workers or os.cpu_count() or 1, len(todo))
    if workers == 1:
        for task in todo:
            yield task, run_block(task)
        return
    context = mp.get_context("spawn")
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init, initargs=(os.getpid(),))
    futures = {pool.submit(run_block, t): t for t in todo}
    handed = set()
    try:
        for future in cf.as_completed(futures):
            try:
                arrays = future.result()
            except cf.process.BrokenProcessPool:
                raise JetlabError("a generator worker process died (out of memory?); rerun the same command to continue") from None
            handed.add(future)
            yield futures[future], arrays
    finally:
        _stop_pool(pool)
        if salvage is not None:  # blocks that finished while we were stopping are kept too
            for future, task in futures.items():
                if future not in handed and future.done() and not future.cancelled() and future.exception() is None:
                    salvage(task, future.result())


def _stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel what has not started and terminate the workers at once, then shut the pool down
    (all done: they are idle). The workers are taken before ``shutdown``: on Python < 3.14
    ``shutdown(wait=False)`` empties the pool's process table, and a running Pythia block would
    otherwise finish (and the queued ones run) before this process could exit."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
    pool.shutdown(wait=True)


def _worker_init(parent_pid: int) -> None:
    """Worker set-up: one thread, die with the parent, leave Ctrl-C to the parent."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl in this libc
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl
        os._exit(1)
    from jetlab.physics.substructure_fast import skip_numba_extensions  # lazy: start-up (numba)

    skip_numba_extensions()

    def watch_parent() -> None:
        while True:
            threading.Event().wait(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch_parent, name="jetlab-parent-watch", daemon=True).start()


def _save_finished(task: tuple, arrays: dict) -> None:
    with contextlib.suppress(JetlabError):  # stopping anyway (a full disk): the block is recomputed next time
        _save_block(task[6], arrays)


def _save_block(path: str, arrays: dict) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _assemble_file(final: Path, tasks: list[tuple], seed: int) -> None:
    """Concatenate a file's finished blocks into one hls4ml file, then drop the blocks."""
    parts = [np.load(t[6]) for t in tasks]
    write_hls4ml_file(
        final,
        np.concatenate([p["constituents"] for p in parts]),
        np.concatenate([p["jets"] for p in parts]),
        np.concatenate([_block_images(p) for p in parts]),
        attrs={
            "generator": "pythia8mc " + pythia_version(),
            "seed": seed,
            "jet_class": tasks[0][0],
            "n_events": int(sum(int(p["events"]) for p in parts)),
        },
    )
    for t in tasks:
        Path(t[6]).unlink()


def _block_images(block) -> np.ndarray:
    if "images" in block:  # a block left by a jetlab from before sparse images
        return block["images"]
    return dense_images(block["image_count"], block["image_pixel"], block["image_value"])


def _complete(path: Path, n_expected: int, opener) -> bool:
    if not path.exists():
        return False
    try:
        file = opener(path)
    except InputError:
        return False
    file.close()
    return file.n_jets == n_expected
