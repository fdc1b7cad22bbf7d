"""Recurrent tagger: a GRU over the pT-ordered particle list (the JEDI-net paper's GRU baseline).

Input: ``particles (B, N, F)`` (pT-ordered, hardest first), ``mask (B, N)`` bool.
The real particles are moved to the front in their given order (a no-op for
zero-padded, pT-sorted jets), packed with ``pack_padded_sequence`` at the per-jet
lengths ``n_b = Σ mask`` so the GRU never sees padding, and the last hidden state
``h_{n_b}`` (B, hidden) goes through ``Linear -> activation -> Linear`` to logits ``(B, n_classes)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from jetlab.models._mlp import MLP, init_tagger

__all__ = ["GRUTagger"]


class GRUTagger(nn.Module):
    """Hyperparameters: ``hidden`` (50), ``num_layers`` (1), ``head_hidden`` (32),
    ``activation`` ("relu") of the head."""

    name = "gru"
    input_keys = ("particles", "mask")

    def __init__(self, n_particles: int, n_features: int, n_classes: int = 5, **hyperparameters: Any):
        super().__init__()
        hp = init_tagger(self, n_particles, n_features, n_classes, hyperparameters)
        self.gru = nn.GRU(self.n_features, int(hp["hidden"]), num_layers=int(hp["num_layers"]), batch_first=True)
        self.head = MLP([int(hp["hidden"]), int(hp["head_hidden"]), self.n_classes], hp["activation"])

    @classmethod
    def default_hyperparameters(cls, n_particles: int) -> dict[str, Any]:
        return {"hidden": 50, "num_layers": 1, "head_hidden": 32, "activation": "relu"}

    def forward(self, particles: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
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
