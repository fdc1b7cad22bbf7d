"""EPiC layers: equivariant point-cloud layers with one global vector (Buhmann et al.,
arXiv:2301.08128, EPiC-GAN; EPiC-FM / EPiC-JeDi use them as a velocity network).

A set is P per-particle vectors h_i (B, P, H) (mask (B, P) bool: real particles) and one
global vector g (B, G) per set, plus a conditioning vector c (B, C) (e.g. the flow time and
the multiplicity). One :class:`EPiCLayer`:

.. math::

    \\bar h = \\frac{1}{n} \\sum_{i \\in \\text{real}} h_i, \\qquad
    \\Sigma h = \\frac{1}{P} \\sum_{i \\in \\text{real}} h_i, \\qquad
    g' = g + W^g_2\\, \\phi(W^g_1 [\\bar h; \\Sigma h; g; c]), \\qquad
    h_i' = h_i + W^p_2\\, \\phi(W^p_h h_i + W^p_g g')

(φ leaky ReLU 0.2; the sum is scaled by the maximum set size P so it stays O(1)). The global
vector sees every particle through the masked pools; each particle sees the others only
through g', so a layer costs O(B P H²), linear in the number of particles, and is
permutation-equivariant in the particles. ``W^p_g g'`` is computed once per set and
broadcast. Padded rows are zero after every layer and never enter a pool, so padded values
cannot influence real particles.

:class:`EPiCNetwork`: embedding ``h_i = W_x x_i + W_c c``, initial global vector from the
pools of the embedding and c, L layers, per-particle linear head: (B, P, F) → (B, P, F_out).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetlab.models.mpgan import _zero_padding

__all__ = ["EPiCLayer", "EPiCNetwork", "masked_mean_sum"]


def _leaky(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)


def masked_mean_sum(h: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Mean and sum of the particle features over the real particles (an empty set pools to zeros).

    Args:
        h: particle features, padded rows 0.
        mask: which particles are real (``None``: all; the mean is then over every row).

    Returns:
        ``(mean, sum)``.

    Shapes:
        - h: ``(batch, particles, hidden)``
        - mask: ``(batch, particles)`` bool
        - mean, sum: ``(batch, hidden)``
    """
    total = h.sum(1)
    if mask is None:
        return total / h.shape[1], total
    return total / mask.sum(1, keepdim=True).clamp_min(1).to(h.dtype), total


class EPiCLayer(nn.Module):
    """One EPiC layer (Buhmann et al., arXiv:2301.08128; module docstring).

    Args:
        hidden: H, features per particle.
        global_dim: G, size of the global vector.
        cond_dim: C, size of the condition vector.
        n_points: P, the largest set size (the sum pool is divided by it).
    """

    def __init__(self, hidden: int, global_dim: int, cond_dim: int, n_points: int):
        super().__init__()
        self.sum_scale = 1.0 / max(1, n_points)
        self.global_hidden = nn.Linear(2 * hidden + global_dim + cond_dim, hidden)
        self.global_out = nn.Linear(hidden, global_dim)
        self.particle_self = nn.Linear(hidden, hidden)
        self.particle_global = nn.Linear(global_dim, hidden, bias=False)
        self.particle_out = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, g: Tensor, c: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Update the global vector from the pools, then every particle from it.

        Args:
            h: particle features (padded rows 0).
            g: global vectors.
            c: condition vectors.
            mask: which particles are real (``None``: all).

        Returns:
            ``(h', g')``, padded rows of ``h'`` 0.

        Shapes:
            - h, h': ``(batch, particles, hidden)``
            - g, g': ``(batch, global_dim)``
            - c: ``(batch, cond_dim)``
            - mask: ``(batch, particles)`` bool
        """
        mean, total = masked_mean_sum(h, mask)
        g = g + self.global_out(_leaky(self.global_hidden(torch.cat([mean, total * self.sum_scale, g, c], -1))))
        pre = self.particle_self(h) + self.particle_global(g).unsqueeze(1)
        return _zero_padding(h + self.particle_out(_leaky(pre)), mask), g


class EPiCNetwork(nn.Module):
    """Per-particle map through EPiC layers (Buhmann et al., arXiv:2301.08128; module docstring).

    Args:
        in_features: features per input particle.
        out_features: features per output particle.
        cond_dim: size of the condition vector.
        n_points: the largest set size.
        hidden: particle width of the layers.
        global_dim: size of the global vector.
        n_layers: EPiC layers.
    """

    def __init__(self, in_features: int, out_features: int, cond_dim: int, n_points: int, *, hidden: int = 64,
                 global_dim: int = 16, n_layers: int = 3):
        super().__init__()
        self.embed = nn.Linear(in_features, hidden)
        self.embed_cond = nn.Linear(cond_dim, hidden, bias=False)
        self.global_init = nn.Linear(2 * hidden + cond_dim, global_dim)
        self.layers = nn.ModuleList(EPiCLayer(hidden, global_dim, cond_dim, n_points) for _ in range(n_layers))
        self.head = nn.Linear(hidden, out_features)
        self.sum_scale = 1.0 / max(1, n_points)

    def forward(self, x: Tensor, cond: Tensor, mask: Tensor | None = None) -> Tensor:
        """The per-particle output of the network.

        Args:
            x: particle features.
            cond: one condition vector per set.
            mask: which particles are real (``None``: all).

        Returns:
            Per-particle outputs, padded rows 0.

        Shapes:
            - x: ``(batch, particles, in_features)``
            - cond: ``(batch, cond_dim)``
            - mask: ``(batch, particles)`` bool
            - returns: ``(batch, particles, out_features)``
        """
        h = _zero_padding(_leaky(self.embed(x) + self.embed_cond(cond).unsqueeze(1)), mask)
        mean, total = masked_mean_sum(h, mask)
        g = self.global_init(torch.cat([mean, total * self.sum_scale, cond], -1))
        for layer in self.layers:
            h, g = layer(h, g, cond, mask)
        return _zero_padding(self.head(h), mask)
