"""One process: the optimizer step on the process's own gradients."""

from __future__ import annotations

from jetlab.training.strategies.base import UpdateStrategy

__all__ = ["LocalUpdate"]


class LocalUpdate(UpdateStrategy):
    """A single process: the optimizer step on the process's own gradients."""

    name = "local"
