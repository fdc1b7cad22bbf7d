"""GarNet: distance-weighted graph network of Qasim et al., arXiv:1902.07987, as a jet tagger.

A GarNet layer connects the ``N`` vertices (particles) of a set to ``S`` learned
aggregators instead of to each other (linear in ``N``). With vertex features
``x_v in R^{F_in}``::

    f_v  = W_f x_v + b_f                    (B, N, F)      learned vertex features
    d_va = W_d x_v + b_d                    (B, N, S)      "distance" of vertex v to aggregator a
    w_va = exp(-d_va²)  ("gaussian", default)  or  exp(-|d_va|)  ("exponential", the paper's)
    h_a  = [mean_v w_va f_v ; max_v w_va f_v]   (B, S, 2F)  over the real vertices only
    y_v  = act(W_o [x_v ; (w_va h_a)_{a=1..S}] + b_o)    (B, N, F_out)

``(w_va h_a)`` is the aggregated information sent back to vertex ``v`` and flattened to
``S·2F`` numbers. Padded vertices (``mask == False``) are left out of the mean and the
max, and their outputs are set to 0, so they never matter. Layers stack; the tagger is
``n_layers`` GarNet layers, a masked mean over the vertices and an MLP head.

Inputs: ``particles (B, N, F_in)``, ``mask (B, N)`` bool (``None``: all real).
Output: logits ``(B, n_classes)``. Any ``N`` works.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from jetlab.errors import JetlabError
from jetlab.models._mlp import MLP, activation_function, init_tagger

__all__ = ["GarNetLayer", "GarNetTagger"]

POTENTIALS = ("gaussian", "exponential")


class GarNetLayer(nn.Module):
    """One GarNet layer: ``(B, N, in_features) -> (B, N, out_features)`` (see module docstring)."""

    def __init__(self, in_features: int, out_features: int, *, n_aggregators: int = 4,
                 n_filters: int = 16, activation: str = "tanh", potential: str = "gaussian"):
        super().__init__()
        if potential not in POTENTIALS:
            raise JetlabError(f"garnet: unknown potential {potential!r}; known: {', '.join(POTENTIALS)}")
        self.potential = potential
        self.n_aggregators = int(n_aggregators)
        self.n_filters = int(n_filters)
        self.features = nn.Linear(in_features, self.n_filters)  # W_f
        self.distances = nn.Linear(in_features, self.n_aggregators)  # W_d
        self.output = nn.Linear(in_features + 2 * self.n_filters * self.n_aggregators, out_features)  # W_o
        self.activation = activation
        self._act = activation_function(activation)

    def edge_weights(self, d: torch.Tensor) -> torch.Tensor:
        """``V(d)``: ``exp(-d²)`` or the paper's ``exp(-|d|)``."""
        return torch.exp(-d.square()) if self.potential == "gaussian" else torch.exp(-d.abs())

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        real = mask.unsqueeze(-1)  # (B, N, 1) bool
        f = self.features(x)  # (B, N, F)
        w = self.edge_weights(self.distances(x)) * real  # (B, N, S), 0 for padded vertices
        messages = w.unsqueeze(-1) * f.unsqueeze(-2)  # (B, N, S, F)
        n_real = mask.sum(dim=1).clamp(min=1).to(x.dtype)  # (B,)
        mean = messages.sum(dim=1) / n_real[:, None, None]  # (B, S, F)
        lowest = torch.finfo(x.dtype).min
        maximum = messages.masked_fill(~real.unsqueeze(-1), lowest).amax(dim=1)  # (B, S, F)
        maximum = torch.where(mask.any(dim=1)[:, None, None], maximum, 0.0)
        aggregated = torch.cat([mean, maximum], dim=-1)  # (B, S, 2F)
        returned = (w.unsqueeze(-1) * aggregated.unsqueeze(1)).reshape(B, N, -1)  # (B, N, S·2F)
        y = self._act(self.output(torch.cat([x, returned], dim=-1)), True)
        return y * real


class GarNetTagger(nn.Module):
    """GarNet jet tagger: ``n_layers`` :class:`GarNetLayer` s, masked mean pooling, MLP head.

    Hyperparameters: ``n_layers`` (3), ``n_aggregators`` S (4), ``n_filters`` F (16),
    ``layer_width`` F_out (32), ``activation`` of the layers ("tanh"), ``potential``
    ("gaussian" = exp(-d²) or "exponential" = exp(-|d|)), ``head_hidden`` (32),
    ``head_activation`` ("relu"). Head: ``layer_width -> head_hidden -> n_classes``.
    """

    name = "garnet"
    input_keys = ("particles", "mask")

    def __init__(self, n_particles: int, n_features: int, n_classes: int = 5, **hyperparameters: Any):
        super().__init__()
        hp = init_tagger(self, n_particles, n_features, n_classes, hyperparameters)
        if int(hp["n_layers"]) < 1:
            raise JetlabError("garnet: n_layers must be >= 1")
        widths = [self.n_features] + [int(hp["layer_width"])] * int(hp["n_layers"])
        self.layers = nn.ModuleList(
            GarNetLayer(a, b, n_aggregators=hp["n_aggregators"], n_filters=hp["n_filters"],
                        activation=hp["activation"], potential=hp["potential"])
            for a, b in zip(widths[:-1], widths[1:])
        )
        self.head = MLP([widths[-1], int(hp["head_hidden"]), self.n_classes], hp["head_activation"])

    @classmethod
    def default_hyperparameters(cls, n_particles: int) -> dict[str, Any]:
        return {"n_layers": 3, "n_aggregators": 4, "n_filters": 16, "layer_width": 32,
                "activation": "tanh", "potential": "gaussian", "head_hidden": 32, "head_activation": "relu"}

    def forward(self, particles: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, N, _ = particles.shape
        if mask is None:
            mask = torch.ones(B, N, dtype=torch.bool, device=particles.device)
        h = torch.where(mask.unsqueeze(-1), particles, 0.0)
        for layer in self.layers:
            h = layer(h, mask)
        n_real = mask.sum(dim=1, keepdim=True).clamp(min=1).to(h.dtype)
        return self.head(h.sum(dim=1) / n_real)  # padded rows of h are 0
