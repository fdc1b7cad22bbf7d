"""Exponential moving average (EMA) of a network's weights (Polyak averaging; as used by
diffusion and flow-matching generators, e.g. Song et al. arXiv:2011.13456, EPiC-FM
arXiv:2310.00049).

After every optimizer step of the trained ("raw") network θ, the shadow copy θ̄ moves
towards it:

.. math::

    \\bar\\theta_k = \\beta\\, \\bar\\theta_{k-1} + (1 - \\beta)\\, \\theta_k, \\qquad \\bar\\theta_0 = \\theta_0,

with decay β ∈ (0, 1) (β = 0.999 averages over the last ~1/(1 − β) = 1000 steps). Buffers
(not trained) are copied. The raw weights keep training; the average is what is validated,
sampled from and saved. Shapes: every parameter of θ̄ has the shape of θ's.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ema_copy", "ema_update"]


def ema_copy(model: nn.Module) -> nn.Module:
    """θ̄₀ = θ₀: a frozen copy of ``model`` (no gradients) to average into."""
    shadow = copy.deepcopy(model)
    for p in shadow.parameters():
        p.requires_grad_(False)
    return shadow


@torch.no_grad()
def ema_update(shadow: nn.Module, model: nn.Module, decay: float) -> None:
    """One step θ̄ ← β θ̄ + (1 − β) θ of ``shadow`` towards ``model`` (module docstring)."""
    for average, current in zip(shadow.parameters(), model.parameters(), strict=True):
        average.lerp_(current.detach(), 1.0 - decay)
    for average, current in zip(shadow.buffers(), model.buffers(), strict=True):
        average.copy_(current)
