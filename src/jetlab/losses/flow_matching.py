"""Conditional flow matching with the optimal-transport path (Lipman et al., arXiv:2210.02747).

A noise sample x₀ ~ N(0, I) and a data sample x₁ are joined by the straight path

.. math::

    x_t = (1 - (1 - \\sigma_{min})\\, t)\\, x_0 + t\\, x_1, \\qquad
    u_t = \\frac{d x_t}{dt} = x_1 - (1 - \\sigma_{min})\\, x_0,

with t ~ U(0, 1) (σ_min = 0: x_t = (1 − t) x₀ + t x₁, u = x₁ − x₀). The velocity network
v_θ(x_t, t) regresses u_t:

.. math::

    L(\\theta) = \\mathbb E_{t, x_0, x_1} \\frac{1}{|x_1|} \\sum_{i \\in \\text{real}} \\lVert v_\\theta(x_t, t)_i - u_{t,i} \\rVert^2,

the squared error summed over the real particles' features and divided by their number
(times the feature count): padded particles of x₁ contribute nothing, and their rows of x_t are
set to 0 so no padded value reaches the network. Its minimiser is the *marginal* velocity
E[u_t | x_t], whose flow carries N(0, I) to the data distribution (Lipman et al., Thm. 2).

Shapes: x₁ (B, P, F) with mask (B, P) bool, or (B, F) without a mask; t (B,).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["flow_matching_loss", "ot_path"]

#: v_θ: ``velocity(x_t, t, mask) -> (B, P, F)`` (mask None for unpadded data)
Velocity = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]


def _per_sample(t: Tensor, like: Tensor) -> Tensor:
    return t.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def ot_path(x0: Tensor, x1: Tensor, t: Tensor, sigma_min: float = 0.0) -> tuple[Tensor, Tensor]:
    """The point x_t on the OT path at time t (B,) and its velocity u_t (module docstring)."""
    tt = _per_sample(t, x1)
    x_t = (1.0 - (1.0 - sigma_min) * tt) * x0 + tt * x1
    return x_t, x1 - (1.0 - sigma_min) * x0


def flow_matching_loss(velocity: Velocity, x1: Tensor, mask: Tensor | None = None, *, sigma_min: float = 0.0,
                       generator: torch.Generator | None = None, t: Tensor | None = None,
                       x0: Tensor | None = None) -> Tensor:
    """The conditional flow-matching loss of ``velocity`` on a batch x₁ (module docstring).

    t ~ U(0, 1) and x₀ ~ N(0, I) are drawn from ``generator`` (the global RNG when None)
    unless given. Returns the scalar mean squared error over real particles and features.
    """
    if t is None:
        t = torch.rand(x1.shape[0], generator=generator, device=x1.device, dtype=x1.dtype)
    if x0 is None:
        x0 = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
    x_t, target = ot_path(x0, x1, t, sigma_min)
    if mask is None:
        return (velocity(x_t, t, None) - target).pow(2).mean()
    real = mask.unsqueeze(-1)
    x_t = torch.where(real, x_t, torch.zeros_like(x_t))
    error = torch.where(real, velocity(x_t, t, mask) - target, torch.zeros_like(x_t)).pow(2)
    return error.sum() / (mask.sum().clamp_min(1) * x1.shape[-1])
