"""Advisory file locks (``fcntl.flock``) for what several processes may share.

:func:`directory_lock` takes a lock file ``.jetlab.lock`` inside a directory, writing the
holder's pid into it. ``wait=False`` (run directories: one run at a time) raises a one-line
:class:`~jetlab.errors.InputError` naming the directory and the holder when it is taken;
``wait=True`` (caches: the second process reads what the first one finished) blocks until
the holder is done. A directory the lock created and nobody wrote into is removed again.
The kernel drops the lock when its holder dies, so a killed process never
leaves a directory locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from jetlab.errors import InputError

__all__ = ["LOCK_NAME", "directory_lock"]

LOCK_NAME = ".jetlab.lock"


@contextlib.contextmanager
def directory_lock(path: str | os.PathLike, *, what: str = "directory", wait: bool = False) -> Iterator[Path]:
    """Hold an exclusive lock on directory ``path`` (created if missing) for the ``with`` block."""
    path = Path(path)
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    lock_file = path / LOCK_NAME
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise InputError(path, f"{what} is in use by process {holder}; wait for it to finish or choose "
                                   "another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        if created and [p.name for p in path.iterdir()] == [LOCK_NAME]:  # nothing was written: leave no trace
            lock_file.unlink()
            path.rmdir()
        os.close(fd)  # closing the descriptor releases the lock
