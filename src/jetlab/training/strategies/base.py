"""The update-strategy protocol: how a training step's gradients become parameter updates.

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

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from jetlab.distributed.env import DistContext

__all__ = ["UpdateStrategy", "optimizer_parameters"]


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
