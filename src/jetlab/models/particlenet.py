"""ParticleNet: dynamic-graph convolutions on a jet's particle cloud, Qu & Gouskos, arXiv:1902.08570.

A jet is an unordered cloud of ``N`` particles with coordinates ``c_i`` and features
``x_i``. An EdgeConv block links every real particle ``i`` to its ``k`` nearest real
neighbours ``j_1..j_k`` in the block's coordinate space and computes::

    e_ij  = h_Θ(x_i, x_j − x_i)                   edge feature, h_Θ: 3 x (Linear + BN + ReLU)
    x'_i  = ReLU( S x_i + (1/k) Σ_j e_ij )        mean over the k neighbours, shortcut S

``S`` is ``Linear + BN`` when the widths differ, else the identity. The first block takes
its neighbours in ``(η_rel, φ_rel)`` (input ``points``), every later block in the feature
space of the previous block's output (the graph is recomputed: "dynamic"). Then a global
average over the real particles, ``FC(fc_dim) + ReLU + Dropout``, and a Linear to the logits.

Configurations (hyperparameters ``k``, ``conv_widths``, ``fc_dim``, ``dropout``):

* ``particlenet``: k = 16, blocks (64,64,64), (128,128,128), (256,256,256), FC 256,
  dropout 0.1 (the paper's, ~370k parameters with 7 inputs);
* ``particlenet-lite``: k = 7, blocks (32,32,32), (64,64,64), FC 128 (the paper's Lite
  version, ~26k parameters, about 10x cheaper: the one sized for CPUs).

Masks: padded particles are never anybody's neighbour (their distance is +inf), edges to
them are dropped from the mean and from the batch-norm statistics
(:class:`~jetlab.models._mlp.MaskedBatchNorm`), their outputs are zeroed and they are left
out of the pooling, so extra padding never changes the output. A particle with fewer than
``k`` real neighbours averages over those it has. ``x_i`` itself is not its own neighbour.
Inputs are the ``particles`` the data pipeline standardises (by default η_rel, φ_rel,
ln pT, ln E, ln pT_rel, ln E_rel, ΔR, the paper's seven), ``points`` the raw (η_rel, φ_rel)
(B, N, 2) and ``mask`` (B, N). Output: logits (B, n_classes). Any ``N`` works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from jetlab.errors import JetlabError
from jetlab.models._mlp import MaskedBatchNorm, Tagger, init_tagger, is_width_list

__all__ = ["EdgeConvBlock", "PARTICLE_NET_FEATURES", "ParticleNet", "ParticleNetLite", "knn"]

#: the particle inputs of the ParticleNet and ParT papers (ln of pT, E and their jet fractions)
PARTICLE_NET_FEATURES = ("etarel", "phirel", "log_pt", "log_e", "log_ptrel", "log_erel", "deltaR")


def knn(coordinates: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest real neighbours of every particle (Qu & Gouskos, arXiv:1902.08570).

    Squared distances ``|c_i|² + |c_j|² − 2 c_i·c_j`` with +inf to padded particles and to
    ``i`` itself, so a neighbour is ``valid`` when its distance is finite and ``i`` is real.

    Args:
        coordinates: the space the neighbours are found in.
        mask: which particles are real.
        k: neighbours per particle (at most ``particles - 1`` are returned).

    Returns:
        ``(index, valid)``: the neighbours' indices and whether each is a real neighbour.

    Shapes:
        - coordinates: ``(batch, particles, dims)``
        - mask: ``(batch, particles)`` bool
        - index, valid: ``(batch, particles, min(k, particles - 1))``
    """
    B, N, _ = coordinates.shape
    k = min(int(k), N - 1)
    norms = coordinates.square().sum(dim=-1)
    distance = norms[:, :, None] + norms[:, None, :] - 2 * coordinates @ coordinates.transpose(1, 2)
    eye = torch.eye(N, dtype=torch.bool, device=coordinates.device)
    distance = distance.masked_fill(eye | ~mask[:, None, :], float("inf"))
    values, index = distance.topk(k, dim=-1, largest=False)  # (B, N, k)
    return index, torch.isfinite(values) & mask[:, :, None]


def gather_neighbours(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[b, index[b, i, j]]``: (B, N, C) features of the neighbours (B, N, k) -> (B, N, k, C)."""
    B, N, C = x.shape
    offsets = torch.arange(B, device=x.device).view(B, 1, 1) * N
    return x.reshape(B * N, C)[(index + offsets).reshape(-1)].view(*index.shape, C)


class EdgeConvBlock(nn.Module):
    """One EdgeConv block of ParticleNet (Qu & Gouskos, arXiv:1902.08570; module docstring).

    Args:
        k: nearest neighbours of every particle.
        in_features: C_in, features per input particle.
        widths: the widths of the three layers of h_Θ (the last is the output width).
    """

    def __init__(self, k: int, in_features: int, widths: list[int]):
        super().__init__()
        self.k = int(k)
        sizes = [2 * in_features, *widths]
        self.linears = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(sizes[:-1], sizes[1:]))
        self.norms = nn.ModuleList(MaskedBatchNorm(b) for b in widths)
        if in_features == widths[-1]:
            self.shortcut, self.shortcut_norm = None, None
        else:
            self.shortcut, self.shortcut_norm = nn.Linear(in_features, widths[-1], bias=False), MaskedBatchNorm(widths[-1])

    def forward(self, coordinates: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The block's output ``x'`` for every particle (0 for padded ones).

        Args:
            coordinates: where the k nearest neighbours are looked up.
            x: particle features.
            mask: which particles are real.

        Returns:
            The new particle features.

        Shapes:
            - coordinates: ``(batch, particles, dims)``
            - x: ``(batch, particles, in_features)``
            - mask: ``(batch, particles)`` bool
            - returns: ``(batch, particles, widths[-1])``
        """
        index, valid = knn(coordinates, mask, self.k)
        real = mask.unsqueeze(-1)
        shortcut = x if self.shortcut is None else self.shortcut_norm(self.shortcut(x), mask)
        if index.shape[-1] == 0:  # a single particle: no neighbours
            return torch.relu(shortcut) * real
        centre = x.unsqueeze(2).expand(*index.shape, x.shape[-1])
        h = torch.cat([centre, gather_neighbours(x, index) - centre], dim=-1)  # (B, N, k, 2C)
        for linear, norm in zip(self.linears, self.norms):
            h = torch.relu(norm(linear(h), valid))
        weights = valid.to(h.dtype)
        mean = (h * weights.unsqueeze(-1)).sum(dim=2) / weights.sum(dim=2, keepdim=True).clamp(min=1)
        return torch.relu(shortcut + mean) * real


class ParticleNet(Tagger):
    """ParticleNet (Qu & Gouskos, arXiv:1902.08570; module docstring), the paper's configuration.

    Args:
        n_particles: particles per jet of the data set (ParticleNet takes any count).
        n_features: features per particle (``particles``).
        n_classes: output classes.
        k: nearest neighbours of every particle in each EdgeConv block.
        conv_widths: the widths of the three layers of h_Θ in each EdgeConv block.
        fc_dim: width of the fully connected layer after the pooling.
        dropout: dropout probability after that layer.
    """

    name = "particlenet"
    input_keys = ("particles", "points", "mask")
    particle_features = PARTICLE_NET_FEATURES

    def __init__(self, n_particles: int, n_features: int, n_classes: int = 5, *, k: int = 16,
                 conv_widths: Sequence[Sequence[int]] = ((64, 64, 64), (128, 128, 128), (256, 256, 256)),
                 fc_dim: int = 256, dropout: float = 0.1):
        super().__init__()
        hp = init_tagger(self, n_particles, n_features, n_classes, k=k, conv_widths=conv_widths, fc_dim=fc_dim,
                         dropout=dropout)
        widths = hp["conv_widths"]
        if int(hp["k"]) < 1 or not widths or not all(is_width_list(w) for w in widths):
            raise JetlabError(f"{self.name}: k >= 1 and conv_widths a list of blocks of positive widths "
                              f"(e.g. [[64,64,64],[128,128,128]]) required, got k={hp['k']!r}, {widths!r}")
        if not 0 <= float(hp["dropout"]) < 1 or int(hp["fc_dim"]) < 1:
            raise JetlabError(f"{self.name}: 0 <= dropout < 1 and fc_dim >= 1 required")
        ins = [self.n_features] + [w[-1] for w in widths[:-1]]
        self.blocks = nn.ModuleList(EdgeConvBlock(hp["k"], c, list(w)) for c, w in zip(ins, widths))
        self.head = nn.Sequential(nn.Linear(widths[-1][-1], int(hp["fc_dim"])), nn.ReLU(),
                                  nn.Dropout(float(hp["dropout"])), nn.Linear(int(hp["fc_dim"]), self.n_classes))

    def forward(self, particles: torch.Tensor, points: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits of a batch of jets.

        Args:
            particles: standardised particle features.
            points: raw (η_rel, φ_rel) of the particles, the first block's coordinates.
            mask: which particles are real (``None``: all).

        Returns:
            Logits (not probabilities).

        Shapes:
            - particles: ``(batch, particles, n_features)``
            - points: ``(batch, particles, 2)``
            - mask: ``(batch, particles)`` bool
            - returns: ``(batch, n_classes)``
        """
        B, N, _ = particles.shape
        if mask is None:
            mask = torch.ones(B, N, dtype=torch.bool, device=particles.device)
        real = mask.unsqueeze(-1)
        x = torch.where(real, particles, 0.0)
        coordinates = torch.where(real, points, 0.0)
        for block in self.blocks:
            x = block(coordinates, x, mask)
            coordinates = x
        n_real = mask.sum(dim=1, keepdim=True).clamp(min=1).to(x.dtype)
        return self.head(x.sum(dim=1) / n_real)


class ParticleNetLite(ParticleNet):
    """ParticleNet-Lite (Qu & Gouskos, arXiv:1902.08570), the paper's small configuration,
    about 10x cheaper: the one sized for CPUs.

    Args:
        n_particles: particles per jet of the data set (ParticleNet takes any count).
        n_features: features per particle (``particles``).
        n_classes: output classes.
        k: nearest neighbours of every particle in each EdgeConv block.
        conv_widths: the widths of the three layers of h_Θ in each EdgeConv block.
        fc_dim: width of the fully connected layer after the pooling.
        dropout: dropout probability after that layer.
    """

    name = "particlenet-lite"

    def __init__(self, n_particles: int, n_features: int, n_classes: int = 5, *, k: int = 7,
                 conv_widths: Sequence[Sequence[int]] = ((32, 32, 32), (64, 64, 64)), fc_dim: int = 128,
                 dropout: float = 0.1):
        super().__init__(n_particles, n_features, n_classes, k=k, conv_widths=conv_widths, fc_dim=fc_dim,
                         dropout=dropout)
