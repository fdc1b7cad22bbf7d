"""Surviving the death of one process of an MPI job (MPICH's hydra ``mpiexec``).

What hydra does when a rank dies (MPICH 5.0, checked on the development machine):

* plain ``mpiexec``: it kills every other rank at once (auto clean-up);
* ``mpiexec -disable-auto-cleanup``: it sends the survivors SIGUSR1 (whose default action
  ends a process) — but its proxy still SIGKILLs every rank when it reaps a rank that was
  *killed by a signal* (``kill -9``, the OOM killer, a segfault).

So :func:`run` (what ``python -m jetlab`` runs) makes every rank under hydra a small
**supervisor** (no torch, a few MB) that runs the real command as its child and waits for it:
hydra's direct child then always exits normally (128 + N for a child killed by signal N) and
the other ranks live on. The child takes over hydra's PMI connection, so its death still
tells hydra (SIGUSR1 to the others). ``JETLAB_SUPERVISE=0`` turns the supervisor off.

:data:`WATCH` handles SIGUSR1 in each training process: an asynchronous rank records it
(the master then drops the worker that went silent); a synchronous all-reduce rank cannot go
on without every rank: when its collective fails (gloo: "connection closed by peer") it stops
with a one-line error naming ``--resume``, and when the collective hangs instead, its
supervisor ends it after ten seconds with the same line.

Exit status: under an asynchronous strategy a worker's (or sub-master's) supervisor exits 0
whatever became of its child, after saying so on stderr: the master drops the lost rank and
goes on, and rank 0's status (0 when it finished training with the survivors, non-zero when
the run could not finish) is what ``mpiexec`` reports for the job.

``MPI_Finalize`` waits for every rank — for a dead one, forever. A process that knows a rank
died (SIGUSR1, or it dropped a silent child) therefore leaves without it, and the supervisor
ends a child that is still inside ``MPI_Finalize`` two seconds after a SIGUSR1, passing on the
exit status the child had announced.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable

__all__ = ["WATCH", "RankWatch", "run"]

log = logging.getLogger(__name__)

ENV_CHILD = "JETLAB_SUPERVISED"     # in the child: the fd of the pipe to its supervisor
ENV_SWITCH = "JETLAB_SUPERVISE"     # "0": no supervisor
#: seconds the supervisor grants a child after SIGUSR1: to leave MPI_Finalize, or (all-reduce) to fail
FINISH_GRACE_S = 2.0
COLLECTIVE_GRACE_S = 10.0

COLLECTIVE_ERROR = ("a process of this mpiexec job died; synchronous all-reduce cannot go on without it. The run "
                    "directory keeps the last epoch's checkpoint: rerun the same command with --resume "
                    "(or train with --strategy downpour|easgd|gem, which survive a lost worker)")


class RankWatch:
    """SIGUSR1 from hydra (a rank died) and the ranks this process dropped itself."""

    def __init__(self) -> None:
        self.fired = False
        self.signals = 0          # SIGUSR1s received so far (hydra sends one per rank that leaves)
        self.lost: set[int] = set()
        self.collective = False

    def install(self, *, collective: bool) -> None:
        """Handle SIGUSR1 from now on (main thread only, as Python requires)."""
        self.collective = collective
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR1, self._on_signal)
        _tell_supervisor("collective" if collective else "asynchronous")

    def _on_signal(self, signum, frame) -> None:
        if not self.fired and not self.collective:
            log.warning("rank %s: mpiexec reports that a process of this job died (SIGUSR1)",
                        os.environ.get("PMI_RANK", "?"))
        self.fired = True
        self.signals += 1

    @property
    def broken(self) -> bool:
        """True when some rank of the job is gone (so MPI_Finalize would wait forever)."""
        return self.fired or bool(self.lost)


WATCH = RankWatch()


def _tell_supervisor(line: str) -> None:
    fd = os.environ.get(ENV_CHILD)
    if fd:
        try:
            os.write(int(fd), (line + "\n").encode())
        except OSError:
            pass


def run(main: Callable[[], int]) -> int:
    """``main()`` under a supervisor where hydra launched us, else directly (module docstring)."""
    if os.environ.get("PMI_FD") and not os.environ.get(ENV_CHILD) and os.environ.get(ENV_SWITCH) != "0":
        return _supervise()
    try:
        code = _guarded(main)
    finally:
        if threading.current_thread() is threading.main_thread():
            # hydra signals every rank as each one leaves: not a reason to die during shutdown
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    _tell_supervisor(f"finishing {code}")
    if WATCH.broken:  # leave without MPI_Finalize, which would wait for the dead rank
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _guarded(main: Callable[[], int]) -> int:
    """``main()``; a collective's failure because a rank died becomes one line (exit status 1)."""
    try:
        return main()
    except Exception:
        if WATCH.collective:   # gloo may notice the lost peer before mpiexec's SIGUSR1 arrives
            deadline = time.monotonic() + 2.0
            while not WATCH.fired and time.monotonic() < deadline:
                time.sleep(0.05)
        if WATCH.fired and WATCH.collective:
            print(f"jetlab: error: {COLLECTIVE_ERROR}", file=sys.stderr)
        elif WATCH.broken:   # report, then leave without MPI_Finalize
            traceback.print_exc()
        else:
            raise
        return 1


def _supervise() -> int:
    """Run this command again as a child that owns hydra's PMI connection; wait for it."""
    pmi_fd = int(os.environ["PMI_FD"])
    reader, writer = os.pipe()
    child = subprocess.Popen([sys.executable, *sys.orig_argv[1:]], env={**os.environ, ENV_CHILD: str(writer)},
                             pass_fds=(pmi_fd, writer))
    os.close(pmi_fd)  # the child's death must close hydra's PMI socket
    os.close(writer)
    signals: list[float] = []
    signal.signal(signal.SIGUSR1, lambda *_: signals.append(time.monotonic()))
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # hydra signals the child's process group itself
    signal.signal(signal.SIGTERM, lambda number, _: child.send_signal(number))
    try:
        return _wait(child, reader, signals)
    finally:
        # hydra signals every rank as each one exits: a SIGUSR1 during interpreter shutdown
        # (when Python has put back the default action) would kill us
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def _wait(child: subprocess.Popen, reader: int, signals: list[float]) -> int:
    """Wait for the child; end it if it outstays a rank's death (module docstring)."""
    mode, announced, buffer = "", None, b""
    while True:
        try:
            code = child.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            pass
        while select.select([reader], [], [], 0)[0]:
            chunk = os.read(reader, 4096)
            if not chunk:
                break
            buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            word, _, rest = line.decode().partition(" ")
            if word == "finishing":
                announced = int(rest)
            else:
                mode = word
        if signals:
            waited = time.monotonic() - signals[0]
            if announced is not None and waited > FINISH_GRACE_S:
                child.kill()   # stuck in MPI_Finalize, waiting for the dead rank
                child.wait()
                return announced
            if mode == "collective" and waited > COLLECTIVE_GRACE_S:
                child.kill()
                child.wait()
                print(f"jetlab: error: {COLLECTIVE_ERROR}", file=sys.stderr)
                return 1
    rank = os.environ.get("PMI_RANK", "?")
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        print(f"jetlab: rank {rank}: the process was killed by {name}", file=sys.stderr)
        code = 128 - code
    if code and mode == "asynchronous" and rank not in ("0", "?"):
        # an asynchronous worker's end is the master's business: it goes on without the rank
        # and its own exit status (0: it finished with the survivors) is the job's
        print(f"jetlab: rank {rank}: lost (exit status {code}); rank 0 decides the job's exit status",
              file=sys.stderr)
        return 0
    return code
