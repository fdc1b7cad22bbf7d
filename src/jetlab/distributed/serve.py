"""The event loops of the asynchronous master and sub-masters (:mod:`jetlab.training.strategies.asynchronous`).

Both loops poll for messages without blocking (``Improbe``), answer each exchange at once by
the algorithm's rule, and watch their children (:mod:`jetlab.distributed.children`: a dead
child is dropped as soon as a FAILED message or mpiexec's SIGUSR1 says it died, after
``worker_timeout`` seconds of silence only when nothing does). STOP is only ever sent as the answer to a request, and
a child says DONE and waits for its answer before it leaves, so no message is left
unreceived at the end (and a child whose process is gone without a DONE has died).

Master: when every live child has reported epoch e, merge their numbers (weighted by items)
and close the epoch with :meth:`Engine.close_epoch` (validation, schedule, early stopping,
checkpoint, callbacks) **on the central weights as they were when the last of those reports
arrived** (a copy is kept at each report): when a dead child is dropped later, the epoch's
numbers still describe the end of that epoch, not the weights of whenever the drop happened.
Every reply carries the last closed epoch, and a child that has finished epoch e waits
(SYNC) until epoch e − 1 is closed, so no child trains more than one epoch ahead of the
epoch being closed. After the last epoch, or a stop, answer every request with STOP until
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

from jetlab.distributed.children import Children, check_silence, drop, release_waiting
from jetlab.distributed.supervise import WATCH
from jetlab.distributed.transport import Idle, Kind, Message
from jetlab.errors import JetlabError

__all__ = ["Children", "merge_reports", "serve_master", "serve_relay"]

log = logging.getLogger(__name__)

REQUESTS = (Kind.UPDATE, Kind.ELASTIC, Kind.PULL, Kind.PUSH)


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


def _handle_child(strategy, children: Children, message: Message, stopping, reports, snapshots=None) -> None:
    """One message from a child: answer an exchange, record a report (and, at the master, a
    copy of the central weights at that moment in ``snapshots``), a wait, a goodbye, a failure."""
    source, kind = message.source, message.kind
    wants_reply = kind in REQUESTS and (kind != Kind.PUSH or message.count) or kind == Kind.SYNC
    if source in children.live:
        children.heard(source)
    if kind == Kind.DONE:   # acknowledged: a child leaves only once its goodbye is received, so a
        children.done.add(source)   # process that is gone without one has died
        strategy.transport.send(source, Message(Kind.STOP, -1, info="goodbye"))
        return
    if source not in children.live or (stopping and wants_reply):
        if wants_reply:
            strategy.transport.send(source, Message(Kind.STOP, message.net, info=stopping or "dropped by its master"))
        return
    if kind in REQUESTS:
        net = strategy.nets[message.net]
        reply = strategy.rule.handle(net, message)
        net.exchanges += kind != Kind.PULL   # a round counts the updates (a GEM pull carries none)
        strategy.exchanges += 1
        if reply is not None:
            reply.epoch = strategy.closed
            strategy.transport.send(source, reply)
    elif kind == Kind.SYNC:
        children.waiting.append((source, message.epoch))
        release_waiting(strategy, children, stopping)
    elif kind == Kind.EPOCH:
        reports[message.epoch][source] = message.info
        if snapshots is not None:
            snapshots[message.epoch] = [net.vector() for net in strategy.nets]
    elif kind == Kind.FAILED:
        drop(strategy, children, source, f"failed: {message.info}")


def serve_master(strategy, engine, state, val, *, stop_after_epoch=None, on_best=None, on_epoch=None) -> None:
    """Rank 0's loop (module docstring); returns when the run is over and every child has left."""
    transport, settings = strategy.transport, engine.settings
    strategy.meet(transport.comm.bcast(strategy.start_message(state.start_epoch), root=0))
    children = Children(strategy.topology.children(0), strategy.timeout_s)
    log.info("%s: master of %d worker(s)%s, sync every %d update(s)", strategy.name, len(strategy.topology.workers),
             f" under {strategy.topology.masters} sub-masters" if strategy.topology.relays else "", strategy.tau)
    reports: dict[int, dict] = collections.defaultdict(dict)
    snapshots: dict[int, list] = {}
    epoch = state.start_epoch
    stopping = "epochs" if epoch > settings.epochs else None

    def handle(message):
        _handle_child(strategy, children, message, stopping, reports, snapshots)

    started, exchanges_before = time.perf_counter(), strategy.exchanges
    idle, checked = Idle(), 0.0
    try:
        while True:
            message = transport.poll()
            if message is not None:
                idle.busy()
                handle(message)
                if time.monotonic() - checked < 0.05:
                    continue
            checked = time.monotonic()
            check_silence(strategy, children, handle)
            while not stopping and _epoch_complete(children, reports.get(epoch, {})):
                merged = merge_reports(reports.pop(epoch).values())
                now_weights = [net.vector() for net in strategy.nets]
                for net, weights in zip(strategy.nets, snapshots.pop(epoch)):   # the epoch's end
                    net.assign(weights)
                seconds = time.perf_counter() - started
                engine._check_finite(merged["numbers"], epoch)
                extra = {"updates_per_s": merged["updates"] / seconds if seconds else 0.0,
                         "exchanges_per_s": (strategy.exchanges - exchanges_before) / seconds if seconds else 0.0,
                         "workers": merged["workers"]}
                stop = engine.close_epoch(state, epoch, merged["numbers"], seconds, merged["items"], val,
                                          on_best=on_best, on_epoch=on_epoch, extra=extra)
                for net, weights in zip(strategy.nets, now_weights):
                    net.assign(weights)
                strategy.closed = epoch
                if not stop and stop_after_epoch is not None and epoch >= stop_after_epoch and epoch < settings.epochs:
                    state.stop_reason, stop = "stop after epoch", True
                started, exchanges_before = time.perf_counter(), strategy.exchanges
                children.tick()
                epoch += 1
                if stop or epoch > settings.epochs:
                    stopping = state.stop_reason
                release_waiting(strategy, children, stopping)
            if stopping and not children.active:
                break
            if not children.live:
                reasons = "; ".join(lost["reason"] for lost in strategy.lost.values())
                raise JetlabError(f"every worker was lost ({reasons}); the run directory "
                                  "keeps the last epoch's checkpoint: rerun the same command with --resume")
            if message is None:
                idle.wait()
    except BaseException:
        _drain(strategy, children, "the master failed", 2 * strategy.timeout_s)
        raise
    if strategy.lost:
        log.warning("%s: training finished with %d of %d children; lost: %s", strategy.name, len(children.live),
                    len(children.last), "; ".join(f"rank {r} in epoch {lost['epoch']} after {lost['after_s']:.1f} s "
                                                  f"({lost['reason']})" for r, lost in sorted(strategy.lost.items())))
    transport.flush()


def _drain(strategy, children: Children, reason: str, seconds: float) -> None:
    """Answer STOP to whatever comes in until every active child has left (bounded)."""
    deadline = time.monotonic() + seconds
    release_waiting(strategy, children, reason)
    while children.active and time.monotonic() < deadline:
        message = strategy.transport.poll()
        if message is None:
            time.sleep(0.001)
        elif message.source in children.live:
            _handle_child(strategy, children, message, reason, collections.defaultdict(dict))


def serve_relay(strategy) -> None:
    """A sub-master's loop (module docstring)."""
    transport, link = strategy.transport, strategy.link
    start = strategy.meet(link.start())
    for net, weights, lr in zip(strategy.nets, start["weights"], start["lr"]):
        net.assign(weights)
        net.lr = lr
    epoch = int(start["epoch"])
    children = Children(strategy.topology.children(strategy.rank), strategy.timeout_s)
    reports: dict[int, dict] = collections.defaultdict(dict)
    stopping = None
    idle, checked = Idle(), 0.0

    def handle(message):
        _handle_child(strategy, children, message, stopping, reports)

    try:
        while children.active:
            message = transport.poll()
            if message is not None:
                idle.busy()
                if message.source == link.parent:
                    link.last_heard = time.monotonic()
                    stopping = _absorb(strategy, message) or stopping
                    release_waiting(strategy, children, stopping)
                else:
                    handle(message)
                    if message.kind == Kind.SYNC and children.waiting and not stopping:
                        _ask_up(strategy, max(e for _, e in children.waiting))
                    elif (not stopping and message.kind in REQUESTS and not
                          (net := strategy.nets[message.net]).in_flight and net.exchanges >= len(children.active)):
                        _send_up(strategy, net)
                if time.monotonic() - checked < 0.05:
                    continue
            checked = time.monotonic()
            check_silence(strategy, children, handle)
            while _epoch_complete(children, reports.get(epoch, {})):
                if not stopping:   # the epoch's updates reach the master before its report does
                    stopping = _flush_up(strategy)
                merged = merge_reports(reports.pop(epoch).values())
                link.send(Message(Kind.EPOCH, epoch=epoch, info=merged))
                epoch += 1
            if any(net.in_flight for net in strategy.nets):
                link.check_parent(link.last_heard, time.monotonic())
            if link.heartbeat_due() or WATCH.signals > strategy._alarms:
                strategy._alarms = WATCH.signals
                link.send(Message(Kind.HEARTBEAT))
            if message is None:
                idle.wait()
        if not stopping:   # the workers finished: hand the last partial rounds up
            stopping = _flush_up(strategy)
        for net in strategy.nets:   # every answer from above is received before leaving
            _wait_up(strategy, net)
        while strategy.asked > strategy.closed and not stopping:
            stopping = _absorb(strategy, link.receive())
    except BaseException:
        _drain(strategy, children, "its sub-master failed", 2 * strategy.timeout_s)
        raise
    strategy._left = True
    strategy.say_goodbye(Message(Kind.DONE, count=strategy.exchanges,
                                 info=None if children.live else "all its workers were lost"))
    transport.flush()


def _send_up(strategy, net) -> None:
    """A sub-master's round of network ``net`` goes to the master (every such message is answered)."""
    strategy.link.send(strategy.rule.outgoing(net))
    net.in_flight = True
    net.exchanges = 0


def _ask_up(strategy, epoch: int) -> None:
    """A sub-master's children wait for epoch ``epoch`` to be closed: ask the master (once)."""
    if epoch > strategy.closed and epoch > strategy.asked:
        strategy.link.send(Message(Kind.SYNC, -1, epoch=epoch))
        strategy.asked = epoch


def _absorb(strategy, reply: Message) -> str | None:
    """The master's answer to a sub-master's round or wait; the stop reason if it says STOP."""
    if reply.net >= 0:
        strategy.nets[reply.net].in_flight = False
    if reply.kind == Kind.STOP:
        strategy.asked = strategy.closed = max(strategy.asked, strategy.closed)
        return reply.info or "stopped by the master"
    strategy.closed = max(strategy.closed, reply.epoch)
    if reply.net >= 0:
        strategy.rule.absorb(strategy.nets[reply.net], reply)
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
