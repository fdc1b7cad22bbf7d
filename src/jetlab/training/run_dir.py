"""Run directories and the session around a training recipe, the same for every recipe.

A run directory RUN holds ``config.yaml`` (the full config), ``checkpoint.pt`` (the engine's
resumable state) and what the recipe writes (``model.pt``, ``metrics.json``, plots). Rules:

* a new run refuses a RUN that already holds a checkpoint (``--resume`` continues it), a
  path that is a regular file, or a place it cannot write;
* ``--resume`` needs a checkpoint; the checkpoint's ``meta`` (task, model, hyperparameters
  and the fingerprint of the data and split) must match the resumed run's, so a run never
  continues on other data or another split;
* one process trains in a RUN at a time: the directory is locked for the whole run, and
  a second process gets a one-line error;
* a run is *finished* only when ``finished.json`` is there: the recipe writes it last,
  atomically, after all its final files, with the SHA-256 of each; any training in RUN
  (new or ``--resume``) removes it before it writes a model (``Engine.begin``, once a
  resumed checkpoint has been accepted). A run stopped part-way (crash, full disk, time
  limit, SIGTERM) has none, and the commands that use a trained model
  (:func:`require_finished`) refuse it and say ``--resume``.

:func:`training_session` joins the process group the launcher set up (torchrun, mpiexec or
none), sets the torch threads, locks RUN and releases everything at the end, on every rank.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from jetlab.distributed.env import init_distributed
from jetlab.errors import InputError, JetlabError
from jetlab.utils.atomic import atomic_write_json
from jetlab.utils.config import read_json, read_yaml
from jetlab.utils.locking import directory_lock

__all__ = ["CHECKPOINT_NAME", "CONFIG_NAME", "FINISHED_NAME", "check_run_dir", "clear_finished", "data_fingerprint",
           "file_sha256", "mark_finished", "require_finished", "seed_everything", "training_session"]

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.yaml"
FINISHED_NAME = "finished.json"
FINISHED_FORMAT = "jetlab-finished/1"


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mark_finished(run: str | os.PathLike, files, **info) -> None:
    """Write RUN/finished.json (last, atomically): ``files`` (names in RUN, all present) with
    their SHA-256, and ``info`` (e.g. epochs run, why training stopped)."""
    run = Path(run)
    atomic_write_json(run / FINISHED_NAME, {"format": FINISHED_FORMAT, **info,
                                            "files": {name: file_sha256(run / name) for name in files}})


def clear_finished(run: str | os.PathLike) -> None:
    """Remove RUN/finished.json: called before a training writes anything into RUN."""
    (Path(run) / FINISHED_NAME).unlink(missing_ok=True)


def require_finished(run: str | os.PathLike, model_name: str = "model.pt") -> None:
    """:class:`InputError` unless RUN's finished.json lists ``model_name`` with its current
    SHA-256 and every file it lists is there; the message names RUN and says ``--resume``."""
    run = Path(run)
    record_path = run / FINISHED_NAME
    problem = None
    try:
        record = read_json(record_path) if record_path.is_file() else None
    except JetlabError:
        record = None
    files = record.get("files") if isinstance(record, dict) and record.get("format") == FINISHED_FORMAT else None
    if record is None or not isinstance(files, dict):
        problem = f"no {FINISHED_NAME}, which training writes last" if record is None else f"{FINISHED_NAME} unreadable"
    elif missing := [name for name in files if not (run / name).is_file()]:
        problem = f"{', '.join(missing)} missing"
    elif files.get(model_name) != file_sha256(run / model_name):
        problem = f"{model_name} is not the one its training finished with"
    if problem:
        raise InputError(run, f"holds an unfinished run ({problem}): it stopped before its end; continue it with "
                              f"`{resume_command(run)}` (a run made by an older jetlab: `jetlab run upgrade {run}`)")


def resume_command(run: Path) -> str:
    """The command that continues the run in RUN (a prune run, a generator or a tagger)."""
    try:
        config = read_yaml(run / CONFIG_NAME, what="config file") if (run / CONFIG_NAME).is_file() else {}
    except JetlabError:
        config = {}
    config = config if isinstance(config, dict) else {}
    if "source" in config and "target_sparsity" in config:
        return f"jetlab tagger prune {config['source']} --out {run} --resume"
    if (run / "history.json").is_file() or config.get("model") in ("vae", "gan", "flow") \
            or (config.get("model_code") or {}).get("task") == "generate":
        return f"jetlab fastsim train --out {run} --resume"
    return f"jetlab tagger train --out {run} --resume"


def check_run_dir(out: str | os.PathLike, *, resume: bool) -> Path:
    """Validate RUN for a new (``resume=False``) or continued run (module docstring)."""
    out = Path(out)
    checkpoint = out / CHECKPOINT_NAME
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a directory; choose another --out")
    if resume:
        if not out.is_dir():
            raise InputError(out, "no such run directory to resume")
        if not checkpoint.is_file():
            raise InputError(out, f"holds no training run to resume (no {CHECKPOINT_NAME}); drop --resume to start one")
    elif checkpoint.exists():
        raise InputError(out, "already holds a training run; pass --resume to continue it or choose another --out")
    existing = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(existing, "is not writable; choose another --out")
    return out


def data_fingerprint(path, n_items: int, *, split_seed: int, fractions, what: str | None = None) -> dict:
    """What identifies a run's data and split in its checkpoint ``meta``."""
    return {"path": str(Path(path).resolve()) if path is not None else None, "what": what, "n_items": int(n_items),
            "split_seed": int(split_seed), "fractions": [float(f) for f in fractions]}


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's global RNG and torch (weights, dropout, noise)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@contextlib.contextmanager
def training_session(out: str | os.PathLike, *, resume: bool, device: str = "cpu",
                     threads: int | None = None, collective: bool = True) -> Iterator:
    """Join the process group, set threads, check and lock RUN; yields the DistContext.
    ``collective=False``: an asynchronous strategy's MPI job, no torch.distributed group."""
    check_run_dir(out, resume=resume)
    context = init_distributed(device, collective=collective)
    threads_before = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(int(threads))
        elif context.world_size > 1 and not context.device.startswith("cuda"):
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // context.world_size))
        with contextlib.ExitStack() as stack:
            problem = None
            if context.is_main:  # rank 0 takes the lock and tells the others whether it could
                try:
                    stack.enter_context(directory_lock(out, what="run directory"))
                except JetlabError as exc:
                    problem = str(exc)
            problem = context.broadcast_object(problem)
            if problem:
                raise JetlabError(problem)
            yield context
    finally:
        torch.set_num_threads(threads_before)
        context.shutdown()
