"""Training checkpoints: everything needed to continue a killed run exactly.

``checkpoint.pt`` (written atomically after every epoch by rank 0) is a dict::

    format          "jetlab-checkpoint/2"
    meta            the run's identity: task, model, hyperparameters, data fingerprint
    epoch           last completed epoch (1-based); the next run starts at epoch + 1
    modules         network name -> state_dict (a tagger: "model"; a GAN: "generator",
                    "discriminator")
    best_modules    the same for the best epoch so far
    optimizers      network name -> optimizer.state_dict()
    schedulers      network name -> scheduler.state_dict() or None
    strategy        UpdateStrategy.state_dict()
    task            the task's own state (e.g. a generator's normalisation)
    best_value, best_epoch, epochs_without_improvement, stop_reason
    history         list of per-epoch dicts (train_*, val_*, lr, time)
    rng             one entry per rank: python, numpy and torch (CPU and CUDA) RNG states
    elapsed_s       training wall time so far

Like every torch file jetlab writes, it holds tensors and plain Python data only and loads
with the restricted unpickler (:mod:`jetlab.utils.tensor_files`): numpy's RNG state is
stored as ``(name, key tensor, pos, has_gauss, cached_gaussian)``.

The mini-batch order of epoch e is a pure function of (seed, e), so restoring the epoch
counter restores the sampler; the RNG states cover everything else (dropout, ...).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jetlab.errors import InputError
from jetlab.utils.tensor_files import load_tensor_file, save_tensor_file

__all__ = [
    "CHECKPOINT_FORMAT",
    "capture_rng_state",
    "load_checkpoint",
    "load_torch_file",
    "restore_rng_state",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "jetlab-checkpoint/2"


def capture_rng_state() -> dict[str, Any]:
    """The generator states of python ``random``, numpy's global RNG and torch (CPU, CUDA)."""
    state = {
        "python": random.getstate(),
        "numpy": _numpy_state(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state(state: tuple) -> tuple:
    """numpy's legacy RNG state with its key array (624 uint32) as an int64 tensor."""
    name, key, *rest = state
    return (name, torch.from_numpy(key.astype(np.int64)), *(int(v) if i < 2 else float(v) for i, v in enumerate(rest)))


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, key, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (see module docstring) atomically: a reader never sees half a file."""
    save_tensor_file({"format": CHECKPOINT_FORMAT, **state}, path)


def load_checkpoint(path: str | os.PathLike, *, expect_meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a checkpoint; ``expect_meta`` entries must match the saved ``meta`` exactly.

    Raises :class:`InputError` for a missing, unreadable or foreign file, or a checkpoint
    of another run (``expect_meta={"model_name": "dnn"}``: another model; ``data``: other
    data or another split).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no checkpoint to resume from")
    state = load_torch_file(path, CHECKPOINT_FORMAT, "checkpoint", "training checkpoint")
    meta = state.get("meta", {})
    for key, expected in (expect_meta or {}).items():
        if meta.get(key) != expected:
            raise InputError(path, f"checkpoint has {key}={meta.get(key)!r}, but this run asks for {key}={expected!r}")
    return state


def load_torch_file(path: Path, expected_format: str, readable_name: str, kind: str) -> dict[str, Any]:
    """Load a jetlab file whose dict carries ``format == expected_format``, executing nothing
    (:func:`jetlab.utils.tensor_files.load_tensor_file`).

    A file that names code -> "refused: ..."; unreadable bytes -> "not a readable
    <readable_name>"; another kind of file -> "not a jetlab <kind>"; all as
    :class:`InputError` naming ``path``.
    """
    state = load_tensor_file(path, readable_name)
    if not isinstance(state, dict) or state.get("format") != expected_format:
        raise InputError(path, f"not a jetlab {kind} (expected format {expected_format})")
    return state
