"""How a training step's gradients become parameter updates: one process, synchronous
data-parallel all-reduce, and (in :mod:`jetlab.distributed`) the asynchronous algorithms.

The engine (:mod:`jetlab.training.engine`) is written once against :class:`UpdateStrategy`.
A task may train several networks (a GAN: generator and discriminator), each with its own
optimizer, all named; for every update of network ``name`` the engine's updater does::

    strategy.setup(modules, optimizers, context)        # once, before the first epoch
    ...
    optimizers[name].zero_grad(set_to_none=True)
    (loss * strategy.loss_weight(n_local, n_global)).backward()
    strategy.after_backward(name)     # p.grad holds this rank's gradients of the weighted loss
    [clip the gradient norm]
    strategy.step(name)               # apply the update (and, for async algorithms, exchange)
    ...
    strategy.end_epoch(epoch)

``strategy.trains`` is False on a rank that never runs the training loop (an asynchronous
master); ``state_dict`` holds whatever the strategy needs to resume bit for bit.

``strategy.role`` tells the engine which loop a rank runs: ``"replica"`` (every rank trains
and closes its epochs: local, all-reduce), ``"master"`` (asynchronous master or sub-master:
``serve(engine, state, val, ...)`` answers the workers and closes the epochs) or ``"worker"``
(asynchronous worker: ``join()`` returns the first epoch and installs the master's weights,
``report_epoch(...)`` after each epoch, ``stop_requested`` ends the loop early).
``engine_context(context)`` is what the engine's collectives run over (an asynchronous rank
keeps its numbers to itself) and ``batch_context(context, training=)`` what the training and
evaluation batches are sharded over. ``abort(exc)`` runs when training raises; ``summary()``
adds the strategy's numbers to a run's metrics.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from jetlab.distributed.env import DistContext
from jetlab.errors import JetlabError

__all__ = ["ASYNC_STRATEGIES", "STRATEGIES", "LocalUpdate", "SynchronousAllReduce", "UpdateStrategy",
           "is_collective", "make_strategy", "optimizer_parameters"]

#: the asynchronous master/worker algorithms (:mod:`jetlab.distributed.asynchronous`)
ASYNC_STRATEGIES = ("downpour", "easgd", "gem")


def optimizer_parameters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The parameters an optimizer updates, in a fixed order (the same on every rank)."""
    return [p for group in optimizer.param_groups for p in group["params"]]


class UpdateStrategy:
    """Turns the gradients of one mini-batch into parameter updates (module docstring)."""

    name = "base"
    #: False on a rank that serves the others instead of training (async master)
    trains = True
    #: "replica", "master" or "worker" (module docstring)
    role = "replica"
    #: set by an asynchronous worker when its master tells it to stop
    stop_requested = False

    def __init__(self) -> None:
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.context = DistContext()
        self.steps = 0

    def setup(self, modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
              context: DistContext) -> None:
        """Remember the networks and their optimizers (keyed by the same names)."""
        self.modules = dict(modules)
        self.optimizers = dict(optimizers)
        self.context = context

    def loss_weight(self, n_local: int, n_global: int) -> float:
        """Factor on this rank's batch-mean loss so the update matches the intended one."""
        return 1.0

    def after_backward(self, name: str) -> None:
        """Called once ``p.grad`` holds this rank's gradients for network ``name``."""

    def step(self, name: str) -> None:
        """Apply the update of network ``name``."""
        self.optimizers[name].step()
        self.steps += 1

    def end_epoch(self, epoch: int) -> None:
        """Called after every training epoch, before validation."""

    def finish(self) -> None:
        """Called once after the last epoch (async strategies stop their peers here)."""

    def abort(self, error: BaseException) -> None:
        """Called when training raised ``error`` (async strategies tell their peers)."""

    def engine_context(self, context: DistContext) -> DistContext:
        return context

    def batch_context(self, context: DistContext, *, training: bool) -> DistContext:
        return context

    def summary(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))


class LocalUpdate(UpdateStrategy):
    """A single process: the optimizer step on the process's own gradients."""

    name = "local"


class SynchronousAllReduce(UpdateStrategy):
    """Synchronous data parallelism over K ranks (gloo on CPU, NCCL on GPU).

    ``setup`` broadcasts rank 0's parameters and buffers, so every replica starts identical.
    After each backward the gradients of the network being updated are flattened into one
    buffer, summed over the ranks by one all-reduce and divided by K; every rank then takes
    the same optimizer step, so the replicas stay identical. (One explicit all-reduce per
    update rather than a ``DistributedDataParallel`` wrapper: it serves a GAN's two networks,
    double backward (the R1 penalty) and networks frozen for part of a step alike.)

    With a global batch of B items split into local batches of n_k, rank k's batch-mean loss
    is weighted by ``n_k K / B``; the mean of the gradients is then exactly the gradient of
    the mean loss over the whole global batch — the step one process takes on all B items,
    also for a last batch that does not split evenly.
    """

    name = "allreduce"

    def setup(self, modules, optimizers, context) -> None:
        super().setup(modules, optimizers, context)
        if not context.distributed:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for module in self.modules.values():
                for tensor in [*module.parameters(), *module.buffers()]:
                    dist.broadcast(tensor.data, src=0)

    def loss_weight(self, n_local: int, n_global: int) -> float:
        return n_local * self.context.world_size / n_global

    def after_backward(self, name: str) -> None:
        if not self.context.distributed:
            return
        import torch.distributed as dist

        params = [p for p in optimizer_parameters(self.optimizers[name]) if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.context.world_size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n


STRATEGIES: dict[str, type[UpdateStrategy]] = {
    LocalUpdate.name: LocalUpdate,
    SynchronousAllReduce.name: SynchronousAllReduce,
}


def is_collective(name: str) -> bool:
    """Whether strategy ``name`` needs a torch.distributed process group (all but the
    asynchronous ones, which talk over MPI point-to-point)."""
    return name not in ASYNC_STRATEGIES


def make_strategy(name: str, context: DistContext, **settings: Any) -> UpdateStrategy:
    """``"auto"`` picks all-reduce under a multi-process launcher, local otherwise.

    ``settings`` (e.g. ``sync_every``) go to strategies whose constructor takes them (and
    ``context`` too, where the constructor takes it).
    """
    if name == "auto":
        name = SynchronousAllReduce.name if context.world_size > 1 else LocalUpdate.name
    if name in ASYNC_STRATEGIES:
        from jetlab.distributed.asynchronous import ASYNC_CLASSES as classes
    else:
        classes = STRATEGIES
    if name not in classes:
        raise JetlabError(f"unknown update strategy {name!r}; known: auto, {', '.join(STRATEGIES)}, "
                          f"{', '.join(ASYNC_STRATEGIES)}")
    if name == LocalUpdate.name and context.world_size > 1:
        raise JetlabError(f"strategy 'local' runs one process, but {context.world_size} were launched")
    cls = classes[name]
    import inspect

    accepted = inspect.signature(cls.__init__).parameters
    settings = {**settings, "context": context}
    return cls(**{k: v for k, v in settings.items() if k in accepted})
