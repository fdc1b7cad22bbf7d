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
dot-files). The lock belongs to the open file description, so it is released when the block
ends, when the process exits or is killed (even ``kill -9``): there is nothing stale to clean
up. A directory the lock itself created and nobody wrote into is removed again, so a run that
fails before writing anything leaves no trace. The pid written into the file is only for the messages. Locks are re-entrant neither
across threads nor within one process: take each once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path
from typing import Iterator

from jetlab.errors import InputError, JetlabError

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
    from jetlab.utils.atomic import write_error

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
    import fcntl

    directory = Path(directory)
    created = not directory.exists()
    fd = _open_lock_file(directory, what)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = lock_holder(directory)
            by = f"pid {holder}" if holder else "another process"
            if not blocking:
                raise JetlabError(
                    f"{directory}: this {what} is in use by another jetlab process ({by}); "
                    f"wait for it to finish or choose another {what}"
                ) from None
            print(f"jetlab: waiting for {what} {directory} (locked by {by})", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        _record_pid(fd, directory)
        yield directory
    finally:
        if created and [p.name for p in directory.iterdir()] == [LOCK_NAME]:  # nothing written: leave no trace
            (directory / LOCK_NAME).unlink()
            directory.rmdir()
        os.close(fd)  # releases the lock


def cache_lock(directory, what: str = "cache directory"):
    """Blocking exclusive lock on ``directory`` (a context manager; waits for the holder)."""
    return _locked(directory, what, blocking=True)


def directory_lock(directory, what: str = "directory"):
    """Non-blocking exclusive lock on ``directory``; JetlabError naming the holder's pid if taken."""
    return _locked(directory, what, blocking=False)
