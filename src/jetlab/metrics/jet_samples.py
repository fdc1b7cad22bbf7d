"""What the generation metrics share: validated jet samples and bootstrap batches.

Jets are particle arrays ``(N, P, 3)`` of (η_rel, φ_rel, pT_rel) with an optional boolean mask
``(N, P)``, or ``(N, P, 4)`` with the mask as the 4th column (see :mod:`jetlab.metrics.generation`).
A metric is reported as the mean ± std (:class:`Score`) over ``num_batches`` batches of
``num_eval_samples`` jets drawn from each sample.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jetlab.errors import JetlabError

__all__ = ["Score", "as_particles", "check_nonnegative_pt", "draw", "eval_size", "matmul", "score",
           "to_numpy"]

#: fewest jets of each sample the classifier two-sample test takes (half to train, half to score)
CLASSIFIER_MIN_JETS = 4


class Score(NamedTuple):
    """Mean and standard deviation of a metric over its bootstrap batches."""

    mean: float
    std: float


# ------------------------------------------------------------------------------ inputs


def as_particles(jets, mask=None, name: str = "jets") -> tuple[np.ndarray, np.ndarray]:
    """Validate a jet sample: particles with masked rows zeroed, and their mask.

    An explicit ``mask`` takes precedence over a mask column (real: ≥ 0.5); without either,
    the particles with a non-zero feature are real.

    Args:
        jets: (η_rel, φ_rel, pT_rel) particles, numpy or torch, optionally with a mask column.
        mask: which particles are real.
        name: what the errors call the sample.

    Returns:
        ``(particles, mask)``: float64 particles with padded rows 0 and the bool mask.

    Raises:
        JetlabError: a wrong shape, a mask that does not match, NaN or infinity.

    Shapes:
        - jets: ``(jets, particles, 3)`` or ``(jets, particles, 4)``
        - mask: ``(jets, particles)`` or ``(jets, particles, 1)``
        - returns: ``(jets, particles, 3)`` and ``(jets, particles)``
    """
    jets = to_numpy(jets)
    if jets.ndim != 3 or jets.shape[2] not in (3, 4):
        raise JetlabError(f"{name}: expected particles of shape (N, P, 3) or (N, P, 4 with mask), "
                          f"got {tuple(jets.shape)}")
    if mask is not None:
        mask = to_numpy(mask)
        if mask.size != jets.shape[0] * jets.shape[1]:
            raise JetlabError(f"{name}: mask of shape {tuple(mask.shape)} does not match "
                              f"particles {tuple(jets.shape)}")
        mask = mask.reshape(jets.shape[:2]).astype(bool)
    elif jets.shape[2] == 4:
        mask = jets[..., 3] >= 0.5
    particles = np.array(jets[..., :3], dtype=np.float64)
    if mask is None:
        mask = np.any(particles != 0, axis=-1)
    if not np.all(np.isfinite(particles[mask])):
        raise JetlabError(f"{name}: particle features contain NaN or infinity")
    particles[~mask] = 0.0
    return particles, mask


def to_numpy(array) -> np.ndarray:
    """A numpy view or copy of a numpy array, torch tensor (detached, on the CPU) or sequence.

    Args:
        array: the array.

    Returns:
        The numpy array.

    Shapes:
        - array, returns: any, the same
    """
    if hasattr(array, "detach"):  # torch tensor
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def check_nonnegative_pt(particles: np.ndarray, name: str) -> None:
    """Refuse particles with negative pT_rel (the EMD weights them by pT).

    Args:
        particles: (η_rel, φ_rel, pT_rel) particles.
        name: what the error calls the sample.

    Raises:
        JetlabError: how many particles have pT_rel < 0.

    Shapes:
        - particles: ``(jets, particles, ≥3)``
    """
    negative = int(np.sum(particles[..., 2] < 0))
    if negative:
        raise JetlabError(f"{name}: {negative} particles have negative pT_rel; the EMD needs "
                          "non-negative weights (zero or mask them first)")


def draw(rng: np.random.Generator, n: int, size: int, replace: bool) -> np.ndarray:
    """Indices of one bootstrap batch.

    Args:
        rng: the random generator.
        n: size of the sample drawn from.
        size: indices to draw.
        replace: with replacement (else a random subset, ``size <= n``).

    Returns:
        Indices into the sample.

    Shapes:
        - returns: ``(size,)``
    """
    if replace:
        return rng.integers(0, n, size=size)
    return rng.permutation(n)[:size]


def eval_size(n_real: int, n_gen: int, num_eval_samples: int | None) -> int:
    """Jets per bootstrap batch: ``num_eval_samples`` capped at the smaller sample.

    Args:
        n_real: jets in the real sample.
        n_gen: jets in the generated sample.
        num_eval_samples: the wanted batch size (``None``: as many as the smaller sample).

    Returns:
        The batch size.

    Raises:
        JetlabError: a sample without jets.
    """
    if n_real == 0 or n_gen == 0:
        raise JetlabError(f"need jets in both samples, got {n_real} real and {n_gen} generated")
    available = min(n_real, n_gen)
    return available if num_eval_samples is None else min(int(num_eval_samples), available)


def score(values: np.ndarray) -> Score:
    """Mean and (population) standard deviation of a metric's per-batch values.

    Args:
        values: one value per batch.

    Returns:
        The :class:`Score`.

    Shapes:
        - values: ``(batches,)``
    """
    return Score(float(np.mean(values)), float(np.std(values)))


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` of float64 numpy arrays by torch, whose BLAS measured 4–20x faster than numpy's
    on these machines for the metrics' shapes (50,000 x 36 covariances, 5,000 x 5,000
    kernels, 150 x 150 EFP matrices); same values to round-off.

    Args:
        a: the left matrix (or batch of matrices).
        b: the right matrix (or batch of matrices).

    Returns:
        The product, float64.

    Shapes:
        - a: ``(n, k)`` or ``(batch, n, k)``
        - b: ``(k, m)`` or ``(batch, k, m)``
        - returns: ``(n, m)`` or ``(batch, n, m)``
    """
    import torch

    return torch.matmul(torch.from_numpy(np.ascontiguousarray(a)),
                        torch.from_numpy(np.ascontiguousarray(b))).numpy()
