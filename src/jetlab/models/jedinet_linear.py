"""JEDI-linear: a JEDI-net whose interaction costs O(N), in the spirit of arXiv:2508.15468.

JEDI-net's edge network ``e_rs = f_R([o_r; o_s])`` is evaluated on all ``N(N-1)`` pairs.
JEDI-linear drops the receiver from the message, so every message is a function of its
sender alone and the sum over senders is one sum over the particles::

    g_s  = f_S(o_s)                              in R^{D_E}   per particle (sender network)
    ē_r  = Σ_{s≠r} m_s g_s = G − m_r g_r,  G = Σ_s m_s g_s   O(N) instead of O(N²)
    p_r  = f_O([o_r; ē_r])                       in R^{D_O}
    logits = φ_C(Σ_r m_r p_r)                    (the ΣO read-out: permutation invariant)

``f_S``, ``f_O``, ``φ_C`` are 3-layer MLPs ``N¹ -> N¹/2 -> out`` as in JEDI-net (``f_S``
and ``f_O`` with their activation after the output layer too); ``m`` is the mask, so
padded particles send nothing and are left out of the sum. The receiver-dependence JEDI-net
gets from its pairs comes back through ``f_O``, which sees ``o_r`` next to the aggregate.
Defaults: JEDI-net ΣO-150's hyperparameters (N¹ 50, D_E 14, D_O 10, SELU x 3).

Inputs: ``particles (B, N, P)``, ``mask (B, N)`` bool. Output: logits (B, n_classes). Any N.
"""

from __future__ import annotations

import torch

from jetlab.errors import JetlabError
from jetlab.models._mlp import MLP, Tagger, init_tagger

__all__ = ["JEDINetLinear"]


class JEDINetLinear(Tagger):
    """JEDI-linear, an O(N) JEDI-net (arXiv:2508.15468; module docstring). Defaults: JEDI-net
    ΣO-150's hyperparameters.

    Args:
        n_particles: particles per jet of the data set (JEDI-linear takes any count).
        n_features: P, features per particle.
        n_classes: output classes.
        hidden: N¹, width of the first hidden layer of every MLP (the second is N¹/2).
        edge_dim: D_E, size of a message ``g_s``.
        object_dim: D_O, size of a particle's output ``p_r``.
        f_s_activation: activation of the sender network f_S.
        f_o_activation: activation of the object network f_O.
        phi_c_activation: activation of the classifier φ_C.
    """

    name = "jedinet-linear"
    input_keys = ("particles", "mask")

    def __init__(self, n_particles: int, n_features: int, n_classes: int = 5, *, hidden: int = 50,
                 edge_dim: int = 14, object_dim: int = 10, f_s_activation: str = "selu",
                 f_o_activation: str = "selu", phi_c_activation: str = "selu"):
        super().__init__()
        hp = init_tagger(self, n_particles, n_features, n_classes, hidden=hidden, edge_dim=edge_dim,
                         object_dim=object_dim, f_s_activation=f_s_activation, f_o_activation=f_o_activation,
                         phi_c_activation=phi_c_activation)
        hidden, d_e, d_o = int(hp["hidden"]), int(hp["edge_dim"]), int(hp["object_dim"])
        if hidden < 2 or min(d_e, d_o) < 1:
            raise JetlabError(f"{self.name}: hidden >= 2, edge_dim >= 1 and object_dim >= 1 required")
        P = self.n_features
        self.f_S = MLP([P, hidden, hidden // 2, d_e], hp["f_s_activation"], output_activation=True)
        self.f_O = MLP([P + d_e, hidden, hidden // 2, d_o], hp["f_o_activation"], output_activation=True)
        self.phi_C = MLP([d_o, hidden, hidden // 2, self.n_classes], hp["phi_c_activation"])

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
        m = mask.unsqueeze(-1).to(particles.dtype)
        x = torch.where(mask.unsqueeze(-1), particles, 0.0)
        g = self.f_S(x) * m  # (B, N, D_E), 0 for padded senders
        e_bar = g.sum(dim=1, keepdim=True) - g  # Σ_{s≠r} m_s g_s
        p = self.f_O(torch.cat([x, e_bar], dim=-1)) * m  # (B, N, D_O)
        return self.phi_C(p.sum(dim=1))
