"""GAN losses for set generators (MPGAN, Kansal et al. arXiv:2106.11535), on the
discriminator's logits ``D(x)`` (one per set, shape (B,)).

* non-saturating (``"ns"``, Goodfellow et al. 2014):
  ``L_D = E[softplus(−D(x_real))] + E[softplus(D(x_fake))]``, ``L_G = E[softplus(−D(x_fake))]``
  (binary cross-entropy with real sets labelled 1, generated sets 0; the generator maximises
  log D(G(z)));
* least squares (``"ls"``, Mao et al. arXiv:1611.04076, as MPGAN):
  ``L_D = E[(D(x_real) − 1)²] + E[D(x_fake)²]``, ``L_G = E[(D(x_fake) − 1)²]``;
* R1 gradient penalty on real sets (Mescheder et al. arXiv:1801.04406):
  ``R1 = E[‖∇_x D(x_real)‖²]``, added to ``L_D`` as ``(γ / 2) R1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from jetlab.choices import GAN_LOSSES

__all__ = ["GAN_LOSSES", "discriminator_loss", "generator_loss", "r1_penalty"]


def _check(kind: str) -> None:
    if kind not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; known: {', '.join(GAN_LOSSES)}")


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, kind: str = "ns") -> Tensor:
    """``L_D`` (module docstring) from logits of real (B,) and generated (B',) sets: a scalar."""
    _check(kind)
    if kind == "ls":
        return (real_logits - 1).square().mean() + fake_logits.square().mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Tensor, kind: str = "ns") -> Tensor:
    """``L_G`` (module docstring) from the logits of generated sets (B,): a scalar."""
    _check(kind)
    if kind == "ls":
        return (fake_logits - 1).square().mean()
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: Tensor, real_inputs: Tensor) -> Tensor:
    """``E[‖∇_x D(x)‖²]`` over the batch; ``real_inputs`` (B, N, F) must require grad and
    ``real_logits`` (B,) be computed from them. Keeps the graph (``create_graph``) so the
    penalty can be differentiated with respect to the discriminator's weights."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_inputs, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()
