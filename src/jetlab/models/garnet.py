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

import torch
from torch import nn

from jetlab.errors import JetlabError
from jetlab.models._mlp import MLP, Tagger, activation_function, init_tagger

__all__ = ["GarNetLayer", "GarNetTagger"]

POTENTIALS = ("gaussian", "exponential")


class GarNetLayer(nn.Module):
    """One GarNet layer (Qasim et al., arXiv:1902.07987; module docstring).

    Args:
        in_features: F_in, features per input vertex.
        out_features: F_out, features per output vertex.
        n_aggregators: S, learned aggregators.
        n_filters: F, learned vertex features sent to the aggregators.
        activation: activation of the output.
        potential: ``"gaussian"`` (``exp(-d²)``) or ``"exponential"`` (``exp(-|d|)``, the paper's).
    """

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
        """The layer's output for every vertex (0 for padded ones).

        Args:
            x: vertex features.
            mask: which vertices are real.

        Returns:
            The new vertex features ``y_v``.

        Shapes:
            - x: ``(batch, vertices, in_features)``
            - mask: ``(batch, vertices)`` bool
            - returns: ``(batch, vertices, out_features)``
        """
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


class GarNetTagger(Tagger):
    """GarNet jet tagger (Qasim et al., arXiv:1902.07987): ``n_layers`` :class:`GarNetLayer` s,
    masked mean pooling, MLP head ``layer_width -> head_hidden -> n_classes``.

    Args:
        n_particles: particles per jet of the data set (GarNet takes any count).
        n_features: features per particle.
        n_classes: output classes.
        n_layers: GarNet layers.
        n_aggregators: S, aggregators per layer.
        n_filters: F, vertex features sent to the aggregators.
        layer_width: F_out, output features of every layer.
        activation: activation of the layers.
        potential: ``"gaussian"`` (``exp(-d²)``) or ``"exponential"`` (``exp(-|d|)``).
        head_hidden: width of the hidden layer of the head.
        head_activation: activation of the head.
    """

    name = "garnet"
    input_keys = ("particles", "mask")

    def __init__(self, n_particles: int, n_features: int, n_classes: int = 5, *, n_layers: int = 3,
                 n_aggregators: int = 4, n_filters: int = 16, layer_width: int = 32, activation: str = "tanh",
                 potential: str = "gaussian", head_hidden: int = 32, head_activation: str = "relu"):
        super().__init__()
        hp = init_tagger(self, n_particles, n_features, n_classes, n_layers=n_layers, n_aggregators=n_aggregators,
                         n_filters=n_filters, layer_width=layer_width, activation=activation, potential=potential,
                         head_hidden=head_hidden, head_activation=head_activation)
        if int(hp["n_layers"]) < 1:
            raise JetlabError("garnet: n_layers must be >= 1")
        widths = [self.n_features] + [int(hp["layer_width"])] * int(hp["n_layers"])
        self.layers = nn.ModuleList(
            GarNetLayer(a, b, n_aggregators=hp["n_aggregators"], n_filters=hp["n_filters"],
                        activation=hp["activation"], potential=hp["potential"])
            for a, b in zip(widths[:-1], widths[1:])
        )
        self.head = MLP([widths[-1], int(hp["head_hidden"]), self.n_classes], hp["head_activation"])

    def forward(self, particles: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits of a batch of jets.

        Args:
            particles: particle features.
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
        h = torch.where(mask.unsqueeze(-1), particles, 0.0)
        for layer in self.layers:
            h = layer(h, mask)
        n_real = mask.sum(dim=1, keepdim=True).clamp(min=1).to(h.dtype)
        return self.head(h.sum(dim=1) / n_real)  # padded rows of h are 0
