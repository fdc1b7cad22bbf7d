"""The sparsity of a tagger model file; the weight matrices it counts and the exact-zero
count are :mod:`jetlab.models.weights`."""

from __future__ import annotations

import os

from jetlab.models.weights import count_zeros, prunable_weights
from jetlab.training.tagger import load_tagger

__all__ = ["model_file_sparsity"]


def model_file_sparsity(path: str | os.PathLike) -> dict:
    """:func:`~jetlab.models.weights.count_zeros` of the weight matrices stored in a tagger model
    file (RUN/model.pt or RUN), finished run or not (a prune run counts its own model.pt before it
    marks itself finished)."""
    model, info = load_tagger(path, finished_only=False)
    return count_zeros(info["state_dict"], [name for name, _, _ in prunable_weights(model)])
