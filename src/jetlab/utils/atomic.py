"""Write files atomically: to a temporary name in the same folder, then rename.

An interrupted run therefore never leaves a half-written file under its final name;
at worst a ``.<name>.tmp-<pid>`` stays behind, which readers ignore and the next
write replaces.

A write that fails for want of room or rights (a full disk or quota, a read-only file
system, no permission, a path under a regular file) removes its temporary file and
raises :class:`~jetlab.errors.InputError` naming the final path and the problem
(:func:`write_error`): one line and exit status 2 on the command line. Libraries that
write through their own C code and report such failures badly or not at all (HDF5,
whose failed writes at close end in a native crash; torch.save) build the file in
memory first (:func:`atomic_h5`, :func:`atomic_torch_save`), so that only Python's own
``write`` touches the disk.
"""

from __future__ import annotations

import contextlib
import errno
import io
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jetlab.errors import InputError

__all__ = ["WRITE_ERRORS", "atomic_h5", "atomic_path", "atomic_write_text", "atomic_write_json", "atomic_torch_save",
           "check_output_dir", "write_error"]

#: errno -> what a user reads for it: the failures of a write that the user can fix
WRITE_ERRORS = {
    errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "permission denied",
    errno.ENOTDIR: "a parent of it is not a directory", errno.EISDIR: "is a directory",
    errno.EFBIG: "file too large",
}


_MEMORY_FILES = itertools.count()


def check_output_dir(path) -> Path:
    """``path`` can be (or already is) a writable directory; InputError before anything is written."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(path, "exists and is not a directory; --out must be a directory")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(path, f"cannot create the output directory ({ancestor} is not a directory)")
    if not os.access(ancestor, os.W_OK):
        raise InputError(path, f"cannot create the output directory ({ancestor} is not writable)")
    return path


def write_error(path: str | os.PathLike, exc: BaseException) -> InputError | None:
    """The one-line error for ``exc`` raised while writing ``path``, or None when it is no
    such failure (:data:`WRITE_ERRORS`)."""
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRORS:
        return InputError(path, f"cannot write: {WRITE_ERRORS[exc.errno]}")
    return None


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it onto ``final`` on success.

    >>> with atomic_path("out/metrics.json") as tmp:   # doctest: +SKIP
    ...     tmp.write_text("{}")
    """
    final = Path(final)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a parent is a file
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(final.parent)) from None
        yield tmp
        with open(tmp, "rb+") as fh:  # make the bytes durable before the rename
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        error = write_error(final, exc)
        if error is None:
            raise
        raise error from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` into memory, then the bytes to ``path`` (its own failed writes are opaque
    RuntimeErrors: module docstring)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike):
    """Yield a writable ``h5py.File`` held in memory; on success its bytes go to ``path``
    atomically (module docstring: HDF5 never writes to the disk itself)."""
    import h5py

    memory = f"jetlab-in-memory-{os.getpid()}-{next(_MEMORY_FILES)}.h5"  # a name only: nothing is written there
    with h5py.File(memory, "w", driver="core", backing_store=False) as handle:
        yield handle
        handle.flush()
        image = handle.id.get_file_image()
    with atomic_path(path) as tmp:
        tmp.write_bytes(image)


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
