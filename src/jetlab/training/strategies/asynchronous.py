"""Asynchronous master/worker training over MPI: Downpour SGD, Elastic Averaging SGD and
Gradient Energy Matching, as :class:`~jetlab.training.strategies.base.UpdateStrategy` objects that
the one training engine runs (taggers and generators alike), after NNLO (github vlimant/NNLO).

Launch (MPICH)::

    mpiexec -disable-auto-cleanup -n K python -m jetlab tagger train --strategy downpour|easgd|gem ...

Rank 0 is the master: it holds the central weights and one optimizer per network, never
trains, answers the workers (:mod:`jetlab.distributed.serve`), and does the validation,
schedule, early stopping, checkpoints and metrics through the engine's
:meth:`~jetlab.training.engine.Engine.close_epoch`. Ranks 1…K−1 are workers on disjoint
shards of the training data (worker j of W takes entries j, j+W, … of each global batch); with
``--masters M`` ≥ 2, ranks 1…M are sub-masters (:mod:`jetlab.distributed.topology`). The
update rules are in :mod:`jetlab.distributed.rules`.

**Epochs.** A worker reports each epoch it finished (its mean training numbers and item
count); the master closes epoch e when every live worker has reported it, on the central
weights as they are at that moment (faster workers may already be in epoch e + 1). A worker
that died does not hold the epochs up: its shard is not trained from then on.

**Failures.** A worker silent for ``--worker-timeout`` seconds (it sends a heartbeat when it
has sent nothing for a quarter of that) is dropped, with a warning, and training goes on with
the others; a worker that raises tells its master and leaves. If every worker is lost the
master stops with an error; the run directory keeps the last checkpoint.

**Resume.** The checkpoint is the master's: central weights, optimizers, schedulers,
history. ``--resume`` (after the whole job was killed, with any number of workers) starts
every worker from the master's weights and learning rates; a worker's own state (GEM's
momentum proxy, EASGD's local optimizer, Downpour's partial sum) starts afresh.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from typing import Any

import torch

from jetlab.distributed.env import DistContext
from jetlab.distributed.rules import ALGORITHMS, CenterNet, WorkerNet
from jetlab.distributed.serve import serve_master, serve_relay
from jetlab.distributed.supervise import WATCH
from jetlab.distributed.topology import Topology
from jetlab.distributed.transport import Kind, Message, MpiTransport, ParentLink
from jetlab.errors import JetlabError
from jetlab.training.strategies.base import UpdateStrategy, optimizer_parameters

__all__ = ["ASYNC_CLASSES", "AsyncStrategy", "DownpourSGD", "ElasticAveragingSGD", "GradientEnergyMatching"]

log = logging.getLogger(__name__)

#: EASGD's β: the elastic rate is α = β/p for a master with p children
EASGD_BETA = 0.9


class AsyncStrategy(UpdateStrategy):
    """One rank's part in an asynchronous algorithm (``algorithm`` names the rule)."""

    algorithm = "downpour"

    def __init__(self, context: DistContext | None = None, sync_every: int = 1, masters: int = 1,
                 elastic_alpha: float | None = None, gem_kappa: float = 2.0, momentum: float = 0.9,
                 worker_timeout: float = 60.0):
        super().__init__()
        self.world = context or DistContext()
        self.topology = Topology(self.world.world_size, masters)
        self.rank = self.world.rank
        self.position = self.topology.role(self.rank)   # master, relay or worker
        self.role = "worker" if self.position == "worker" else "master"
        self.trains = self.role == "worker"
        self.rule = ALGORITHMS[self.algorithm]()
        self.tau = 1 if self.algorithm == "gem" else int(sync_every)
        self.elastic_alpha = elastic_alpha
        self.gem_kappa = float(gem_kappa)
        self.momentum = float(momentum)
        self.timeout_s = float(worker_timeout)
        self.link = None          # worker / relay: to the parent (a test may set a fake one)
        self.transport = None     # MPI messages of this rank
        self.nets: list = []
        self.index: dict[str, int] = {}
        self.lost: dict[int, dict] = {}
        self.exchanges = 0
        self.closed = 0           # the last epoch the master has closed (as far as this rank knows)
        self.asked = 0            # a sub-master: the epoch it asked the master to close (SYNC)
        self.peers: list = []     # (host, pid) of every rank's training process
        self.started = time.monotonic()
        self._alarms = 0          # SIGUSR1s this worker has answered with a heartbeat
        self.stats: dict[str, Any] = {}
        self._left = False
        self._reported = 0

    # ------------------------------------------------------------------ contexts
    def engine_context(self, context: DistContext) -> DistContext:
        return DistContext(rank=self.rank, world_size=1, local_rank=context.local_rank, launcher=context.launcher,
                           device=context.device)

    def batch_context(self, context: DistContext, *, training: bool) -> DistContext:
        if not training:
            return DistContext(device=context.device)
        workers = self.topology.workers
        index = self.topology.worker_index(self.rank) if self.position == "worker" else 0
        return DistContext(rank=index, world_size=len(workers), device=context.device)

    # ------------------------------------------------------------------ set-up
    def setup(self, modules, optimizers, context) -> None:
        super().setup(modules, optimizers, context)
        self.index = {name: i for i, name in enumerate(optimizers)}
        if self.position == "worker":
            self.nets = [WorkerNet(i, optimizer_parameters(opt), opt, self.momentum, self.gem_kappa)
                         for i, opt in enumerate(optimizers.values())]
            if self.algorithm == "easgd":   # rules.py: the center moves at one worker's pace
                siblings = len(self.topology.children(self.topology.parent(self.rank)))
                for net in self.nets:
                    net.lr_scale = float(siblings)
        else:
            children = len(self.topology.children(self.rank))
            alpha = self.elastic_alpha if self.elastic_alpha is not None else EASGD_BETA / children
            self.nets = [CenterNet(i, optimizer_parameters(opt), opt, alpha, relay=self.position == "relay")
                         for i, opt in enumerate(optimizers.values())]
            if self.position == "master":
                _warn_about_buffers(modules)
        if self.world.comm is not None and self.transport is None:
            self.transport = MpiTransport(self.world.comm)
        if self.position != "master" and self.link is None:
            if self.transport is None:
                raise JetlabError(f"--strategy {self.name} needs mpiexec (a master and workers)")
            self.link = ParentLink(self.transport, self.topology.parent(self.rank), self.timeout_s, WATCH)

    def start_message(self, start_epoch: int) -> dict:
        """What every rank starts from: the central weights and learning rates, the first epoch."""
        return {"weights": [net.vector() for net in self.nets], "lr": [float(net.optimizer.param_groups[0]["lr"])
                                                                      for net in self.nets],
                "epoch": int(start_epoch)}

    # ------------------------------------------------------------------ worker
    def meet(self, start: dict) -> dict:
        """After the start message: every rank learns where every other rank's process runs
        (so a master can tell a dead child from a slow one when mpiexec reports a death)."""
        if self.transport is not None:
            self.peers = self.transport.comm.allgather((socket.gethostname(), os.getpid()))
        self.closed = int(start["epoch"]) - 1
        self.started = time.monotonic()
        return start

    def join(self) -> int:
        """Take the master's weights and learning rates; the first epoch to train."""
        start = self.meet(self.link.start())
        for net, weights, lr in zip(self.nets, start["weights"], start["lr"]):
            net.start(weights, lr)
        return int(start["epoch"])

    def loss_weight(self, n_local: int, n_global: int) -> float:
        return 1.0   # each worker steps on its own batch mean

    def step(self, name: str) -> None:
        if self.stop_requested:
            return
        reply = self.rule.worker_step(self.nets[self.index[name]], self.link, self.tau)
        self.steps += 1
        if reply is not None:
            self.exchanges += 1
            self._reply(reply)
        if reply is None and self.link.heartbeat_due() or WATCH.signals > self._alarms:
            # mpiexec reported a death (SIGUSR1): tell the master at once that it is not this rank
            self._alarms = WATCH.signals
            self.link.send(Message(Kind.HEARTBEAT))

    def _reply(self, reply: Message) -> None:
        """Every answer from the master carries the last epoch it closed; STOP ends training."""
        if reply.kind == Kind.STOP:
            if not self.stop_requested:
                log.info("rank %d: the master says stop (%s)", self.rank, reply.info)
            self.stop_requested = True
        else:
            self.closed = max(self.closed, reply.epoch)

    def report_epoch(self, epoch: int, numbers: dict[str, float], items: int, seconds: float) -> None:
        """End of a worker's epoch: send what it still holds (Downpour's partial sums), then the
        report; then wait, if need be, until the master has closed the epoch before this one,
        so that no worker trains more than one epoch ahead of the epoch the master closes."""
        bad = {k: v for k, v in numbers.items() if not math.isfinite(v)}
        if bad:
            raise JetlabError(f"rank {self.rank}: training diverged in epoch {epoch} ({bad}); "
                              "lower the learning rate (--lr)")
        for net in self.nets:
            reply = self.rule.flush(net, self.link)
            if reply is not None:
                self.exchanges += 1
                self._reply(reply)
        if self.stop_requested:
            return
        self.link.send(Message(Kind.EPOCH, epoch=epoch, info={"numbers": numbers, "items": items, "seconds": seconds,
                                                               "updates": self.steps - self._reported}))
        self._reported = self.steps
        if self.closed < epoch - 1:
            reply = self.link.request(Message(Kind.SYNC, net=-1, epoch=epoch - 1))
            while reply.kind == Kind.HEARTBEAT:   # the master says it is alive while this worker waits
                reply = self.link.receive()
            self._reply(reply)

    def finish(self) -> None:
        if self.position == "worker" and not self._left:
            self._left = True
            self.say_goodbye(Message(Kind.DONE, count=self.steps))
        if self.transport is not None:
            self.transport.flush()

    def say_goodbye(self, done: Message) -> None:
        """DONE to the parent, and wait for its answer (a worker or sub-master leaves only once
        its parent has received everything it sent, so a process gone without one has died)."""
        reply = self.link.request(done)
        while reply.kind != Kind.STOP:   # e.g. a heartbeat sent while it waited for an epoch
            reply = self.link.receive()

    def abort(self, error: BaseException) -> None:
        if self.position != "master" and self.link is not None and not self._left:
            self._left = True
            try:
                self.link.send(Message(Kind.FAILED, info=f"{type(error).__name__}: {error}"))
                if self.transport is not None:
                    self.transport.flush(2.0)
            except Exception:  # noqa: BLE001 - the original error matters, not this one
                pass

    # ------------------------------------------------------------------ master, sub-master
    def serve(self, engine, state, val, *, stop_after_epoch=None, on_best=None, on_epoch=None) -> None:
        if self.position == "master":
            serve_master(self, engine, state, val, stop_after_epoch=stop_after_epoch, on_best=on_best,
                         on_epoch=on_epoch)
        else:
            serve_relay(self)

    def note_lost(self, rank: int, why: str) -> None:
        """Record a lost child: why, when (seconds into the run) and the epoch being closed."""
        self.lost[rank] = {"reason": why, "after_s": round(time.monotonic() - self.started, 3),
                           "epoch": self.closed + 1, "unix_time": time.time()}
        WATCH.lost.add(rank)

    # ------------------------------------------------------------------ bookkeeping
    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sync_every": self.tau, "masters": self.topology.masters,
                               "workers": len(self.topology.workers),
                               "workers_lost": {str(r): lost for r, lost in sorted(self.lost.items())},
                               "exchanges": self.exchanges, **self.stats}
        if self.transport is not None:
            out["messages"] = self.transport.counters()
        return {"distributed": out}

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "steps": self.steps, "exchanges": self.exchanges}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.exchanges = int(state.get("exchanges", 0))


class DownpourSGD(AsyncStrategy):
    """Downpour SGD (Dean et al. 2012): workers send summed gradients, the master's optimizer applies them."""

    name = algorithm = "downpour"


class ElasticAveragingSGD(AsyncStrategy):
    """Elastic Averaging SGD (Zhang et al., arXiv:1412.6651): an elastic pull between workers and center."""

    name = algorithm = "easgd"


class GradientEnergyMatching(AsyncStrategy):
    """GEM (Hermans & Louppe, arXiv:1805.08469): per-parameter scaling to sequential momentum SGD's energy."""

    name = algorithm = "gem"


ASYNC_CLASSES: dict[str, type[AsyncStrategy]] = {cls.name: cls for cls in (DownpourSGD, ElasticAveragingSGD,
                                                                           GradientEnergyMatching)}


def _warn_about_buffers(modules: dict[str, torch.nn.Module]) -> None:
    """Warn about float buffers (e.g. batch-norm statistics): only parameters are exchanged."""
    for name, module in modules.items():
        if any(b.is_floating_point() for b in module.buffers()):
            log.warning("network %r has float buffers (e.g. batch-norm statistics): the asynchronous "
                        "strategies exchange parameters only; the master validates with its own buffers", name)
