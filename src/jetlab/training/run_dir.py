"""Run directories and the session around a training recipe, the same for every recipe.

A run directory RUN holds ``config.yaml`` (the full config), ``checkpoint.pt`` (the engine's
resumable state) and what the recipe writes (``model.pt``, ``metrics.json``, plots). Rules:

* a new run refuses a RUN that already holds a checkpoint (``--resume`` continues it), a
  path that is a regular file, or a place it cannot write;
* ``--resume`` needs a checkpoint; the checkpoint's ``meta`` (task, model, hyperparameters
  and the fingerprint of the data and split) must match the resumed run's, so a run never
  continues on other data or another split;
* one process trains in a RUN at a time: the directory is locked for the whole run, and
  a second process gets a one-line error.

:func:`training_session` joins the process group the launcher set up (torchrun, mpiexec or
none), sets the torch threads, locks RUN and releases everything at the end, on every rank.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from jetlab.errors import InputError, JetlabError

__all__ = ["CHECKPOINT_NAME", "CONFIG_NAME", "check_run_dir", "data_fingerprint", "seed_everything",
           "training_session"]

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.yaml"


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
    from jetlab.distributed.env import init_distributed
    from jetlab.utils.locking import directory_lock

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
