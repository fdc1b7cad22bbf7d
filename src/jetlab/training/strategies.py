"""How a training step's gradients become a parameter update: one process, synchronous
data-parallel all-reduce, and (later) the asynchronous master/worker algorithms.

The training loop (:class:`jetlab.training.trainer.Trainer`) is written once against
:class:`UpdateStrategy`; per mini-batch it calls::

    module = strategy.setup(model, optimizer, context)     # once, before the first epoch
    ...
    loss = loss_fn(module(*inputs), labels) * strategy.loss_weight(n_local, n_global)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    strategy.after_backward()                               # gradients are in p.grad
    strategy.step()                                         # apply the update
    ...
    strategy.end_epoch(epoch)
    strategy.unwrap()  -> the bare nn.Module (what is evaluated and saved)
    strategy.state_dict() / load_state_dict(...)           # travels in checkpoint.pt

Adding an asynchronous MPI algorithm (DESIGN.md, "Training at scale") means writing one
subclass; the loop, data sharding, checkpointing and metrics stay as they are:

* **Downpour SGD**: ``setup`` splits ``COMM_WORLD`` into master (rank 0) and workers and,
  on the master, enters a serve loop that receives accumulated updates, applies them with
  its optimizer and returns its weights (the master never runs the loop body).
  On a worker ``loss_weight`` is 1 (each worker averages its own batch), ``after_backward``
  adds ``lr * p.grad`` to an accumulator, ``step`` applies the local optimizer step and,
  every τ calls, sends the accumulator and loads the master's weights into ``model``.
* **EASGD**: ``step`` takes the local step and every τ calls exchanges the elastic
  difference ``e = α (x_i − x̃)``; ``x_i ← x_i − e`` locally, the master adds ``e``.
* **GEM**: ``after_backward`` rescales ``p.grad`` by π = clip((κ|m| − |v|)/|g|, 0, 5) with
  the momentum proxy ``m`` and central velocity ``v`` kept in the strategy's state.

``state_dict`` must hold whatever the strategy needs to resume bit-for-bit (step counter
modulo τ, accumulators, momentum proxies); the master's state belongs in the master's
own checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from jetlab.distributed.env import DistContext

__all__ = ["UpdateStrategy", "LocalUpdate", "SynchronousAllReduce", "make_strategy", "STRATEGIES"]


class UpdateStrategy:
    """Turns the gradients of one mini-batch into a parameter update (see module docstring)."""

    name = "base"

    def __init__(self) -> None:
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.context: DistContext = DistContext()
        self.steps = 0

    def setup(self, model: nn.Module, optimizer: torch.optim.Optimizer, context: DistContext) -> nn.Module:
        """Remember model and optimizer; return the module the loop calls forward on."""
        self.model = model
        self.optimizer = optimizer
        self.context = context
        return model

    def loss_weight(self, n_local: int, n_global: int) -> float:
        """Factor on this rank's batch-mean loss so the update matches the intended one."""
        return 1.0

    def after_backward(self) -> None:
        """Called once ``p.grad`` holds this rank's gradients of the weighted loss."""

    def step(self) -> None:
        """Apply the update."""
        self.optimizer.step()
        self.steps += 1

    def end_epoch(self, epoch: int) -> None:
        """Called after every training epoch, before validation."""

    def unwrap(self) -> nn.Module:
        """The bare model: evaluate and save this one."""
        return self.model

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))


class LocalUpdate(UpdateStrategy):
    """A single process: the optimizer step on the process's own gradients."""

    name = "local"


class SynchronousAllReduce(UpdateStrategy):
    """Synchronous data parallelism: ``DistributedDataParallel`` averages gradients over
    the K ranks during ``backward`` (gloo on CPU, NCCL on GPU), then every rank takes the
    same optimizer step, so the replicas stay identical.

    With a global batch of B jets split into local batches of n_k jets, rank k's batch-mean
    loss is weighted by ``n_k K / B``; the all-reduce mean of the gradients is then exactly
    the gradient of the mean loss over the whole global batch — the same step one process
    takes on all B jets, also for a last batch that does not split evenly.
    """

    name = "allreduce"

    def __init__(self) -> None:
        super().__init__()
        self.wrapped: nn.Module | None = None

    def setup(self, model: nn.Module, optimizer: torch.optim.Optimizer, context: DistContext) -> nn.Module:
        super().setup(model, optimizer, context)
        if not context.distributed:
            self.wrapped = model
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [torch.device(context.device).index] if context.device.startswith("cuda") else None
        # broadcasts rank 0's parameters and buffers: every replica starts identical
        self.wrapped = DistributedDataParallel(model, device_ids=device_ids)
        return self.wrapped

    def loss_weight(self, n_local: int, n_global: int) -> float:
        return n_local * self.context.world_size / n_global


STRATEGIES: dict[str, type[UpdateStrategy]] = {
    LocalUpdate.name: LocalUpdate,
    SynchronousAllReduce.name: SynchronousAllReduce,
}


def make_strategy(name: str, context: DistContext) -> UpdateStrategy:
    """``"auto"`` picks all-reduce under a multi-process launcher, local otherwise."""
    from jetlab.errors import JetlabError

    if name == "auto":
        name = SynchronousAllReduce.name if context.world_size > 1 else LocalUpdate.name
    if name not in STRATEGIES:
        raise JetlabError(f"unknown update strategy {name!r}; known: auto, {', '.join(STRATEGIES)}")
    if name == LocalUpdate.name and context.world_size > 1:
        raise JetlabError(f"strategy 'local' runs one process, but {context.world_size} were launched")
    return STRATEGIES[name]()
