"""Inter-process locks on directories (POSIX ``fcntl.flock`` on a lock file holding the pid).

Two flavours:

* :func:`cache_lock` — *blocking*: for shared caches that one process fills and the others
  then read (the default jet set). A process that has to wait says so once on stderr
  (``jetlab: waiting for ... (locked by pid N)``) and goes on when the holder is done.
* :func:`directory_lock` — *exclusive, non-blocking*: for directories one process owns
  while it runs (a run directory). If another live process holds it, a one-line
  :class:`~jetlab.errors.JetlabError` names the directory and the holder's pid::

      with directory_lock(run_dir, what="run directory"):
          train(...)

Both take ``<directory>/.lock`` (created if needed; readers of jet and run directories skip
dot-files) and remove it again when the block ends, so a finished run leaves no lock file
behind. The lock belongs to the open file description, so it is also released when the
process exits or is killed (even ``kill -9``; the file then stays, but holds no lock). Because
the holder unlinks the file before letting go, a process that waited on the old file checks,
once it has the lock, that its file is still the one at the path, and starts over if not. A
directory the lock itself created and nobody wrote into is removed again, so a run that fails
before writing anything leaves no trace. The pid written into the file is only for the messages. Locks are re-entrant neither
across threads nor within one process: take each once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from jetlab.errors import InputError, JetlabError
from jetlab.utils.atomic import write_error

__all__ = ["LOCK_NAME", "cache_lock", "directory_lock", "lock_holder"]

LOCK_NAME = ".lock"


def lock_holder(directory) -> int | None:
    """Pid recorded in ``directory``'s lock file (None when absent or unreadable)."""
    try:
        return int((Path(directory) / LOCK_NAME).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _open_lock_file(directory: Path, what: str) -> int:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except FileExistsError:
        raise InputError(directory, f"exists and is not a directory (a {what} must be a directory)") from None
    except OSError as exc:
        raise InputError(directory, f"cannot create a lock in this {what} ({exc.strerror})") from None


def _record_pid(fd: int, directory: Path) -> None:
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:  # a full disk: one line naming the lock file
        error = write_error(directory / LOCK_NAME, exc)
        if error is None:
            raise
        raise error from None


@contextlib.contextmanager
def _locked(directory, what: str, blocking: bool) -> Iterator[Path]:
    directory = Path(directory)
    created = not directory.exists()
    fd = _acquire(directory, what, blocking)
    try:
        _record_pid(fd, directory)
        yield directory
    finally:
        with contextlib.suppress(FileNotFoundError):
            (directory / LOCK_NAME).unlink()  # while still holding it: see the module docstring
        if created and not any(directory.iterdir()):  # nothing written: leave no trace
            with contextlib.suppress(OSError):  # unless a waiter has just put its lock file there
                directory.rmdir()
        os.close(fd)  # releases the lock


def _acquire(directory: Path, what: str, blocking: bool) -> int:
    """An fd holding the exclusive lock on the file now at ``directory/.lock``."""
    import fcntl

    said = False
    while True:
        fd = _open_lock_file(directory, what)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            holder = lock_holder(directory)
            by = f"pid {holder}" if holder else "another process"
            if not blocking:
                os.close(fd)
                raise JetlabError(
                    f"{directory}: this {what} is in use by another jetlab process ({by}); "
                    f"wait for it to finish or choose another {what}"
                ) from None
            if not said:
                print(f"jetlab: waiting for {what} {directory} (locked by {by})", file=sys.stderr, flush=True)
                said = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _still_at_path(fd, directory / LOCK_NAME):
            return fd
        os.close(fd)  # the previous holder removed the file we waited on: lock the current one


def _still_at_path(fd: int, path: Path) -> bool:
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (at_path.st_dev, at_path.st_ino)


def cache_lock(directory, what: str = "cache directory"):
    """Blocking exclusive lock on ``directory`` (a context manager; waits for the holder)."""
    return _locked(directory, what, blocking=True)


def directory_lock(directory, what: str = "directory"):
    """Non-blocking exclusive lock on ``directory``; JetlabError naming the holder's pid if taken."""
    return _locked(directory, what, blocking=False)
