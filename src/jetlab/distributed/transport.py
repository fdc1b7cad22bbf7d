"""Point-to-point messages of the asynchronous algorithms over MPI (mpi4py), and the worker's
link to its parent.

Every message is one MPI send of bytes: a 56-byte header (kind, network, epoch, count, payload
and info lengths as int64; one float64 value, e.g. the learning rate) + a float32 payload (a
flattened parameter vector, P values) + an optional pickled ``info`` (rare messages only:
epoch reports, errors, stop reasons). A message of a network with P parameters is therefore
4P + 56 bytes; the counters of :class:`MpiTransport` record what each rank sent and received.

Receiving never blocks: :meth:`MpiTransport.poll` asks ``Improbe`` whether a message has
arrived and only then receives it, so a master can watch all its children and notice that
one went silent (a pending receive from a dead rank would never complete, and MPI says
nothing about it). torch.distributed is not used here: its collectives cannot survive a
dead rank.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import logging
import os
import pickle
import struct
import time
from typing import Any

import numpy as np
import torch

from jetlab.errors import JetlabError

__all__ = ["Kind", "Message", "MpiTransport", "ParentLink", "decode", "encode"]

log = logging.getLogger(__name__)

TAG = 7717
_HEADER_INTS = 6
_HEADER_BYTES = 8 * _HEADER_INTS + 8


class Kind(enum.IntEnum):
    """What a message is (the algorithms' message flow is in :mod:`jetlab.distributed.rules`)."""

    UPDATE = 1      # Downpour, child -> parent: accumulated gradient sum; reply WEIGHTS
    ELASTIC = 2     # EASGD, child -> parent: the child's weights; reply ELASTIC (the elastic difference e)
    PULL = 3        # GEM, child -> parent: ask for the central weights; reply WEIGHTS
    PUSH = 4        # GEM, child -> parent: an update to add (count 1: reply WEIGHTS after adding)
    WEIGHTS = 5     # parent -> child: central weights; value: learning rate
    EPOCH = 6       # child -> parent: finished epoch `epoch` (info: numbers, items, seconds, updates)
    HEARTBEAT = 7   # child -> parent: still alive
    DONE = 8        # child -> parent: leaving (finished, or told to stop); reply STOP (net -1)
    FAILED = 9      # child -> parent: an error ended it (info: the message)
    STOP = 10       # parent -> child: stop training (info: reason)
    SYNC = 11       # child -> parent (net -1): answer once epoch `epoch` is closed; reply SYNC (epoch: the
    #                 last closed epoch, which every reply of a parent carries) or STOP


@dataclasses.dataclass
class Message:
    kind: int
    net: int = 0
    epoch: int = 0
    count: int = 0
    value: float = 0.0
    payload: torch.Tensor | None = None   # float32, 1-D
    info: Any = None
    source: int = -1


_HEADER = struct.Struct("<6qd")
_KINDS = {int(k): k for k in Kind}


def encode(message: Message) -> np.ndarray:
    """The bytes of ``message`` (uint8 array) as sent over MPI: one buffer, the payload copied once."""
    payload = None if message.payload is None else \
        message.payload.detach().to("cpu", torch.float32).contiguous().numpy().view(np.uint8)
    n_payload = 0 if payload is None else payload.size
    info = b"" if message.info is None else pickle.dumps(message.info, protocol=pickle.HIGHEST_PROTOCOL)
    data = np.empty(_HEADER_BYTES + n_payload + len(info), dtype=np.uint8)
    _HEADER.pack_into(data, 0, int(message.kind), message.net, message.epoch, message.count, n_payload, len(info),
                      float(message.value))
    if n_payload:
        data[_HEADER_BYTES:_HEADER_BYTES + n_payload] = payload
    if info:
        data[_HEADER_BYTES + n_payload:] = np.frombuffer(info, dtype=np.uint8)
    return data


def decode(data: np.ndarray, source: int = -1) -> Message:
    """Inverse of :func:`encode` (the payload tensor shares ``data``'s memory)."""
    kind, net, epoch, count, n_payload, n_info, value = _HEADER.unpack_from(data, 0)
    end = _HEADER_BYTES + n_payload
    payload = torch.from_numpy(data[_HEADER_BYTES:end].view(np.float32)) if n_payload else None
    info = pickle.loads(data[end:end + n_info].tobytes()) if n_info else None
    return Message(_KINDS[kind], net, epoch, count, value, payload, info, source)


class MpiTransport:
    """Nonblocking sends and polled receives on ``comm``, with per-kind message/byte counters."""

    def __init__(self, comm):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self._pending: list[tuple[int, Any, np.ndarray]] = []
        self.sent = collections.Counter()        # kind name -> messages
        self.sent_bytes = collections.Counter()
        self.received = collections.Counter()
        self.received_bytes = collections.Counter()

    def send(self, dest: int, message: Message) -> None:
        data = encode(message)
        request = self.comm.Isend([data, self.MPI.BYTE], dest=dest, tag=TAG)
        self._pending.append((dest, request, data))
        name = Kind(message.kind).name
        self.sent[name] += 1
        self.sent_bytes[name] += data.nbytes
        if len(self._pending) > 64:
            self._pending = [p for p in self._pending if not p[1].Test()]

    def poll(self, source: int | None = None) -> Message | None:
        """The next message that has arrived (from ``source``, or anyone), else None."""
        MPI = self.MPI
        status = MPI.Status()
        matched = self.comm.improbe(source=MPI.ANY_SOURCE if source is None else source, tag=TAG, status=status)
        if matched is None:
            return None
        data = np.empty(status.Get_count(MPI.BYTE), dtype=np.uint8)
        try:
            matched.Recv([data, MPI.BYTE])
        except MPI.Exception as exc:  # e.g. the sender died while its large message was being copied
            first = str(exc).strip().splitlines()[-1].split(": ")[-1] if str(exc).strip() else type(exc).__name__
            return Message(Kind.FAILED, info=f"its message could not be received ({first})",
                           source=status.Get_source())
        message = decode(data, status.Get_source())
        name = Kind(message.kind).name
        self.received[name] += 1
        self.received_bytes[name] += data.nbytes
        return message

    def forget(self, dest: int) -> None:
        """Stop tracking sends to a rank that is gone (they will never complete)."""
        self._pending = [p for p in self._pending if p[0] != dest]

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) until the messages sent to live ranks have left."""
        deadline = time.monotonic() + timeout_s
        while self._pending and time.monotonic() < deadline:
            self._pending = [p for p in self._pending if not p[1].Test()]
            if self._pending:
                time.sleep(0.001)

    def counters(self) -> dict[str, dict[str, int]]:
        return {"sent": dict(self.sent), "sent_bytes": dict(self.sent_bytes),
                "received": dict(self.received), "received_bytes": dict(self.received_bytes)}


class Idle:
    """Waiting in a polling loop without a millisecond back-off on the hot path, and without
    burning a core through a long wait.

    For the first ``spin_s`` (1 ms) after the last message it polls back to back, after the
    first 50 µs yielding the core between polls (an answer usually takes tens of µs, and a
    rank sharing its core lets the others compute); then it sleeps 20 µs, doubling up to 200 µs (a request that arrives
    then waits at most that long); once it has been idle for ``long_s`` (0.1 s: the master
    validating, a worker waiting for a slow one) the sleeps grow to 1 ms."""

    def __init__(self, spin_s: float = 1e-3, short_s: float = 2e-4, long_s: float = 0.1, longest_s: float = 1e-3):
        self.spin_s, self.short_s, self.long_s, self.longest_s = spin_s, short_s, long_s, longest_s
        self.since: float | None = None
        self.pause = 0.0

    def busy(self) -> None:
        self.since = None
        self.pause = 0.0

    def wait(self) -> None:
        now = time.perf_counter()
        if self.since is None:
            self.since = now
        idle = now - self.since
        if idle < self.spin_s:
            if idle > 5e-5:   # a fast answer is caught without giving the core away
                os.sched_yield()
            return
        cap = self.short_s if idle < self.long_s else self.longest_s
        self.pause = min(cap, self.pause * 2 if self.pause else 2e-5)
        time.sleep(self.pause)


class ParentLink:
    """A child's (worker's or sub-master's) connection to its parent over MPI.

    ``request`` sends and waits for the parent's reply. Waiting has no time limit while
    nothing is known to be wrong (the master may be busy validating); once mpiexec has
    signalled that some rank died (``watch.fired``), or after 10 x ``timeout_s`` of silence,
    a parent silent for ``timeout_s`` is taken as dead: :class:`JetlabError`.
    """

    def __init__(self, transport: MpiTransport, parent: int, timeout_s: float, watch=None):
        self.transport = transport
        self.parent = parent
        self.timeout_s = timeout_s
        self.watch = watch
        self.last_sent = time.monotonic()
        self.last_heard = time.monotonic()

    def start(self) -> dict:
        """The master's start message (central weights, learning rates, first epoch)."""
        return self.transport.comm.bcast(None, root=0)

    def send(self, message: Message) -> None:
        self.transport.send(self.parent, message)
        self.last_sent = time.monotonic()

    def request(self, message: Message) -> Message:
        self.send(message)
        return self.receive()

    def receive(self) -> Message:
        idle = Idle()
        started = time.monotonic()
        while True:
            reply = self.transport.poll(self.parent)
            now = time.monotonic()
            if reply is not None:
                self.last_heard = now
                return reply
            self.check_parent(max(started, self.last_heard), now)
            idle.wait()

    def check_parent(self, since: float, now: float) -> None:
        silent = now - since
        alarmed = self.watch is not None and self.watch.fired
        if (alarmed and silent > self.timeout_s) or silent > 10 * self.timeout_s:
            raise JetlabError(f"rank {self.transport.rank}: no word from its master (rank {self.parent}) for "
                              f"{silent:.0f} s: it is gone; the run directory keeps the master's last checkpoint, "
                              "rerun the same command with --resume")

    def heartbeat_due(self) -> bool:
        return time.monotonic() - self.last_sent > self.timeout_s / 4
