"""How a training step's gradients become parameter updates, one class per way of training:

* :mod:`.base` — the :class:`UpdateStrategy` protocol the engine is written against;
* :mod:`.local` — one process;
* :mod:`.allreduce` — synchronous data parallelism (torch.distributed all-reduce);
* :mod:`.asynchronous` — the asynchronous master/worker algorithms over MPI (Downpour SGD,
  Elastic Averaging SGD, Gradient Energy Matching), on the machinery of
  :mod:`jetlab.distributed` (transport, topology, update rules, the master's event loop).

:func:`make_strategy` builds one from its name (``--strategy``).
"""

from __future__ import annotations

import inspect
from typing import Any

from jetlab.distributed.env import DistContext
from jetlab.errors import JetlabError
from jetlab.training.strategies.allreduce import SynchronousAllReduce
from jetlab.training.strategies.asynchronous import ASYNC_CLASSES
from jetlab.training.strategies.base import UpdateStrategy, optimizer_parameters
from jetlab.training.strategies.local import LocalUpdate

__all__ = ["ASYNC_STRATEGIES", "STRATEGIES", "LocalUpdate", "SynchronousAllReduce", "UpdateStrategy",
           "is_collective", "make_strategy", "optimizer_parameters"]

#: the asynchronous master/worker algorithms (:mod:`.asynchronous`)
ASYNC_STRATEGIES = tuple(ASYNC_CLASSES)

#: every strategy by name
STRATEGIES: dict[str, type[UpdateStrategy]] = {
    LocalUpdate.name: LocalUpdate,
    SynchronousAllReduce.name: SynchronousAllReduce,
    **ASYNC_CLASSES,
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
    if name not in STRATEGIES:
        raise JetlabError(f"unknown update strategy {name!r}; known: auto, {', '.join(STRATEGIES)}")
    if name == LocalUpdate.name and context.world_size > 1:
        raise JetlabError(f"strategy 'local' runs one process, but {context.world_size} were launched")
    cls = STRATEGIES[name]
    accepted = inspect.signature(cls.__init__).parameters
    settings = {**settings, "context": context}
    return cls(**{k: v for k, v in settings.items() if k in accepted})
