"""Message-passing GAN for point sets (MPGAN; Kansal et al., arXiv:2106.11535).

Both networks treat a set of N points as a fully connected graph and stack
:class:`MessagePassingLayer` s. One layer, for receiver i and sender j (i != j, both real):

.. math::

    m_{ij} = f_e([h_i; h_j; d_{ij}]), \\qquad
    \\bar m_i = \\frac{1}{|\\mathcal N(i)|} \\sum_{j \\in \\mathcal N(i)} m_{ij}, \\qquad
    h_i' = h_i + f_n([h_i; \\bar m_i])

(mean aggregation; residual when the width is unchanged). ``d_ij`` are optional edge
features, here the Euclidean distance between the points' coordinates. The first layer of
f_e is computed per point (``W[h_i; h_j] = W_r h_i + W_s h_j``) and broadcast over the pair
grid, so the (B, N, N, hidden) tensor is built once per layer; cost O(B N^2 hidden).

* :class:`MPGenerator`: per-point Gaussian noise z (B, N, latent) -> Linear -> L
  message-passing layers -> Linear -> (B, N, D), with a per-feature output activation.
  Equivariant: permuting the noise points permutes the output points.
* :class:`MPDiscriminator`: (B, N, D) + mask -> Linear -> L message-passing layers (edge
  feature: distance in the first ``n_coords`` features) -> masked mean and max pooling ->
  MLP -> one logit per set (B,). Invariant to point order and to the values of padded points.

Output activations (``output_activation``, one name per feature or one for all):
``"none"`` for coordinates (x, y or eta_rel, phi_rel), ``"sigmoid"`` for MNIST intensity in
[0, 1], ``"softplus"`` for a positive pT_rel (see :data:`OUTPUT_PRESETS`). They assume the
raw (not standardised) features.

Set sizes: the generator makes N points; a variable multiplicity is handled as in MPGAN by
sampling the number of real points from the training data (``counts``) and masking the rest
(the masked points take no part in message passing and are returned as zeros).

Sizes: the defaults (hidden 32, 2 message-passing layers) are chosen to train on a CPU;
the pair grid makes the cost grow as N^2 hidden (and faster on CPU once the grid leaves the
cache): one discriminator forward + backward on 32 MNIST superpixel sets (N = 75), one
thread, takes ~0.23 s at hidden 32 and ~1.2 s at hidden 64. The MPGAN paper's larger
networks are a GPU setting.

Losses: :mod:`jetlab.losses.gan`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "OUTPUT_PRESETS",
    "MessagePassingLayer",
    "MPDiscriminator",
    "MPGenerator",
    "apply_output_activation",
    "masked_mean_max",
]

#: per-feature output activations for the two data families jetlab generates
OUTPUT_PRESETS: dict[str, tuple[str, ...]] = {
    "mnist": ("none", "none", "sigmoid"),   # (x, y, intensity in [0, 1])
    "jets": ("none", "none", "softplus"),   # (eta_rel, phi_rel, pT_rel > 0)
}

_OUTPUT_ACTIVATIONS = {
    "none": lambda x: x,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "tanh": torch.tanh,
}


def _leaky(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)


def _resolve_activations(output_activation: str | Sequence[str], n_features: int) -> tuple[str, ...]:
    if isinstance(output_activation, str):
        names = OUTPUT_PRESETS.get(output_activation, (output_activation,) * n_features)
    else:
        names = tuple(output_activation)
    if len(names) != n_features:
        raise ValueError(f"need {n_features} output activations, got {len(names)}: {names}")
    unknown = [n for n in names if n not in _OUTPUT_ACTIVATIONS]
    if unknown:
        raise ValueError(f"unknown output activation(s) {unknown}; known: {', '.join(_OUTPUT_ACTIVATIONS)} "
                         f"or a preset {', '.join(OUTPUT_PRESETS)}")
    return names


def apply_output_activation(x: Tensor, names: Sequence[str]) -> Tensor:
    """Apply ``names[k]`` to feature column k of ``x``.

    Args:
        x: generated points.
        names: one output activation per feature (``"none"``, ``"sigmoid"``, ``"softplus"``,
            ``"tanh"``).

    Returns:
        ``x`` with every column activated.

    Shapes:
        - x, returns: ``(..., features)``, ``len(names) == features``
    """
    if all(n == "none" for n in names):
        return x
    return torch.stack([_OUTPUT_ACTIVATIONS[n](x[..., k]) for k, n in enumerate(names)], dim=-1)


def masked_mean_max(h: Tensor, mask: Tensor | None) -> Tensor:
    """Concatenated mean and max over the real points. A set with no real point pools to zeros.

    Args:
        h: point features.
        mask: which points are real (``None``: all).

    Returns:
        ``[mean; max]`` of every set.

    Shapes:
        - h: ``(batch, points, hidden)``
        - mask: ``(batch, points)`` bool
        - returns: ``(batch, 2 * hidden)``
    """
    if mask is None:
        return torch.cat([h.mean(1), h.amax(1)], dim=-1)
    weight = mask.unsqueeze(-1).to(h.dtype)
    count = weight.sum(1).clamp_min(1.0)
    mean = (h * weight).sum(1) / count
    maximum = h.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
    maximum = torch.where(mask.any(1, keepdim=True), maximum, torch.zeros_like(maximum))
    return torch.cat([mean, maximum], dim=-1)


def _zero_padding(x: Tensor, mask: Tensor | None) -> Tensor:
    # torch.where, not multiplication: padded NaN/inf must not leak into the sums
    return x if mask is None else torch.where(mask.unsqueeze(-1), x, torch.zeros_like(x))


class MessagePassingLayer(nn.Module):
    """Fully connected, mask-aware message passing (Kansal et al., arXiv:2106.11535; module
    docstring for the equation).

    Args:
        in_dim: features per input point.
        out_dim: features per output point (residual when equal to ``in_dim``).
        hidden: width of the edge and node networks.
        edge_features: features per pair in ``edge_attr`` (0: none).
        aggregation: ``"mean"`` or ``"sum"`` over the real senders j != i.
        residual: add the input to the output (when the widths agree).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int, *, edge_features: int = 0,
                 aggregation: str = "mean", residual: bool = True):
        super().__init__()
        if aggregation not in ("mean", "sum"):
            raise ValueError(f"aggregation must be 'mean' or 'sum', got {aggregation!r}")
        self.aggregation = aggregation
        self.residual = residual and in_dim == out_dim
        self.edge_receiver = nn.Linear(in_dim, hidden)
        self.edge_sender = nn.Linear(in_dim, hidden, bias=False)
        self.edge_attr = nn.Linear(edge_features, hidden, bias=False) if edge_features else None
        self.edge_out = nn.Linear(hidden, hidden)
        self.node_hidden = nn.Linear(in_dim + hidden, hidden)
        self.node_out = nn.Linear(hidden, out_dim)

    def forward(self, h: Tensor, mask: Tensor | None = None, edge_attr: Tensor | None = None) -> Tensor:
        """One round of messages between all real points.

        Args:
            h: point features.
            mask: which points are real (``None``: all).
            edge_attr: pair features ``d_ij`` (needed when built with ``edge_features``).

        Returns:
            The new point features ``h'``, padded rows 0.

        Shapes:
            - h: ``(batch, points, in_dim)``
            - mask: ``(batch, points)`` bool
            - edge_attr: ``(batch, points, points, edge_features)``
            - returns: ``(batch, points, out_dim)``
        """
        batch, n, _ = h.shape
        pre = self.edge_receiver(h).unsqueeze(2) + self.edge_sender(h).unsqueeze(1)  # (B, N_r, N_s, H)
        # in-place on fresh pair-grid temporaries (none is saved for backward): each (B, N, N, H)
        # allocation costs page faults on CPU, so the grid is allocated 3 times per layer, not 6
        if self.edge_attr is not None:
            if edge_attr is None:
                raise ValueError("this layer was built with edge features; pass edge_attr")
            if edge_attr.shape[-1] == 1:
                pre = pre.addcmul_(edge_attr, self.edge_attr.weight[:, 0])
            else:
                pre = pre + self.edge_attr(edge_attr)
        messages = F.leaky_relu(self.edge_out(F.leaky_relu(pre, 0.2, inplace=True)), 0.2, inplace=True)
        edges = ~torch.eye(n, dtype=torch.bool, device=h.device).unsqueeze(0)          # (1, N, N)
        if mask is not None:
            edges = edges & mask.unsqueeze(2) & mask.unsqueeze(1)
        weight = edges.to(h.dtype).unsqueeze(-1)
        aggregated = (messages * weight).sum(2)
        if self.aggregation == "mean":
            aggregated = aggregated / weight.sum(2).clamp_min(1.0)
        out = self.node_out(_leaky(self.node_hidden(torch.cat([h, aggregated], dim=-1))))
        if self.residual:
            out = h + out
        return _zero_padding(out, mask)


class MPGenerator(nn.Module):
    """MPGAN generator (Kansal et al., arXiv:2106.11535): per-point noise -> point set.

    Args:
        n_points: N, points per generated set.
        n_features: D, features per point.
        latent_dim: noise values per point.
        hidden: node and edge width of the message-passing layers.
        n_layers: message-passing layers.
        output_activation: a name, a preset of :data:`OUTPUT_PRESETS` or one name per feature.
    """

    def __init__(self, n_points: int, n_features: int, latent_dim: int = 32, *, hidden: int = 32,
                 n_layers: int = 2, output_activation: str | Sequence[str] = "none"):
        super().__init__()
        self.n_points = n_points
        self.n_features = n_features
        self.latent_dim = latent_dim
        self.output_activations = _resolve_activations(output_activation, n_features)
        self.embed = nn.Linear(latent_dim, hidden)
        self.layers = nn.ModuleList(MessagePassingLayer(hidden, hidden, hidden) for _ in range(n_layers))
        self.head = nn.Linear(hidden, n_features)

    def forward(self, z: Tensor, mask: Tensor | None = None) -> Tensor:
        """Point sets from noise.

        Args:
            z: per-point Gaussian noise.
            mask: which points are real (``None``: all).

        Returns:
            The generated points, masked rows 0.

        Shapes:
            - z: ``(batch, n_points, latent_dim)``
            - mask: ``(batch, n_points)`` bool
            - returns: ``(batch, n_points, n_features)``
        """
        h = _zero_padding(self.embed(z), mask)
        for layer in self.layers:
            h = layer(h, mask)
        return _zero_padding(apply_output_activation(self.head(h), self.output_activations), mask)

    def sample(self, n: int, generator: torch.Generator | None = None, *, counts: Tensor | None = None,
               return_mask: bool = False):
        """``n`` generated sets (n, N, n_features). ``counts`` (n,) real points per set (e.g.
        drawn from the training multiplicities): the first ``counts[k]`` points of set k are
        real, the others masked. With ``return_mask`` also returns the (n, N) bool mask."""
        device = self.head.weight.device
        z = torch.randn((n, self.n_points, self.latent_dim), generator=generator,
                        device=generator.device if generator is not None else device).to(device)
        mask = None
        if counts is not None:
            mask = torch.arange(self.n_points, device=device).unsqueeze(0) < counts.to(device).unsqueeze(1)
        points = self(z, mask)
        if return_mask:
            return points, mask if mask is not None else torch.ones(points.shape[:2], dtype=torch.bool, device=device)
        return points


class MPDiscriminator(nn.Module):
    """MPGAN discriminator (Kansal et al., arXiv:2106.11535): point sets -> one logit per set.

    Args:
        n_features: D, features per point.
        hidden: node and edge width of the message-passing layers.
        n_layers: message-passing layers.
        n_coords: the edge feature is the distance between the points' first ``n_coords``
            features (0: no edge feature).
    """

    def __init__(self, n_features: int, *, hidden: int = 32, n_layers: int = 2, n_coords: int = 2):
        super().__init__()
        if not 0 <= n_coords <= n_features:
            raise ValueError(f"n_coords must be in [0, {n_features}], got {n_coords}")
        self.n_coords = n_coords
        self.embed = nn.Linear(n_features, hidden)
        self.layers = nn.ModuleList(
            MessagePassingLayer(hidden, hidden, hidden, edge_features=1 if n_coords else 0)
            for _ in range(n_layers)
        )
        self.readout = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Real-vs-generated logits (invariant to point order and to padded values).

        Args:
            x: point sets.
            mask: which points are real (``None``: all).

        Returns:
            One logit per set.

        Shapes:
            - x: ``(batch, points, n_features)``
            - mask: ``(batch, points)`` bool
            - returns: ``(batch,)``
        """
        x = _zero_padding(x, mask)
        edge_attr = None
        if self.n_coords:
            coords = x[..., : self.n_coords]
            edge_attr = (coords.unsqueeze(2) - coords.unsqueeze(1)).square().sum(-1, keepdim=True)
            edge_attr = (edge_attr + 1e-12).sqrt()   # (B, N, N, 1); eps keeps the gradient finite at 0
        h = _zero_padding(self.embed(x), mask)
        for layer in self.layers:
            h = layer(h, mask, edge_attr)
        return self.readout(masked_mean_max(h, mask)).squeeze(-1)
