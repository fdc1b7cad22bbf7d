"""Who of a master's children is still there: the liveness half of the master and sub-master
loops (:mod:`jetlab.distributed.serve`).

A child is dropped as soon as something says it died: a FAILED message (handled by the
loop), or mpiexec's SIGUSR1 (hydra under ``-disable-auto-cleanup`` signals every survivor
when a rank dies; the signal does not say which): :func:`check_silence` then receives what
is still queued and drops each child on this host whose process is gone, and each child
elsewhere not heard from since the signal within ``max(2 s, 4 × its longest silence so
far)`` (live workers answer the signal with a heartbeat at their next step). When nothing
says so, a child silent for ``worker_timeout`` seconds is dropped (time the loop itself was
busy does not count). Children waiting for an epoch to close (SYNC) are answered by
:func:`release_waiting` and sent a heartbeat every quarter of the time-out meanwhile.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from jetlab.distributed.supervise import WATCH
from jetlab.distributed.transport import Kind, Message

__all__ = ["Children", "check_silence", "drop", "release_waiting"]

#: seconds after mpiexec's notice of a death during which the children on this host are looked up
ALARM_WINDOW_S = 5.0

log = logging.getLogger(__name__)


class Children:
    """Who of a master's children is still there, and when each was last heard from."""

    def __init__(self, ranks, timeout_s: float):
        now = time.monotonic()
        self.live = set(ranks)
        self.done: set[int] = set()
        self.last = {r: now for r in ranks}
        self.timeout_s = timeout_s
        self._loop = now
        self.gap: dict[int, float] = {}   # longest silence of each child between two of its messages
        self.signals = WATCH.signals      # mpiexec's death notices (SIGUSR1) already looked into
        self.alarm_at: float | None = None
        self.waiting: list[tuple[int, int]] = []   # (child, epoch): SYNC requests not yet answered
        self.pinged: dict[int, float] = {}           # when a waiting child last got a heartbeat

    @property
    def active(self) -> set[int]:
        return self.live - self.done

    def heard(self, rank: int) -> None:
        now = time.monotonic()
        if rank in self.gap or now - self.last[rank] < self.timeout_s / 4:
            self.gap[rank] = max(self.gap.get(rank, 0.0), now - self.last[rank])
        else:
            self.gap[rank] = 0.0   # the first message (after the start-up) sets no gap
        self.last[rank] = now

    def tick(self) -> None:
        """Called every loop: time the loop spent busy elsewhere is not the children's silence."""
        now = time.monotonic()
        busy = now - self._loop
        if busy > 0.5:
            for rank in self.last:
                self.last[rank] += busy
        self._loop = now

    def silent(self) -> list[tuple[int, float]]:
        now = time.monotonic()
        return [(r, now - self.last[r]) for r in sorted(self.active) if now - self.last[r] > self.timeout_s]


def drop(strategy, children: Children, rank: int, why: str) -> None:
    children.live.discard(rank)
    children.waiting = [(r, e) for r, e in children.waiting if r != rank]
    strategy.transport.forget(rank)
    strategy.note_lost(rank, why)
    log.warning("lost rank %d (a %s): it %s; training goes on with %d of %d", rank,
                "sub-master" if strategy.topology.role(rank) == "relay" else "worker", why, len(children.live),
                len(children.last))


def release_waiting(strategy, children: Children, stopping) -> None:
    """Answer the SYNC requests whose epoch is closed (all of them with STOP when stopping)."""
    still = []
    for rank, epoch in children.waiting:
        if stopping:
            strategy.transport.send(rank, Message(Kind.STOP, -1, info=stopping))
        elif strategy.closed >= epoch:
            strategy.transport.send(rank, Message(Kind.SYNC, -1, epoch=strategy.closed))
        else:
            still.append((rank, epoch))
    children.waiting = still


def check_silence(strategy, children: Children, handle) -> None:
    """Drop the children known to be dead (module docstring); ``handle(message)`` takes what a
    child sent before it died."""
    children.tick()
    now = time.monotonic()
    if WATCH.signals > children.signals:   # mpiexec: some rank of the job died
        children.signals, children.alarm_at = WATCH.signals, now
    # hydra learns of a death when the process's sockets close, which can be a moment before
    # the process is gone from the process table: look again for a few seconds
    if children.alarm_at is not None and now - children.alarm_at < ALARM_WINDOW_S:
        for rank in sorted(children.active):
            if _process_gone(strategy, rank):
                while (message := strategy.transport.poll(rank)) is not None:   # its last words first
                    handle(message)
                if rank in children.active:
                    drop(strategy, children, rank, "died (mpiexec reported a death, SIGUSR1; its process is gone)")
    if children.alarm_at is not None:   # children on other hosts: silent since the notice
        for rank in sorted(r for r in children.active if not _same_host(strategy, r)):
            grace = min(children.timeout_s, max(2.0, 4 * children.gap.get(rank, 0.0)))
            if children.last[rank] < children.alarm_at and now - children.alarm_at > grace:
                drop(strategy, children, rank, f"died (mpiexec reported a death, SIGUSR1, and it has been silent "
                                                f"since, {now - children.alarm_at:.1f} s)")
    for rank, seconds in children.silent():
        drop(strategy, children, rank, f"sent nothing for {seconds:.0f} s (--worker-timeout {children.timeout_s:g})")
    for rank in {r for r, _ in children.waiting}:   # a waiting child must not take its parent for dead
        if now - children.pinged.get(rank, 0.0) > children.timeout_s / 4:
            children.pinged[rank] = now
            strategy.transport.send(rank, Message(Kind.HEARTBEAT, -1))


def _same_host(strategy, rank: int) -> bool:
    return rank < len(strategy.peers) and strategy.peers[rank][0] == socket.gethostname()


def _process_gone(strategy, rank: int) -> bool:
    """True when ``rank``'s training process ran on this host and has ended (or is a zombie)."""
    if not _same_host(strategy, rank):
        return False
    pid = strategy.peers[rank][1]
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            pass
        return False
