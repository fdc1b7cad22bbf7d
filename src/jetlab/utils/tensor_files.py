"""Model and checkpoint files that load without executing anything.

``torch.save`` writes a pickle, and a full unpickler runs whatever functions the file
names: a crafted ``model.pt`` could run any code on the machine that opens it. Every torch
file jetlab writes therefore holds *plain data* only, and every one it reads is opened with
torch's restricted unpickler (``torch.load(..., weights_only=True)``), which rebuilds

* tensors (and ``torch.Size``, dtypes), and
* ``dict`` / ``OrderedDict``, ``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool``, ``None``,

and refuses a file that names any other Python global (a function, a class, numpy's array
constructor) before calling it. :func:`save_tensor_file` converts numpy arrays and scalars
to tensors and Python numbers first and refuses any other type, so what jetlab writes it
can read back this way. Allow-lists that other code in the process may have added with
``torch.serialization.add_safe_globals`` are set aside while a jetlab file loads.

Files written by jetlab before this rule held numpy arrays (a tagger's input
standardisation, numpy's RNG state in checkpoints); they are refused with a message that
points to ``jetlab run upgrade`` (:mod:`jetlab.training.upgrade`), which converts them
once, itself executing nothing either.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jetlab.errors import InputError
from jetlab.utils.atomic import atomic_torch_save

__all__ = ["UPGRADE_COMMAND", "load_tensor_file", "save_tensor_file", "storable", "unsafe_globals"]

#: the one-off conversion of files written by older jetlab versions (its help says it executes them)
UPGRADE_COMMAND = "jetlab run upgrade"

_ATOMS = (str, int, float, bool, type(None), torch.Tensor, torch.Size, torch.dtype)


def storable(obj: Any, where: str = "file") -> Any:
    """``obj`` with numpy arrays as tensors and numpy scalars as Python numbers; ``TypeError``
    for anything the restricted unpickler would refuse (a programming error, not user input).
    Containers whose contents need no change are returned as they are (a module's
    ``state_dict`` keeps its ``_metadata``)."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"{where}: a numpy array of dtype {obj.dtype} cannot be stored as a tensor")
        return torch.from_numpy(np.ascontiguousarray(obj).copy())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, _ATOMS):
        return obj
    if isinstance(obj, dict):
        for key in obj:
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: dict key {key!r} of type {type(key).__name__}")
        items = {key: storable(value, f"{where}[{key!r}]") for key, value in obj.items()}
        if all(items[key] is obj[key] for key in obj):
            return obj
        return collections.OrderedDict(items) if isinstance(obj, collections.OrderedDict) else items
    if isinstance(obj, (list, tuple)):
        items = [storable(value, f"{where}[{i}]") for i, value in enumerate(obj)]
        if all(a is b for a, b in zip(items, obj)) and type(obj) in (list, tuple):
            return obj
        return tuple(items) if isinstance(obj, tuple) else items
    raise TypeError(f"{where}: a {type(obj).__module__}.{type(obj).__qualname__} cannot be stored in a jetlab "
                    "torch file (tensors, numbers, strings, lists, tuples and dicts only)")


def save_tensor_file(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` the :func:`storable` form of ``obj`` atomically (temporary name, rename)."""
    atomic_torch_save(storable(obj, Path(path).name), path)


@contextlib.contextmanager
def _default_allow_list() -> Iterator[None]:
    """torch's own allow-list only, whatever ``add_safe_globals`` calls were made before."""
    added = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        yield
    finally:
        torch.serialization.add_safe_globals(added)


def unsafe_globals(path: str | os.PathLike) -> list[str]:
    """The Python globals a torch file names beyond torch's default allow-list (read from the
    pickle's opcodes; nothing is unpickled). Empty when the file cannot be scanned."""
    try:
        with _default_allow_list():
            return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - not a zip-format torch file: the load itself says why
        return []


def load_tensor_file(path: str | os.PathLike, readable_name: str = "torch file") -> Any:
    """Load ``path`` with the restricted unpickler (module docstring).

    Raises :class:`InputError` naming ``path``: "refused" for a file naming globals, with
    what to do (upgrade a file of an older jetlab, which names only numpy's array types;
    otherwise: not a jetlab file); "not a readable <readable_name>" for broken bytes.
    """
    path = Path(path)
    try:
        with _default_allow_list(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # a plain pickle.dump file
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if text.startswith("Weights only load failed"):  # the restricted unpickler stopped: a global, or bad bytes
            reason = text.split("trusted source.", 1)[-1].split("WeightsUnpickler error:", 1)[-1]
            reason = reason.split("Check the documentation", 1)[0].strip()
            if unsafe_globals(path) or re.search(r"global|Can only build|allowlist", reason, re.IGNORECASE):
                raise InputError(path, _refusal(path, text)) from None
            text = reason
        raise InputError(path, f"not a readable {readable_name} (UnpicklingError: {_first_line(text)})") from None
    except Exception as exc:  # noqa: BLE001 - any other failure means a bad file
        raise InputError(path, f"not a readable {readable_name} ({type(exc).__name__}: {_first_line(exc)})") from None


def _refusal(path: Path, error: str) -> str:
    names = unsafe_globals(path) or sorted(set(re.findall(r"GLOBAL ([\w.]+)", error)))
    if names and all(name.startswith("numpy.") for name in names):
        return ("refused: written by an older jetlab, it holds numpy arrays, which jetlab no longer unpickles; "
                f"convert its run once with `{UPGRADE_COMMAND} {path.parent}` (it reads numeric numpy arrays besides "
                "tensors, executes nothing, and rewrites the files)")
    shown = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "") if names else "a Python global"
    return (f"refused: loading it would call {shown}, so it could run code; jetlab files hold tensors and plain "
            "data only, so this one was not written by jetlab (or was changed since); nothing was executed")


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
