"""A jet tagger of your own, trained by jetlab: ``jetlab tagger train --model docs/examples/my_tagger.py:MyTagger``.

A Deep Sets network (Zaheer et al., arXiv:1703.06114; the Energy Flow Network without the
energy weighting, Komiske et al., arXiv:1810.05165): every particle goes through the same
small network phi, the real particles' outputs are averaged, and a second network rho maps
the average to class logits::

    logits = rho( sum_i m_i phi(x_i) / sum_i m_i )

Shapes: ``particles (B, P, F)`` standardised particle features, ``mask (B, P)`` bool (True:
a real particle) -> logits ``(B, n_classes)``.

The contract jetlab relies on (docs/models.md):

* the constructor takes the keywords ``n_particles``, ``n_features`` and ``n_classes`` (jetlab
  reads them from the data), and hyperparameters that all have defaults: ``hidden`` and
  ``dropout`` here, set with ``--hp hidden=64`` or searched by ``jetlab hpo run``;
* ``forward(particles, mask)`` returns logits; a class attribute ``input_keys`` would ask for
  other inputs (``("hlf",)``: the 16 high-level features).
"""

import torch
from torch import nn


class MyTagger(nn.Module):
    def __init__(self, *, n_particles: int, n_features: int, n_classes: int, hidden: int = 32,
                 dropout: float = 0.0):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.rho = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, n_classes))

    def forward(self, particles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weight = mask.unsqueeze(-1).to(particles.dtype)  # (B, P, 1)
        pooled = (self.phi(particles) * weight).sum(1) / weight.sum(1).clamp_min(1.0)  # (B, hidden)
        return self.rho(pooled)
