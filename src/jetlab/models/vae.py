"""Variational autoencoder for point sets, trained with the nearest-neighbour-distance loss.

A set VAE (Kingma & Welling, arXiv:1312.6114) whose encoder reads a masked set of N points
with D features each and whose decoder emits a fixed-size set (docs: Sparse-event generation):

* **encoder** ``"interaction"``: one interaction-network block (Battaglia et al.
  arXiv:1612.00222, as in JEDI-net): ``e_rs = f_R([x_r; x_s])`` on every pair of real points
  r != s, ``ē_r`` = mean over s, ``p_r = f_O([x_r; ē_r])``
  (:class:`~jetlab.models.mpgan.MessagePassingLayer`), then a second, residual
  message-passing layer of the same form on the p_r;
  **encoder** ``"deepset"``: ``p_r = φ(x_r)`` (Zaheer et al. arXiv:1703.06114).
  Both pool masked mean and max over the real points and map them with ρ to
  ``(mu, logvar)`` of the latent ``z`` (B, latent_dim). Padded points never enter.
* **decoder** ``"mlp"``: ``z -> MLP -> (B, N, D')``; ``"pointwise"``: a shared MLP on
  ``[z; e_i]`` for N learned point embeddings e_i. D' = D, or D + 1 with ``existence=True``.
* **loss**: :func:`jetlab.losses.vae.vae_loss` (NND + β KL, optional jet-mass and jet-pT terms,
  existence term).

Which generated points are real (``existence``):

* ``existence=False`` (default): every generated set has all N points. Right when the
  training sets are (nearly) always full: sparse MNIST with 100 brightest pixels, jets with
  30 particles at 1 TeV. NND then compares the N generated points to the real points of x.
* ``existence=True``: the decoder adds an existence logit per point (the last output
  column). In the loss, the ``n`` points with the largest logits (n = real points of x)
  are the generated set for the NND, and the logits sorted in decreasing order are trained
  with binary cross-entropy towards ``n`` ones followed by zeros (order-free count loss).
  When sampling, a point is real when its logit > 0.

Output activations as in :mod:`jetlab.models.mpgan` (``OUTPUT_PRESETS``: ``"mnist"`` =
(none, none, sigmoid), ``"jets"`` = (none, none, softplus)); they assume raw features.

Shapes: x (B, N, D), mask (B, N) bool; ``forward`` -> recon (B, N, D'), mu, logvar
(B, latent_dim); ``sample(n)`` -> (n, N, D).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from jetlab.models.mpgan import (
    MessagePassingLayer,
    _resolve_activations,
    _zero_padding,
    apply_output_activation,
    masked_mean_max,
)

__all__ = ["ENCODERS", "DECODERS", "SetVAE"]

ENCODERS = ("interaction", "deepset")
DECODERS = ("mlp", "pointwise")


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class _DeepSetEncoder(nn.Module):
    def __init__(self, n_features: int, hidden: int):
        super().__init__()
        self.phi = _mlp([n_features, hidden, hidden, hidden])

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return _zero_padding(self.phi(x), mask)


class _InteractionEncoder(nn.Module):
    def __init__(self, n_features: int, hidden: int):
        super().__init__()
        self.interaction = MessagePassingLayer(n_features, hidden, hidden, residual=False)
        self.refine = MessagePassingLayer(hidden, hidden, hidden)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return self.refine(self.interaction(x, mask), mask)


class SetVAE(nn.Module):
    """Set VAE (Kingma & Welling, arXiv:1312.6114; module docstring): masked point set ->
    latent z -> fixed-size set.

    Args:
        n_points: N, points per generated set.
        n_features: D, features per point.
        latent_dim: size of z.
        encoder: ``"interaction"`` (pairwise messages, O(N²)) or ``"deepset"`` (O(N)).
        decoder: ``"mlp"`` or ``"pointwise"`` (module docstring).
        hidden: width of all hidden layers.
        output_activation: a name, a preset (``"mnist"``, ``"jets"``) or one per feature.
        existence: also predict which of the N points exist (module docstring).
    """

    def __init__(self, n_points: int, n_features: int, latent_dim: int = 32, *, encoder: str = "interaction",
                 decoder: str = "mlp", hidden: int = 64, output_activation: str | Sequence[str] = "none",
                 existence: bool = False):
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        self.n_points = n_points
        self.n_features = n_features
        self.latent_dim = latent_dim
        self.encoder_kind = encoder
        self.decoder_kind = decoder
        self.existence = existence
        self.output_activations = _resolve_activations(output_activation, n_features)
        self.out_features = n_features + int(existence)

        self.point_encoder = (_InteractionEncoder if encoder == "interaction" else _DeepSetEncoder)(n_features, hidden)
        self.rho = _mlp([2 * hidden, hidden, 2 * latent_dim])
        if decoder == "mlp":
            self.decoder = _mlp([latent_dim, hidden, 2 * hidden, n_points * self.out_features])
        else:
            self.point_embedding = nn.Parameter(torch.randn(n_points, hidden) * 0.5)
            self.decoder = _mlp([latent_dim + hidden, hidden, hidden, self.out_features])

    def encode(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (B, N_x, D), mask (B, N_x) -> (mu, logvar), each (B, latent_dim)."""
        x = _zero_padding(x, mask)
        pooled = masked_mean_max(self.point_encoder(x, mask), mask)
        mu, logvar = self.rho(pooled).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """z (B, latent_dim) -> (B, N, D), or (B, N, D + 1) with the existence logit last."""
        if self.decoder_kind == "mlp":
            raw = self.decoder(z).view(z.shape[0], self.n_points, self.out_features)
        else:
            embedding = self.point_embedding.unsqueeze(0).expand(z.shape[0], -1, -1)
            raw = self.decoder(torch.cat([z.unsqueeze(1).expand(-1, self.n_points, -1), embedding], dim=-1))
        points = apply_output_activation(raw[..., : self.n_features], self.output_activations)
        if self.existence:
            return torch.cat([points, raw[..., self.n_features :]], dim=-1)
        return points

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Encode, draw z (sampled in training mode, ``z = mu`` in eval mode) and decode.

        Args:
            x: point sets.
            mask: which points are real (``None``: all).

        Returns:
            ``(recon, mu, logvar)``: the decoded set (with the existence logit as the last
            feature when ``existence``), the mean and log-variance of z.

        Shapes:
            - x: ``(batch, points, n_features)``
            - mask: ``(batch, points)`` bool
            - recon: ``(batch, n_points, n_features)``, ``(batch, n_points, n_features + 1)``
              with ``existence``
            - mu, logvar: ``(batch, latent_dim)``
        """
        mu, logvar = self.encode(x, mask)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decode(z), mu, logvar

    def split_output(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder output -> (points (B, N, D) with non-existing rows zeroed, mask (B, N))."""
        if not self.existence:
            return out, torch.ones(out.shape[:2], dtype=torch.bool, device=out.device)
        mask = out[..., -1] > 0
        return _zero_padding(out[..., :-1], mask), mask

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *, return_mask: bool = False):
        """Decode ``n`` draws of z ~ N(0, 1): points (n, N, D) (and the (n, N) mask)."""
        device = self.rho[0].weight.device
        z = torch.randn((n, self.latent_dim), generator=generator,
                        device=generator.device if generator is not None else device).to(device)
        points, mask = self.split_output(self.decode(z))
        return (points, mask) if return_mask else points
