"""Fully connected tagger on the 16 high-level jet features (the hls4ml benchmark net).

Duarte et al., arXiv:1804.06913 (and the JEDI-net paper's DNN baseline)::

    logits = W_4 σ(W_3 σ(W_2 σ(W_1 h + b_1) + b_2) + b_3) + b_4,   16 -> 64 -> 32 -> 32 -> 5

Input: ``hlf (B, 16)`` standardised high-level features. Output: logits ``(B, n_classes)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from jetlab.models._mlp import MLP, Tagger, init_tagger

__all__ = ["DNNTagger"]


class DNNTagger(Tagger):
    """MLP ``n_features -> hidden... -> n_classes`` on the high-level features
    (Duarte et al., arXiv:1804.06913).

    Args:
        n_particles: particles per jet of the data set (kept in ``hparams``; the DNN reads
            the jet-level features only).
        n_features: high-level features per jet (16 in the hls4ml set).
        n_classes: output classes.
        hidden: widths of the hidden layers.
        activation: activation after every hidden layer (a name of
            :data:`~jetlab.models._mlp.ACTIVATIONS`).
        dropout: dropout probability after every hidden activation (0: none).
    """

    name = "dnn"
    input_keys = ("hlf",)

    def __init__(self, n_particles: int, n_features: int, n_classes: int = 5, *,
                 hidden: Sequence[int] = (64, 32, 32), activation: str = "relu", dropout: float = 0.0):
        super().__init__()
        hp = init_tagger(self, n_particles, n_features, n_classes, hidden=hidden, activation=activation,
                         dropout=dropout)
        hp["hidden"] = self.hparams["hidden"] = [int(h) for h in hp["hidden"]]
        self.mlp = MLP([self.n_features, *hp["hidden"], self.n_classes], hp["activation"])
        self.dropout = nn.Dropout(float(hp["dropout"])) if hp["dropout"] else None

    def forward(self, hlf: torch.Tensor) -> torch.Tensor:
        """Class logits of a batch of jets.

        Args:
            hlf: standardised high-level features.

        Returns:
            Logits (not probabilities).

        Shapes:
            - hlf: ``(batch, n_features)``
            - returns: ``(batch, n_classes)``
        """
        if self.dropout is None:
            return self.mlp(hlf)
        h = hlf
        for layer in self.mlp.layers[:-1]:
            h = self.dropout(self.mlp._act(layer(h), True))
        return self.mlp.layers[-1](h)
