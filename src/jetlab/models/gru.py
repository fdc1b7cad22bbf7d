"""Recurrent tagger: a GRU over the pT-ordered particle list (the JEDI-net paper's GRU baseline).

Input: ``particles (B, N, F)`` (pT-ordered, hardest first), ``mask (B, N)`` bool.
The real particles are moved to the front in their given order (a no-op for
zero-padded, pT-sorted jets), packed with ``pack_padded_sequence`` at the per-jet
lengths ``n_b = Σ mask`` so the GRU never sees padding, and the last hidden state
``h_{n_b}`` (B, hidden) goes through ``Linear -> activation -> Linear`` to logits ``(B, n_classes)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from jetlab.models._mlp import MLP, Tagger, init_tagger

__all__ = ["GRUTagger"]


class GRUTagger(Tagger):
    """GRU over the pT-ordered particles (the GRU baseline of JEDI-net, Moreno et al.,
    arXiv:1908.05318; module docstring).

    Args:
        n_particles: particles per jet of the data set (the GRU takes any count).
        n_features: features per particle.
        n_classes: output classes.
        hidden: width of the GRU's hidden state.
        num_layers: stacked GRU layers.
        head_hidden: width of the hidden layer of the head.
        activation: activation of the head.
    """

    name = "gru"
    input_keys = ("particles", "mask")

    def __init__(self, n_particles: int, n_features: int, n_classes: int = 5, *, hidden: int = 50,
                 num_layers: int = 1, head_hidden: int = 32, activation: str = "relu"):
        super().__init__()
        hp = init_tagger(self, n_particles, n_features, n_classes, hidden=hidden, num_layers=num_layers,
                         head_hidden=head_hidden, activation=activation)
        self.gru = nn.GRU(self.n_features, int(hp["hidden"]), num_layers=int(hp["num_layers"]), batch_first=True)
        self.head = MLP([int(hp["hidden"]), int(hp["head_hidden"]), self.n_classes], hp["activation"])

    def forward(self, particles: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits of a batch of jets.

        Args:
            particles: particle features, hardest first.
            mask: which particles are real (``None``: all).

        Returns:
            Logits (not probabilities).

        Shapes:
            - particles: ``(batch, particles, n_features)``
            - mask: ``(batch, particles)`` bool
            - returns: ``(batch, n_classes)``
        """
        B, N, _ = particles.shape
        if mask is None:
            mask = torch.ones(B, N, dtype=torch.bool, device=particles.device)
        # stable sort puts the real particles first, keeping their (pT) order
        order = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices
        x = torch.gather(particles, 1, order.unsqueeze(-1).expand_as(particles))
        lengths = mask.sum(dim=1).clamp(min=1).cpu()  # an empty jet is read as one zero particle
        x = torch.where(mask.any(dim=1)[:, None, None], x, 0.0)  # empty jets: one zero particle
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, h_n = self.gru(packed)  # (num_layers, B, hidden)
        return self.head(h_n[-1])
