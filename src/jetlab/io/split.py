"""The one train/validation/test split every task uses (taggers and generators alike): a
permutation seeded by ``seed`` cut at the cumulative ``fractions``, so a jet's part depends
only on the seed and the number of jets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["split_indices"]


def split_indices(n: int, fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the train, validation and test parts of ``n`` items (a seeded permutation)."""
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
