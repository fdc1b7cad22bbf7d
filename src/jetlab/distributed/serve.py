"""The event loops of the asynchronous master and sub-masters (:mod:`jetlab.distributed.asynchronous`).

Both loops poll for messages without blocking (``Improbe``), answer each exchange at once by
the algorithm's rule, and watch their children: a child that has sent nothing for
``worker_timeout`` seconds is dropped (the time the loop itself was busy, e.g. validating,
does not count against the children). STOP is only ever sent as the answer to a request, and
a child says DONE before it leaves, so no message is left unreceived at the end.

Master: when every live child has reported epoch e, merge their numbers (weighted by items)
and close the epoch with :meth:`Engine.close_epoch` (validation, schedule, early stopping,
checkpoint, callbacks). After the last epoch, or a stop, answer every request with STOP until
every live child has said DONE.

Sub-master: answer its workers from its own copy of the weights; after each round of exchanges
of a network (one per live worker) send the sum up to the master (one request in flight per
network) and absorb the answer; when its workers have all finished an epoch, send the partial
rounds up, then the merged epoch report (so the master has the epoch's updates before it
closes the epoch); pass STOP down; say DONE when its workers are done.
"""

from __future__ import annotations

import collections
import logging
import time

from jetlab.distributed.transport import Idle, Kind, Message
from jetlab.errors import JetlabError

__all__ = ["Children", "merge_reports", "serve_master", "serve_relay"]

log = logging.getLogger(__name__)

REQUESTS = (Kind.UPDATE, Kind.ELASTIC, Kind.PULL, Kind.PUSH)


class Children:
    """Who of a master's children is still there, and when each was last heard from."""

    def __init__(self, ranks, timeout_s: float):
        now = time.monotonic()
        self.live = set(ranks)
        self.done: set[int] = set()
        self.last = {r: now for r in ranks}
        self.timeout_s = timeout_s
        self._loop = now

    @property
    def active(self) -> set[int]:
        return self.live - self.done

    def heard(self, rank: int) -> None:
        self.last[rank] = time.monotonic()

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


def merge_reports(reports) -> dict:
    """Epoch reports of several children -> one: numbers weighted by items; items, updates summed."""
    reports = list(reports)
    items = sum(r["items"] for r in reports)
    keys = sorted({k for r in reports for k in r["numbers"]})
    numbers = {k: sum(r["numbers"].get(k, 0.0) * r["items"] for r in reports) / max(items, 1) for k in keys}
    return {"numbers": numbers, "items": items, "updates": sum(r["updates"] for r in reports),
            "seconds": max((r["seconds"] for r in reports), default=0.0),
            "workers": sum(r.get("workers", 1) for r in reports)}


def _epoch_complete(children: Children, got: dict) -> bool:
    return bool(got) and all(c in got for c in children.active)


def _drop(strategy, children: Children, rank: int, why: str) -> None:
    children.live.discard(rank)
    strategy.transport.forget(rank)
    strategy.note_lost(rank, why)
    log.warning("lost rank %d (a %s): it %s; training goes on with %d of %d", rank,
                "sub-master" if strategy.topology.role(rank) == "relay" else "worker", why, len(children.live),
                len(children.last))


def _handle_child(strategy, children: Children, message: Message, stopping, reports) -> None:
    """One message from a child: answer an exchange, record a report, a goodbye, a failure."""
    source, kind = message.source, message.kind
    wants_reply = kind in REQUESTS and (kind != Kind.PUSH or message.count)
    if source in children.live:
        children.heard(source)
    if source not in children.live or (stopping and kind in REQUESTS):
        if wants_reply:
            strategy.transport.send(source, Message(Kind.STOP, message.net, info=stopping or "dropped by its master"))
        return
    if kind in REQUESTS:
        net = strategy.nets[message.net]
        reply = strategy.rule.handle(net, message)
        net.exchanges += kind != Kind.PULL   # a round counts the updates (a GEM pull carries none)
        strategy.exchanges += 1
        if reply is not None:
            strategy.transport.send(source, reply)
    elif kind == Kind.EPOCH:
        reports[message.epoch][source] = message.info
    elif kind == Kind.DONE:
        children.done.add(source)
    elif kind == Kind.FAILED:
        _drop(strategy, children, source, f"failed: {message.info}")


def _check_silence(strategy, children: Children) -> None:
    children.tick()
    for rank, seconds in children.silent():
        _drop(strategy, children, rank, f"sent nothing for {seconds:.0f} s (--worker-timeout {children.timeout_s:g})")


def serve_master(strategy, engine, state, val, *, stop_after_epoch=None, on_best=None, on_epoch=None) -> None:
    """Rank 0's loop (module docstring); returns when the run is over and every child has left."""
    transport, settings = strategy.transport, engine.settings
    children = Children(strategy.topology.children(0), strategy.timeout_s)
    transport.comm.bcast(strategy.start_message(state.start_epoch), root=0)
    log.info("%s: master of %d worker(s)%s, sync every %d update(s)", strategy.name, len(strategy.topology.workers),
             f" under {strategy.topology.masters} sub-masters" if strategy.topology.relays else "", strategy.tau)
    reports: dict[int, dict] = collections.defaultdict(dict)
    epoch = state.start_epoch
    stopping = "epochs" if epoch > settings.epochs else None
    started, exchanges_before = time.perf_counter(), strategy.exchanges
    idle, checked = Idle(), 0.0
    try:
        while True:
            message = transport.poll()
            if message is not None:
                idle.busy()
                _handle_child(strategy, children, message, stopping, reports)
                if time.monotonic() - checked < 0.05:
                    continue
            checked = time.monotonic()
            _check_silence(strategy, children)
            while not stopping and _epoch_complete(children, reports.get(epoch, {})):
                merged = merge_reports(reports.pop(epoch).values())
                seconds = time.perf_counter() - started
                engine._check_finite(merged["numbers"], epoch)
                extra = {"updates_per_s": merged["updates"] / seconds if seconds else 0.0,
                         "exchanges_per_s": (strategy.exchanges - exchanges_before) / seconds if seconds else 0.0,
                         "workers": merged["workers"]}
                stop = engine.close_epoch(state, epoch, merged["numbers"], seconds, merged["items"], val,
                                          on_best=on_best, on_epoch=on_epoch, extra=extra)
                if not stop and stop_after_epoch is not None and epoch >= stop_after_epoch and epoch < settings.epochs:
                    state.stop_reason, stop = "stop after epoch", True
                started, exchanges_before = time.perf_counter(), strategy.exchanges
                children.tick()
                epoch += 1
                if stop or epoch > settings.epochs:
                    stopping = state.stop_reason
            if stopping and not children.active:
                break
            if not children.live:
                raise JetlabError(f"every worker was lost ({'; '.join(strategy.lost.values())}); the run directory "
                                  "keeps the last epoch's checkpoint: rerun the same command with --resume")
            if message is None:
                idle.wait()
    except BaseException:
        _drain(strategy, children, "the master failed", 2 * strategy.timeout_s)
        raise
    transport.flush()


def _drain(strategy, children: Children, reason: str, seconds: float) -> None:
    """Answer STOP to whatever comes in until every active child has left (bounded)."""
    deadline = time.monotonic() + seconds
    while children.active and time.monotonic() < deadline:
        message = strategy.transport.poll()
        if message is None:
            time.sleep(0.001)
        elif message.source in children.live:
            _handle_child(strategy, children, message, reason, collections.defaultdict(dict))


def serve_relay(strategy) -> None:
    """A sub-master's loop (module docstring)."""
    transport, link = strategy.transport, strategy.link
    start = link.start()
    for net, weights, lr in zip(strategy.nets, start["weights"], start["lr"]):
        net.assign(weights)
        net.lr = lr
    epoch = int(start["epoch"])
    children = Children(strategy.topology.children(strategy.rank), strategy.timeout_s)
    reports: dict[int, dict] = collections.defaultdict(dict)
    stopping = None
    idle, checked = Idle(), 0.0
    try:
        while children.active:
            message = transport.poll()
            if message is not None:
                idle.busy()
                if message.source == link.parent:
                    link.last_heard = time.monotonic()
                    stopping = _absorb(strategy, message) or stopping
                else:
                    _handle_child(strategy, children, message, stopping, reports)
                    net = strategy.nets[message.net]
                    if (not stopping and message.kind in REQUESTS and not net.in_flight
                            and net.exchanges >= len(children.active)):
                        _send_up(strategy, net)
                if time.monotonic() - checked < 0.05:
                    continue
            checked = time.monotonic()
            _check_silence(strategy, children)
            while _epoch_complete(children, reports.get(epoch, {})):
                if not stopping:   # the epoch's updates reach the master before its report does
                    stopping = _flush_up(strategy)
                merged = merge_reports(reports.pop(epoch).values())
                link.send(Message(Kind.EPOCH, epoch=epoch, info=merged))
                epoch += 1
            if any(net.in_flight for net in strategy.nets):
                link.check_parent(link.last_heard, time.monotonic())
            if link.heartbeat_due():
                link.send(Message(Kind.HEARTBEAT))
            if message is None:
                idle.wait()
        if not stopping:   # the workers finished: hand the last partial rounds up
            stopping = _flush_up(strategy)
        for net in strategy.nets:   # every answer from above is received before leaving
            _wait_up(strategy, net)
    except BaseException:
        _drain(strategy, children, "its sub-master failed", 2 * strategy.timeout_s)
        raise
    strategy._left = True
    link.send(Message(Kind.DONE, count=strategy.exchanges,
                      info=None if children.live else "all its workers were lost"))
    transport.flush()


def _send_up(strategy, net) -> None:
    """A sub-master's round of network ``net`` goes to the master (every such message is answered)."""
    strategy.link.send(strategy.rule.outgoing(net))
    net.in_flight = True
    net.exchanges = 0


def _absorb(strategy, reply: Message) -> str | None:
    """The master's answer to a sub-master's round; the stop reason if it says STOP."""
    net = strategy.nets[reply.net]
    net.in_flight = False
    if reply.kind == Kind.STOP:
        return reply.info or "stopped by the master"
    strategy.rule.absorb(net, reply)
    return None


def _flush_up(strategy) -> str | None:
    """Send every network's partial round up (after the answer to the one in flight)."""
    stopping = None
    for net in strategy.nets:
        if net.exchanges:
            stopping = _wait_up(strategy, net) or stopping
            if not stopping:
                _send_up(strategy, net)
    return stopping


def _wait_up(strategy, net) -> str | None:
    stopping = None
    while net.in_flight:
        stopping = _absorb(strategy, strategy.link.receive()) or stopping
    return stopping
