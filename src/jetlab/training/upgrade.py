"""``jetlab run upgrade DIR``: convert run directories written by older jetlab versions.

Before model and checkpoint files were restricted to tensors and plain data
(:mod:`jetlab.utils.tensor_files`), jetlab stored a few numpy arrays in them: a tagger's
input standardisation (``model.pt`` ``stats``) and numpy's RNG state (``checkpoint.pt``
``rng``); and no run had a ``finished.json``. Such files are refused by every command.

:func:`upgrade_runs` finds every ``model.pt`` and ``checkpoint.pt`` under DIR (a run, a
prune run, a study directory) and rewrites each that needs it with the numpy arrays as
tensors. It reads them with the same restricted unpickler, widened by exactly the three
globals numpy uses to rebuild an array (``numpy.ndarray``, its ``_reconstruct``,
``numpy.dtype`` and the numeric dtype classes) and nothing else: a file naming any other global is refused, and
nothing in a file is executed. Arrays must be numeric. Then every run with a ``model.pt``
but no ``finished.json`` is marked finished when the older version's own signs say so:

* a tagger run: ``metrics.json`` (the older version wrote it last) no older than
  ``model.pt``, and the checkpoint's last epoch is the configured number of epochs or
  training stopped early;
* a generator run: ``history.json``, and the same checkpoint test (a paused run's
  ``model.pt`` and ``history.json`` were written too);
* a prune run (no checkpoint of its own): ``metrics.json`` no older than ``model.pt``.

A run that does not pass is reported as unfinished, for ``--resume``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from jetlab.errors import InputError, JetlabError
from jetlab.training.checkpoint import CHECKPOINT_FORMAT, _numpy_state
from jetlab.training.generator import GENERATOR_FILE_FORMAT
from jetlab.training.run_dir import CHECKPOINT_NAME, CONFIG_NAME, FINISHED_NAME, mark_finished, resume_command
from jetlab.training.tagger import MODEL_FILE_FORMAT
from jetlab.utils.config import read_yaml
from jetlab.utils.tensor_files import _default_allow_list, load_tensor_file, save_tensor_file, storable, unsafe_globals

__all__ = ["upgrade_runs"]

_NAMES = ("model.pt", "checkpoint.pt")


def _numpy_globals() -> list:
    from numpy._core import multiarray

    numeric = {type(np.dtype(code)) for code in "?" + np.typecodes["AllInteger"] + np.typecodes["Float"]}
    return [np.ndarray, np.dtype, multiarray._reconstruct, *numeric,
            (multiarray._reconstruct, "numpy.core.multiarray._reconstruct")]  # written under numpy 1.x


def _read_old(path: Path) -> dict:
    """An older jetlab file: tensors, plain data and numeric numpy arrays, executing nothing."""
    try:
        with _default_allow_list(), torch.serialization.safe_globals(_numpy_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        names = [n for n in unsafe_globals(path) if not n.startswith("numpy.")]
        problem = f"names {', '.join(names[:3])}" if names else f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
        raise InputError(path, f"not a file of an older jetlab ({problem}); not converted, nothing was executed") \
            from None
    formats = (CHECKPOINT_FORMAT, MODEL_FILE_FORMAT, GENERATOR_FILE_FORMAT)
    if not isinstance(state, dict) or state.get("format") not in formats:
        raise InputError(path, f"not a jetlab model or checkpoint file (expected format {' or '.join(formats)})")
    return state


def _convert(path: Path) -> bool:
    """Rewrite ``path`` in the tensors-only form if it needs it; True when it did."""
    try:
        load_tensor_file(path)
        return False
    except InputError:
        pass
    state = _read_old(path)
    for entry in state.get("rng") or []:
        if isinstance(entry, dict) and isinstance(entry.get("numpy"), tuple) and isinstance(entry["numpy"][1], np.ndarray):
            entry["numpy"] = _numpy_state(entry["numpy"])
    try:
        state = storable(state, path.name)
    except TypeError as exc:
        raise InputError(path, f"cannot be converted: {exc}") from None
    stamp = path.stat()
    save_tensor_file(state, path)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # the same content: the run's timeline is kept
    load_tensor_file(path)  # what a command now reads
    return True


def _legacy_finished(run: Path) -> tuple[bool, str]:
    def newer(name: str) -> bool:
        return (run / name).is_file() and (run / name).stat().st_mtime >= (run / "model.pt").stat().st_mtime

    if not (run / CHECKPOINT_NAME).is_file():
        return newer("metrics.json"), "no metrics.json newer than model.pt"
    checkpoint = load_tensor_file(run / CHECKPOINT_NAME)
    epochs = (read_yaml(run / CONFIG_NAME, what="config file") or {}).get("epochs") if (run / CONFIG_NAME).is_file() \
        else None
    ended = checkpoint.get("stop_reason") in ("early stopping", "requested") or (
        isinstance(epochs, int) and int(checkpoint.get("epoch", 0)) >= epochs)
    if not ended:
        return False, f"its checkpoint ends at epoch {checkpoint.get('epoch')} of {epochs}"
    if (run / "history.json").is_file():
        return True, ""
    return newer("metrics.json"), "no metrics.json newer than model.pt"


def upgrade_runs(folder: str | os.PathLike) -> list[str]:
    """Convert the files under ``folder`` and mark finished runs (module docstring); returns
    one line per file or run that was looked at."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "no such directory")
    files = sorted(p for name in _NAMES for p in folder.rglob(name) if p.is_file())
    if not files:
        raise InputError(folder, "holds no model.pt or checkpoint.pt to upgrade")
    lines = [f"{path}: {'converted to tensors' if _convert(path) else 'already tensors only'}" for path in files]
    for run in sorted({path.parent for path in files if path.name == "model.pt"}):
        if (run / FINISHED_NAME).is_file():
            continue
        finished, why = _legacy_finished(run)
        if finished:
            final = [n for n in ("model.pt", "metrics.json", "predictions.npz", "history.json") if (run / n).is_file()]
            mark_finished(run, final, upgraded=True)
            lines.append(f"{run}: finished run, marked ({FINISHED_NAME})")
        else:
            lines.append(f"{run}: unfinished ({why}); continue it with `{resume_command(run)}`")
    if not lines:
        raise JetlabError(f"{folder}: nothing to upgrade")
    return lines
