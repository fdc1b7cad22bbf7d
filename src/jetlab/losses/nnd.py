"""Nearest-neighbour-distance (NND) loss between batched, masked point sets.

The symmetric set loss used to train point-set autoencoders and VAEs (a Chamfer distance
with squared Euclidean distances; docs: Formulas, "The NND loss"). For two sets of points
A and B with coordinates x:

.. math::

    L(A, B) = \\sum_{a \\in A} \\min_{b \\in B} \\lVert x_a - x_b \\rVert^2
            + \\sum_{b \\in B} \\min_{a \\in A} \\lVert x_a - x_b \\rVert^2 .

When the points also carry features α (``n_coords = k < D``: the first k columns are the
coordinates, the remaining D − k the features), nearest neighbours are found **by the
coordinates only**, and the feature mismatch to that neighbour is added with weight β:

.. math::

    L = \\sum_a \\lVert x_a - x_{k(a)} \\rVert^2 + \\sum_b \\lVert x_b - x_{k'(b)} \\rVert^2
      + \\beta \\Big[ \\sum_a \\lVert α_a - α_{k(a)} \\rVert^2
                    + \\sum_b \\lVert α_b - α_{k'(b)} \\rVert^2 \\Big],

    k(a) = \\arg\\min_{b} \\lVert x_a - x_b \\rVert, \\quad
    k'(b) = \\arg\\min_{a} \\lVert x_a - x_b \\rVert .

Shapes: ``a`` (B, N, D), ``b`` (B, M, D), ``mask_a`` (B, N) bool, ``mask_b`` (B, M) bool
(True = real point). Padded (masked) points are never anybody's neighbour and contribute
nothing. The per-set loss has shape (B,); ``reduction="mean"`` averages it over the batch,
``"sum"`` sums it, ``"none"`` returns it.

Empty sets: a set pair with no real point on either side has loss 0; a pair with real points
on exactly one side has no nearest neighbours and raises ``ValueError`` naming the batch
index (an all-padding generated set is a bug upstream, not a large loss).

Implementation: neighbours are chosen on one (B, N, M) matrix of squared coordinate distances
computed without gradient (accumulated one coordinate at a time, exact, no (B, N, M, D)
tensor); the loss is then evaluated exactly on the gathered neighbours, so gradients flow to
both a point and the neighbour it was matched with (the derivative of the min is the
derivative of the selected term). Memory O(B·N·M + B·(N+M)·D).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["nnd_loss", "NNDLoss"]

_REDUCTIONS = ("mean", "sum", "none")
_MAX_LOOPED_COORDS = 16


def _check_inputs(a: Tensor, b: Tensor, mask_a: Tensor | None, mask_b: Tensor | None,
                  reduction: str, n_coords: int | None) -> int:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if a.dim() != 3 or b.dim() != 3:
        raise ValueError(f"a and b must be (B, N, D) and (B, M, D), got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(f"a {tuple(a.shape)} and b {tuple(b.shape)} must agree in batch "
                         "size and point dimension")
    dim = a.shape[2]
    k = dim if n_coords is None else int(n_coords)
    if not 1 <= k <= dim:
        raise ValueError(f"n_coords must be in [1, {dim}], got {n_coords}")
    for name, mask, points in (("mask_a", mask_a, a), ("mask_b", mask_b, b)):
        if mask is None:
            continue
        if mask.dtype != torch.bool:
            raise ValueError(f"{name} must be a bool tensor (True = real point), got {mask.dtype}")
        if tuple(mask.shape) != tuple(points.shape[:2]):
            raise ValueError(f"{name} must have shape {tuple(points.shape[:2])}, "
                             f"got {tuple(mask.shape)}")
    return k


def _squared_distances(coords_a: Tensor, coords_b: Tensor) -> Tensor:
    """Exact squared distances (B, N, M) between (B, N, k) and (B, M, k) coordinates.

    For few coordinates one broadcast difference per coordinate (fast elementwise kernels,
    no (B, N, M, k) tensor, no ``|x|² + |y|² - 2x·y`` cancellation); otherwise ``cdist`` in its
    exact (non-matmul) mode.
    """
    if coords_a.shape[-1] > _MAX_LOOPED_COORDS:
        return torch.cdist(coords_a, coords_b, compute_mode="donot_use_mm_for_euclid_dist").square()
    distance = (coords_a[..., 0, None] - coords_b[..., None, :, 0]).square()
    for c in range(1, coords_a.shape[-1]):
        distance += (coords_a[..., c, None] - coords_b[..., None, :, c]).square()
    return distance


def _nearest_term(points: Tensor, neighbours: Tensor, index: Tensor, k: int, beta: float
                  ) -> Tensor:
    """Per-point ``|x - x_nn|² + beta |α - α_nn|²`` with ``nn = neighbours[index]``.

    points (B, N, D), neighbours (B, M, D), index (B, N) int64 -> (B, N).
    """
    chosen = torch.gather(neighbours, 1, index.unsqueeze(-1).expand(-1, -1, points.shape[2]))
    squared = (points - chosen).square()
    term = squared[..., :k].sum(-1)
    if k < points.shape[2]:
        term = term + beta * squared[..., k:].sum(-1)
    return term


def nnd_loss(a: Tensor, b: Tensor, mask_a: Tensor | None = None, mask_b: Tensor | None = None,
             reduction: str = "mean", *, n_coords: int | None = None, beta: float = 1.0
             ) -> Tensor:
    """Symmetric nearest-neighbour distance between point sets ``a`` and ``b``.

    Args:
        a: (B, N, D) points of the first sets.
        b: (B, M, D) points of the second sets.
        mask_a: optional (B, N) bool, True for real points of ``a`` (default: all real).
        mask_b: optional (B, M) bool, True for real points of ``b`` (default: all real).
        reduction: ``"mean"`` (batch mean of the per-set sums), ``"sum"`` or ``"none"``
            (returns the (B,) per-set losses).
        n_coords: number of leading columns used as coordinates to find the nearest
            neighbours; the remaining ``D - n_coords`` columns are features compared to the
            neighbour's with weight ``beta``. Default: all D columns are coordinates.
        beta: weight of the feature term (unused when ``n_coords`` is None or D).

    Returns:
        A scalar for ``"mean"``/``"sum"``, shape (B,) for ``"none"``.

    Raises:
        ValueError: bad shapes/arguments, or a set pair with real points on one side only.
    """
    k = _check_inputs(a, b, mask_a, mask_b, reduction, n_coords)
    batch, n_a, n_b = a.shape[0], a.shape[1], b.shape[1]
    if mask_a is not None or mask_b is not None or n_a == 0 or n_b == 0:
        has_a = mask_a.any(1) if mask_a is not None else torch.full(
            (batch,), n_a > 0, dtype=torch.bool, device=a.device)
        has_b = mask_b.any(1) if mask_b is not None else torch.full(
            (batch,), n_b > 0, dtype=torch.bool, device=b.device)
        one_sided = has_a ^ has_b
        if bool(one_sided.any()):
            index = int(one_sided.nonzero()[0, 0])
            side = "b" if bool(has_a[index]) else "a"
            raise ValueError(f"nnd_loss: set {index} of {side!r} has no real points while the "
                             "other set has some; nearest neighbours are undefined")

    if n_a == 0 or n_b == 0:
        per_set = a.sum((1, 2)) * 0.0 + b.sum((1, 2)) * 0.0  # zeros that keep the graph
    else:
        with torch.no_grad():
            distance = _squared_distances(a[..., :k].detach(), b[..., :k].detach())  # (B, N, M)
            if mask_b is not None:
                distance = distance.masked_fill(~mask_b.unsqueeze(1), float("inf"))
            nearest_in_b = distance.argmin(2)                                    # (B, N)
            if mask_a is not None:
                distance = distance.masked_fill(~mask_a.unsqueeze(2), float("inf"))
            nearest_in_a = distance.argmin(1)                                    # (B, M)

        term_a = _nearest_term(a, b, nearest_in_b, k, beta)
        term_b = _nearest_term(b, a, nearest_in_a, k, beta)
        if mask_a is not None:
            term_a = term_a.masked_fill(~mask_a, 0.0)
        if mask_b is not None:
            term_b = term_b.masked_fill(~mask_b, 0.0)
        per_set = term_a.sum(1) + term_b.sum(1)

    if reduction == "none":
        return per_set
    if reduction == "sum":
        return per_set.sum()
    return per_set.mean()


class NNDLoss(nn.Module):
    """Module form of :func:`nnd_loss`: ``NNDLoss(reduction, n_coords, beta)(a, b, mask_a,
    mask_b)``. Shapes as in :func:`nnd_loss`."""

    def __init__(self, reduction: str = "mean", *, n_coords: int | None = None,
                 beta: float = 1.0):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.n_coords = n_coords
        self.beta = float(beta)

    def forward(self, a: Tensor, b: Tensor, mask_a: Tensor | None = None,
                mask_b: Tensor | None = None) -> Tensor:
        return nnd_loss(a, b, mask_a, mask_b, self.reduction, n_coords=self.n_coords,
                        beta=self.beta)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, n_coords={self.n_coords}, beta={self.beta}"
