"""Fully connected tagger on the 16 high-level jet features (the hls4ml benchmark net).

Duarte et al., arXiv:1804.06913 (and the JEDI-net paper's DNN baseline)::

    logits = W_4 σ(W_3 σ(W_2 σ(W_1 h + b_1) + b_2) + b_3) + b_4,   16 -> 64 -> 32 -> 32 -> 5

Input: ``hlf (B, 16)`` standardised high-level features. Output: logits ``(B, n_classes)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from jetlab.models._mlp import MLP, init_tagger

__all__ = ["DNNTagger"]


class DNNTagger(nn.Module):
    """MLP ``n_features -> hidden... -> n_classes``; hyperparameters ``hidden`` ((64, 32, 32)),
    ``activation`` ("relu"), ``dropout`` (0.0, after every hidden activation)."""

    name = "dnn"
    input_keys = ("hlf",)

    def __init__(self, n_particles: int, n_features: int, n_classes: int = 5, **hyperparameters: Any):
        super().__init__()
        hp = init_tagger(self, n_particles, n_features, n_classes, hyperparameters)
        hp["hidden"] = self.hparams["hidden"] = [int(h) for h in hp["hidden"]]
        self.mlp = MLP([self.n_features, *hp["hidden"], self.n_classes], hp["activation"])
        self.dropout = nn.Dropout(float(hp["dropout"])) if hp["dropout"] else None

    @classmethod
    def default_hyperparameters(cls, n_particles: int) -> dict[str, Any]:
        return {"hidden": [64, 32, 32], "activation": "relu", "dropout": 0.0}

    def forward(self, hlf: torch.Tensor) -> torch.Tensor:
        if self.dropout is None:
            return self.mlp(hlf)
        h = hlf
        for layer in self.mlp.layers[:-1]:
            h = self.dropout(self.mlp._act(layer(h), True))
        return self.mlp.layers[-1](h)
