"""What the engine trains: a :class:`Task` owns its networks, optimizers and losses.

A task knows nothing of epochs, ranks, checkpoints or files. The engine
(:mod:`jetlab.training.engine`) calls, per batch and per epoch:

``train_step(batch, update) -> dict[str, float]``
    forward passes on ``batch`` (a dict of tensors) and one ``update(name, loss)`` per
    network update (the engine does backward, gradient exchange and the optimizer step);
    returns batch means of the numbers worth logging (``{"loss": ..., "accuracy": ...}``).
``validate_step(batch) -> dict[str, float]``
    batch means of the validation numbers (no gradients).
``epoch_end(epoch, last) -> dict[str, float]``
    numbers computed once per epoch on rank 0 (e.g. a generator's W1-M), logged as ``val_<k>``.
``state_dict()`` / ``load_state_dict(state)``
    whatever the task needs to resume beyond its networks and optimizers.

``monitor`` names the validation number that picks the best epoch, drives the plateau
schedule and early stopping (``"loss"`` → ``val_loss``), ``monitor_mode`` whether it should
fall ("min") or rise ("max"); ``None`` means the last epoch is the best.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["Task", "Update"]

#: the engine's ``update(name, loss)``: backward of ``loss`` and one step of network ``name``
Update = Callable[[str, torch.Tensor], None]


class Task:
    """Base class of the training tasks (module docstring)."""

    name = "task"
    monitor: str | None = "loss"
    monitor_mode = "min"

    def __init__(self, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                 device: str | torch.device = "cpu"):
        self.modules = modules
        self.optimizers = optimizers
        self.device = torch.device(device)

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}

    def train_step(self, batch: dict[str, torch.Tensor], update: Update) -> dict[str, float]:
        raise NotImplementedError

    def validate_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        return {}

    def epoch_end(self, epoch: int, last: bool) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
