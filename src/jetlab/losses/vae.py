"""The set-VAE loss (Kingma & Welling arXiv:1312.6114; the NND reconstruction term of
:mod:`jetlab.losses.nnd`).

Per set, averaged over the batch::

    L = NND(x̂, x) + β_KL · KL(q(z|x) ‖ N(0, 1))
        [+ w_m (m(x̂) − m(x))² + w_pT (Σ pT_rel(x̂) − Σ pT_rel(x))²]     jets, optional
        [+ w_e · BCE(sorted existence logits, n ones then zeros)]        existence decoders

with ``KL = ½ Σ_k (μ_k² + exp(log σ²_k) − 1 − log σ²_k)`` and m the relative jet mass of
massless constituents (:func:`jetlab.physics.kinematics.relative_jet_kinematics`).

Existence: a decoder with ``existence=True`` emits one more column, a logit per point. The
``n`` points with the largest logits (n = real points of x) are the generated set the NND
and jet terms see, and the logits sorted in decreasing order are trained towards ``n`` ones
followed by zeros (an order-free count loss).

Shapes: x (B, P, D) with mask (B, P) bool (None: all real); recon (B, N, D) or (B, N, D+1);
mu, logvar (B, L).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from jetlab.losses.nnd import nnd_loss
from jetlab.physics.kinematics import relative_jet_kinematics

__all__ = ["kl_divergence", "vae_loss"]


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, exp(logvar)) ‖ N(0, 1)) summed over the latent dimensions: (B, L) -> (B,)."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(-1)


def _top_count_mask(scores: Tensor, counts: Tensor) -> Tensor:
    """True at the ``counts[b]`` largest ``scores[b]``: (B, N), (B,) -> (B, N) bool."""
    rank = scores.argsort(dim=1, descending=True).argsort(dim=1)
    return rank < counts.unsqueeze(1)


def vae_loss(x: Tensor, mask: Tensor | None, recon: Tensor, mu: Tensor, logvar: Tensor, beta_kl: float = 1.0, *,
             n_coords: int | None = None, beta_features: float = 1.0, w_mass: float = 0.0, w_pt: float = 0.0,
             to_physical: Callable[[Tensor], Tensor] | None = None, jet_columns=(0, 1, 2),
             w_existence: float = 1.0) -> tuple[Tensor, dict[str, float]]:
    """The loss of the module docstring and its parts.

    ``n_coords``/``beta_features`` go to :func:`jetlab.losses.nnd_loss`. The jet terms are
    on when ``w_mass`` or ``w_pt`` is non-zero; ``to_physical`` maps model tensors (e.g.
    standardised features) to (η_rel, φ_rel, pT_rel) at ``jet_columns`` first (identity when
    None), keeping the graph. Returns (total, {"nnd", "kl", ["mass", "pt"], ["existence"]}).
    """
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    n_features = x.shape[-1]
    if recon.shape[-1] == n_features + 1:
        logits = recon[..., -1]
        points = recon[..., :-1]
        counts = mask.sum(1).clamp_max(recon.shape[1])
        recon_mask = _top_count_mask(logits.detach(), counts)
        target = (torch.arange(recon.shape[1], device=x.device).unsqueeze(0) < counts.unsqueeze(1)).to(logits.dtype)
        existence = F.binary_cross_entropy_with_logits(logits.sort(dim=1, descending=True).values, target)
    elif recon.shape[-1] == n_features:
        points, recon_mask, existence = recon, None, None
    else:
        raise ValueError(f"recon has {recon.shape[-1]} features per point, x has {n_features}")

    nnd = nnd_loss(points, x, recon_mask, mask, "mean", n_coords=n_coords, beta=beta_features)
    kl = kl_divergence(mu, logvar).mean()
    total = nnd + beta_kl * kl
    parts = {"nnd": float(nnd.detach()), "kl": float(kl.detach())}
    if w_mass or w_pt:
        physical = to_physical or (lambda t: t)
        jet_recon = relative_jet_kinematics(physical(points), recon_mask, jet_columns)
        jet_true = relative_jet_kinematics(physical(x), mask, jet_columns)
        mass_term = (jet_recon.mass - jet_true.mass).square().mean()
        pt_term = (jet_recon.pt_sum - jet_true.pt_sum).square().mean()
        total = total + w_mass * mass_term + w_pt * pt_term
        parts.update(mass=float(mass_term.detach()), pt=float(pt_term.detach()))
    if existence is not None:
        total = total + w_existence * existence
        parts["existence"] = float(existence.detach())
    return total, parts
