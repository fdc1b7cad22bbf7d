"""Which parameters are a tagger's *weight matrices*, their exact zeros, and their L1 norm.

Pruning (:mod:`jetlab.pruning.masks`), the sparsity report and the L1 penalty of
retraining (:mod:`jetlab.training.tasks.classify`) all act on the same set of tensors,
chosen per module type:

================================ ==================================================
``nn.Linear``                    ``weight`` (out, in) — every MLP of every tagger:
                                 JEDI-net's f_R, f_O, φ_C; GarNet's W_f, W_d, W_o;
                                 the DNN; the CNN/GRU heads
``nn.Conv1d/2d/3d``              ``weight`` (C_out, C_in, k...) — the CNN's kernels
``nn.GRU`` / ``nn.LSTM`` / RNN   ``weight_ih_l<k>[_reverse]`` (3H, F) and
                                 ``weight_hh_l<k>[_reverse]`` (3H, H)
================================ ==================================================

Biases and every other parameter (normalisation scales, ...) are never pruned nor counted.

With ``torch.nn.utils.prune`` applied, a module holds ``<name>_orig`` (parameter) and
``<name>_mask`` (buffer) and uses ``<name> = <name>_orig * <name>_mask``;
:func:`effective_weight` and :func:`fold_masks` compute that product, the latter on a
``state_dict`` (what ``prune.remove`` leaves in the module). The *sparsity* of a set of
matrices ``W_l`` is the fraction of entries that are exactly zero::

    s_l = #{W_l,ij == 0} / |W_l|          s = Σ_l #{W_l,ij == 0} / Σ_l |W_l|
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from jetlab.errors import JetlabError

__all__ = ["count_zeros", "effective_weight", "fold_masks", "prunable_weights", "weight_l1_norm"]


def _weight_names(module: nn.Module) -> list[str]:
    if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
        return ["weight"]
    if isinstance(module, nn.RNNBase):
        return [name for name in module._flat_weights_names if name.startswith("weight_")]
    return []


def prunable_weights(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """Every weight matrix of ``model`` (the table in the module docstring).

    Args:
        model: a tagger (any ``nn.Module`` with Linear, Conv or GRU/LSTM layers).

    Returns:
        ``[(qualified name, module, parameter name)]`` in ``named_modules`` order, e.g.
        ``("mlp.layers.0.weight", layer, "weight")``.

    Shapes:
        - the matrices named: ``(out, in)`` (Linear), ``(C_out, C_in, k...)`` (Conv),
          ``(3H, F)`` / ``(3H, H)`` (GRU)
    """
    found = [(f"{prefix}.{name}" if prefix else name, module, name)
             for prefix, module in model.named_modules() for name in _weight_names(module)]
    if not found:
        raise JetlabError(f"{type(model).__name__} has no weight matrices to prune (Linear, Conv, GRU/LSTM)")
    return found


def effective_weight(module: nn.Module, name: str) -> torch.Tensor:
    """``module.<name>`` as the forward pass uses it.

    Args:
        module: the layer holding the weight.
        name: the parameter's name (``"weight"``, ``"weight_ih_l0"``, ...).

    Returns:
        ``<name>_orig * <name>_mask`` when pruned (computed afresh, so it is part of the
        current autograd graph), else the parameter itself.

    Shapes:
        - returns: the parameter's own shape
    """
    if hasattr(module, name + "_mask"):
        return getattr(module, name + "_orig") * getattr(module, name + "_mask")
    return getattr(module, name)


def weight_l1_norm(model: nn.Module) -> torch.Tensor:
    """The L1 norm ``Σ_l Σ_ij |W_l,ij|`` of the weight matrices (pruned entries count zero).

    Args:
        model: the tagger.

    Returns:
        The norm, differentiable with respect to the weights.

    Shapes:
        - returns: ``()`` (a scalar tensor)
    """
    return sum(effective_weight(module, name).abs().sum() for _, module, name in prunable_weights(model))


def fold_masks(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fold pruning masks into the weights (what ``prune.remove`` leaves).

    Args:
        state_dict: a model's state, possibly with ``X_orig`` / ``X_mask`` pairs.

    Returns:
        A new dict with every pair replaced by ``X = X_orig * X_mask``, so it loads into the
        unpruned model and its zeros are real; other entries unchanged.

    Shapes:
        - returns: each ``X`` has the shape of ``X_orig``
    """
    folded = {}
    for key, value in state_dict.items():
        if key.endswith("_mask") and key[:-5] + "_orig" in state_dict:
            continue
        if key.endswith("_orig") and key[:-5] + "_mask" in state_dict:
            folded[key[:-5]] = value * state_dict[key[:-5] + "_mask"]
        else:
            folded[key] = value
    return folded


def count_zeros(state_dict: Mapping[str, torch.Tensor], names) -> dict:
    """Exact zeros of some weight matrices (masks folded first).

    Args:
        state_dict: a model's state (pruned or not).
        names: the qualified names of the matrices to count (:func:`prunable_weights`).

    Returns:
        ``{"sparsity": s, "zeros": Z, "total": N, "layers": {name: {"sparsity", "zeros",
        "total"}}}`` (plain numbers).

    Shapes:
        - state_dict[name]: any shape; every entry is counted
    """
    weights = fold_masks(state_dict)
    layers = {}
    for name in names:
        w = weights[name]
        zeros = int((w == 0).sum())
        layers[name] = {"sparsity": zeros / w.numel(), "zeros": zeros, "total": int(w.numel())}
    zeros, total = sum(v["zeros"] for v in layers.values()), sum(v["total"] for v in layers.values())
    return {"sparsity": zeros / total if total else 0.0, "zeros": zeros, "total": total, "layers": layers}
