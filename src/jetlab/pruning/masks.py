"""Magnitude pruning of a tagger's weight matrices with ``torch.nn.utils.prune``.

:func:`prune_by_magnitude` gives every weight matrix ``W_l`` (:mod:`jetlab.models.weights`)
a binary mask that zeroes its smallest ``|W_l,ij|``:

* ``scope="global"``: the ``round(s · Σ_l |W_l|)`` smallest magnitudes of all matrices
  ranked together (``prune.global_unstructured`` with ``L1Unstructured``; Han et al.,
  arXiv:1506.02626): layers with many redundant weights lose more;
* ``scope="layer"``: the ``round(s · |W_l|)`` smallest of each matrix on its own
  (``prune.l1_unstructured``): every layer reaches ``s``.

Applied to a model whose pruned weights are already exact zeros (the previous iteration's
``model.pt``), the zeros rank first, so masks only grow from one iteration to the next.
The module then trains ``W_orig`` through ``W = W_orig ⊙ M`` (pruned entries get no
gradient); :func:`make_permanent` (``prune.remove``) leaves plain ``W`` with real zeros.

:func:`rewind` resets the surviving weights (and every bias) to an earlier state —
lottery-ticket rewinding (Frankle & Carbin, arXiv:1803.03635) to the original run's
initialisation, which :func:`initial_state` rebuilds from the run's seed.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.utils import prune

from jetlab.choices import PRUNING_SCOPES as SCOPES
from jetlab.errors import JetlabError
from jetlab.models import build_tagger
from jetlab.models.weights import prunable_weights
from jetlab.training.run_dir import seed_everything

__all__ = ["SCOPES", "initial_state", "is_pruned", "make_permanent", "prune_by_magnitude", "rewind"]


def _count(sparsity: float, n: int) -> int:
    return min(n, int(sparsity * n + 0.5))


def prune_by_magnitude(model: nn.Module, sparsity: float, scope: str = "global") -> None:
    """Mask the smallest-magnitude weights of ``model`` in place (module docstring); the model
    must not carry masks yet. ``sparsity`` in [0, 1): 0 adds all-ones masks."""
    if scope not in SCOPES:
        raise JetlabError(f"unknown pruning scope {scope!r}; known: {', '.join(SCOPES)}")
    targets = [(module, name) for _, module, name in prunable_weights(model)]
    if is_pruned(model):
        raise JetlabError("the model already carries pruning masks; prune a model with plain weights")
    if scope == "global":
        total = sum(getattr(module, name).numel() for module, name in targets)
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=_count(sparsity, total))
    else:
        for module, name in targets:
            prune.l1_unstructured(module, name, amount=_count(sparsity, getattr(module, name).numel()))


def is_pruned(model: nn.Module) -> bool:
    """Whether any weight matrix of ``model`` carries a ``torch.nn.utils.prune`` mask."""
    return any(hasattr(module, name + "_mask") for _, module, name in prunable_weights(model))


def make_permanent(model: nn.Module) -> nn.Module:
    """``prune.remove`` every mask: plain parameters ``W = W_orig ⊙ M`` with real zeros."""
    for _, module, name in prunable_weights(model):
        if hasattr(module, name + "_mask"):
            prune.remove(module, name)
    return model


@torch.no_grad()
def rewind(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Set every parameter of the pruned ``model`` to its value in the plain ``state`` (for a
    pruned weight: ``W_orig``, so the surviving entries take the old values; the masks stay)."""
    for name, parameter in model.named_parameters():
        parameter.copy_(state[name.removesuffix("_orig")])


def initial_state(info: dict) -> dict[str, torch.Tensor]:
    """The weights the run of model file ``info`` (:func:`jetlab.training.tagger.load_tagger`)
    started from: ``train_tagger`` seeds everything with the run's seed, then builds the
    model, so the same two steps rebuild them exactly. Leaves the global RNGs seeded."""
    seed_everything(int(info["config"]["seed"]))
    model = build_tagger(info["model_name"], **info["hparams"])
    return {key: value.detach().clone() for key, value in model.state_dict().items()}
