"""JEDI-net: the interaction-network jet tagger of Moreno et al., arXiv:1908.05318.

A jet is a fully connected directed graph of ``N`` particles with ``P`` features each.
For every edge (receiver ``r``, sender ``s``), ``r != s``, both real particles::

    e_rs = f_R([o_r; o_s])                   in R^{D_E}      (edge / "relation" network)
    ē_r  = Σ_s e_rs                          in R^{D_E}
    p_r  = f_O([o_r; ē_r])                   in R^{D_O}      (object network)
    logits = φ_C(flatten(p))                 flattened variant, p: (N, D_O) -> N·D_O
    logits = φ_C(Σ_r p_r)                    "ΣO" variant (``jedinet-sumo``), permutation invariant

``f_R``, ``f_O`` and ``φ_C`` are 3-layer MLPs ``N¹ -> N¹/2 -> out``; ``f_R`` and ``f_O``
apply their activation after the output layer too, ``φ_C`` returns raw logits (as in the
authors' code). Padded particles (``mask == False``) take part in no edge, their ``p_r``
is set to 0 and they do not enter the ΣO sum, so padding never changes the output.

Two implementations with identical parameters (``state_dict`` s are interchangeable):

* :class:`JEDINet` (the model) never builds the edge list. The first layer of ``f_R`` is
  linear, ``W [o_r; o_s] + b = (W_r o_r + b) + W_s o_s``, so it is computed once per
  particle, ``h_r, h_s`` of shape ``(N¹, B, N)``, and broadcast over the ``(r, s)`` grid
  one block of receivers at a time: the ``(B, N, N, N¹)`` tensor never exists whole. The
  rest of ``f_R`` runs on each ``(N¹, B, n_block, N)`` block (channels first: the GEMMs
  then have the long axis as output columns, several times faster on CPU), the edge mask
  (both real, ``r != s``) is applied and the senders are summed. The blocks are
  differentiated by hand (:class:`~jetlab.models.jedinet_blocked.FusedEdgeSum`): backward recomputes each block instead
  of keeping it, so training memory is O(B·N·N¹), not O(B·N²·N¹); scratch buffers are
  reused across blocks. On CPU the ELU/SELU of the first layer uses
  ``exp(h_r + h_s) = exp(h_r) exp(h_s)`` (no ``exp`` per edge). Particles after the last
  real one of the batch are dropped first (zero-padded, pT-ordered inputs get cheap).
* :class:`DenseJEDINet` is the formulation of the paper's code: one-hot receiving and
  sending matrices ``R_r, R_s`` of shape ``(N, N_E)``, ``N_E = N(N-1)``, and
  ``O R_r``, ``O R_s``, ``E R_rᵀ`` matmuls: ``O(N³)`` work and memory traffic. It is the
  test oracle and the benchmark baseline.

On CUDA, with Triton installed (the ``gpu`` extra), :class:`JEDINet` computes ``ē`` with
the fused kernels of :mod:`jetlab.models.jedinet_triton` instead of the blocks (one
kernel launch per pass, the pair grid stays in registers); hyperparameter ``kernel``:
``auto`` (default: Triton on CUDA when importable, else torch), ``triton`` or ``torch``.

Inputs: ``particles (B, N, P)``, ``mask (B, N)`` bool (``None``: all real).
Output: logits ``(B, n_classes)``. The flattened variant needs ``N <= n_particles``
(fewer particles are zero-padded to ``n_particles``); the ΣO variant takes any ``N``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from jetlab.errors import JetlabError
from jetlab.models._mlp import MLP, Tagger, init_tagger, keyword_defaults
from jetlab.models.jedinet_blocked import FUSED_ACTIVATIONS, FusedEdgeSum
from jetlab.models.pair_grid import edge_mask_block, grid_block_size, receiver_blocks

__all__ = ["DenseJEDINet", "DenseJEDINetSumO", "JEDINet", "JEDINetSumO", "PAPER_HYPERPARAMETERS"]

#: the paper's best hyperparameters per particle count: (N¹, D_E, D_O, f_R, f_O, φ_C activations)
PAPER_HYPERPARAMETERS: dict[str, dict[int, tuple]] = {
    "flat": {
        30: (50, 12, 6, "relu", "selu", "selu"),
        50: (50, 12, 14, "elu", "selu", "elu"),
        100: (30, 10, 10, "elu", "elu", "elu"),
        150: (10, 4, 14, "selu", "selu", "selu"),
    },
    "sumo": {
        150: (50, 14, 10, "selu", "selu", "selu"),
    },
}

#: values of the ``kernel`` hyperparameter (how ē is computed; the parameters do not change)
KERNELS = ("auto", "triton", "torch")


def _linear_parameters(layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight, bias)`` of a Linear the fast path uses without calling it.

    Honours ``torch.nn.utils.prune`` (``weight = weight_orig * weight_mask``, normally
    refreshed by a forward pre-hook that does not fire when the module is not called).
    """
    def parameter(name: str) -> torch.Tensor:
        if hasattr(layer, name + "_mask"):
            return getattr(layer, name + "_orig") * getattr(layer, name + "_mask")
        return getattr(layer, name)

    return parameter("weight"), parameter("bias")


def _nearest_paper_setting(table: dict[int, tuple], n_particles: int) -> tuple:
    nearest = min(table, key=lambda n: (abs(n - n_particles), -n))
    return table[nearest]


class JEDINet(Tagger):
    """JEDI-net (Moreno et al., arXiv:1908.05318) with the flattened ``φ_C`` input
    (``D_O × N`` matrix); fast blocked interaction (module docstring).

    The settings left ``None`` take the paper's best values for the tabulated particle
    count nearest to ``n_particles`` (:data:`PAPER_HYPERPARAMETERS`,
    ``default_hyperparameters(n_particles)``).

    Args:
        n_particles: N the model is built for (inputs may have fewer particles, zero-padded;
            the ΣO variant takes any count).
        n_features: P, features per particle.
        n_classes: output classes.
        hidden: N¹, width of the first hidden layer of f_R, f_O and φ_C (the second is N¹/2).
        edge_dim: D_E, size of an edge message ``e_rs``.
        object_dim: D_O, size of a particle's output ``p_r``.
        f_r_activation: activation of the edge network f_R.
        f_o_activation: activation of the object network f_O.
        phi_c_activation: activation of the classifier φ_C.
        block_size: receivers per block of the pair grid (``None``: about 2^20 grid entries
            per CPU thread, 2^25 on a GPU).
        kernel: ``"auto"``, ``"triton"`` or ``"torch"``: how ``ē`` is computed (module
            docstring); the parameters do not depend on it.
    """

    name = "jedinet"
    input_keys = ("particles", "mask")
    sum_o = False
    #: use the hand-differentiated, recomputing edge sum (or the Triton kernels) when f_R's
    #: activation allows it; False forces plain autograd through the blocks (keeps every block)
    fused_edge_sum = True

    def __init__(self, n_particles: int, n_features: int, n_classes: int = 5, *, hidden: int | None = None,
                 edge_dim: int | None = None, object_dim: int | None = None, f_r_activation: str | None = None,
                 f_o_activation: str | None = None, phi_c_activation: str | None = None,
                 block_size: int | None = None, kernel: str = "auto"):
        super().__init__()
        hp = init_tagger(self, n_particles, n_features, n_classes, hidden=hidden, edge_dim=edge_dim,
                         object_dim=object_dim, f_r_activation=f_r_activation, f_o_activation=f_o_activation,
                         phi_c_activation=phi_c_activation, block_size=block_size, kernel=kernel)
        hidden, d_e, d_o = int(hp["hidden"]), int(hp["edge_dim"]), int(hp["object_dim"])
        if min(hidden, d_e, d_o) < 1 or hidden < 2:
            raise JetlabError(f"{self.name}: hidden >= 2, edge_dim >= 1 and object_dim >= 1 required")
        self.block_size = None if hp["block_size"] is None else max(1, int(hp["block_size"]))
        if hp["kernel"] not in KERNELS:
            raise JetlabError(f"{self.name}: kernel must be one of {', '.join(KERNELS)}, got {hp['kernel']!r}")
        self.kernel = hp["kernel"]
        P = self.n_features
        self.f_R = MLP([2 * P, hidden, hidden // 2, d_e], hp["f_r_activation"], output_activation=True)
        self.f_O = MLP([P + d_e, hidden, hidden // 2, d_o], hp["f_o_activation"], output_activation=True)
        classifier_in = d_o if self.sum_o else d_o * self.n_particles
        self.phi_C = MLP([classifier_in, hidden, hidden // 2, self.n_classes], hp["phi_c_activation"])

    @classmethod
    def default_hyperparameters(cls, n_particles: int) -> dict[str, Any]:
        """The paper's hyperparameters for the nearest tabulated particle count."""
        table = PAPER_HYPERPARAMETERS["sumo" if cls.sum_o else "flat"]
        hidden, d_e, d_o, act_r, act_o, act_c = _nearest_paper_setting(table, int(n_particles))
        return {**keyword_defaults(cls), "hidden": hidden, "edge_dim": d_e, "object_dim": d_o,
                "f_r_activation": act_r, "f_o_activation": act_o, "phi_c_activation": act_c}

    # -- the interaction: ē_r = Σ_s mask_rs f_R([o_r; o_s]) ----------------------------------------
    def _block_size(self, batch: int, n: int, device: torch.device) -> int:
        return grid_block_size(batch, n, self.f_R.sizes[1], device, self.block_size)

    def interaction(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Summed edge messages ``ē`` (B, N, D_E) from ``x`` (B, N, P) and float ``mask`` (B, N)."""
        B, N, P = x.shape
        weight, bias = _linear_parameters(self.f_R.layers[0])
        params = [t for layer in self.f_R.layers[1:] for t in _linear_parameters(layer)]
        block_size = self._block_size(B, N, x.device)
        use_triton = self.fused_edge_sum and self._use_triton(x)
        if use_triton or not (self.fused_edge_sum and self.f_R.activation in FUSED_ACTIVATIONS):
            h_receiver = F.linear(x, weight[:, :P], bias)  # (B, N, N¹)
            h_sender = F.linear(x, weight[:, P:])  # (B, N, N¹)
            if use_triton:
                from jetlab.models.jedinet_triton import edge_sum  # lazy: optional (triton)

                return edge_sum(h_receiver, h_sender, mask, self.f_R.activation, *params)
            return self._interaction_autograd(h_receiver, h_sender, mask, block_size)
        x_columns = x.reshape(B * N, P).t()  # (P, B·N)
        h_receiver = torch.addmm(bias.unsqueeze(1), weight[:, :P], x_columns).view(-1, B, N)
        h_sender = torch.mm(weight[:, P:], x_columns).view(-1, B, N)  # (N¹, B, N)
        e_bar = FusedEdgeSum.apply(h_receiver, h_sender, mask.contiguous(), block_size, self.f_R.activation, *params)
        return e_bar.permute(1, 2, 0)  # (B, N, D_E)

    def _use_triton(self, x: torch.Tensor) -> bool:
        """Whether ``kernel`` and the input select the fused kernels (JetlabError: forced but unusable)."""
        if self.kernel == "torch" or (self.kernel == "auto" and not x.is_cuda):
            return False
        try:
            from jetlab.models.jedinet_triton import unsupported  # lazy: optional (triton)
        except Exception as error:  # noqa: BLE001 - auto: any problem importing Triton means "use torch"
            if self.kernel == "triton":
                raise JetlabError(f"{self.name}: kernel=triton needs Triton ({error}): "
                                  "pip install 'jetlab[gpu]', or use --hp kernel=torch") from None
            return False
        problem = unsupported(x, self.f_R.activation)
        if problem and self.kernel == "triton":
            raise JetlabError(f"{self.name}: kernel=triton: {problem}; use --hp kernel=torch")
        return problem is None

    def _interaction_autograd(self, h_receiver, h_sender, mask, block_size):
        """The same blocked sum through plain autograd (any activation; keeps every block)."""
        N = h_sender.shape[1]
        blocks = []
        for r0, r1 in receiver_blocks(N, block_size):
            pre = h_receiver[:, r0:r1, None, :] + h_sender[:, None, :, :]  # (B, nb, N, N¹)
            e = self.f_R.forward_after_first_layer(pre, inplace=True)  # (B, nb, N, D_E)
            edge_mask = edge_mask_block(mask, r0, r1)  # (B, nb, N)
            blocks.append(torch.matmul(edge_mask.unsqueeze(-2), e).squeeze(-2))  # (B, nb, D_E)
        return torch.cat(blocks, dim=1)

    # -- the model -------------------------------------------------------------------------------
    def forward(self, particles: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits of a batch of jets.

        Args:
            particles: particle features (the flattened variant: at most ``n_particles``).
            mask: which particles are real (``None``: all).

        Returns:
            Logits (not probabilities).

        Shapes:
            - particles: ``(batch, particles, n_features)``
            - mask: ``(batch, particles)`` bool
            - returns: ``(batch, n_classes)``
        """
        if particles.dim() != 3 or particles.shape[-1] != self.n_features:
            raise ValueError(f"{self.name}: particles must be (B, N, {self.n_features}), got {tuple(particles.shape)}")
        B, N, _ = particles.shape
        if not self.sum_o and N > self.n_particles:
            raise ValueError(f"{self.name}: built for {self.n_particles} particles, got {N}")
        if mask is None:
            mask = torch.ones(B, N, dtype=torch.bool, device=particles.device)
        if mask.shape != (B, N):
            raise ValueError(f"{self.name}: mask must be ({B}, {N}), got {tuple(mask.shape)}")
        n_used = self._n_used(mask)
        x = particles[:, :n_used]
        m = mask[:, :n_used].to(particles.dtype)
        x = torch.where(mask[:, :n_used, None], x, 0.0)  # padded rows' content must not matter
        e_bar = self.interaction(x, m)  # (B, n, D_E)
        p = self.f_O(torch.cat([x, e_bar], dim=-1)) * m.unsqueeze(-1)  # (B, n, D_O)
        if self.sum_o:
            return self.phi_C(p.sum(dim=1))
        flat = p.reshape(B, -1)
        missing = (self.n_particles - n_used) * p.shape[-1]
        if missing:
            flat = torch.nn.functional.pad(flat, (0, missing))
        return self.phi_C(flat)

    def _n_used(self, mask: torch.Tensor) -> int:
        """Particles up to the last real one of the batch (the rest is padding everywhere)."""
        any_real = mask.any(dim=0)
        if bool(any_real.all()):
            return mask.shape[1]
        idx = torch.nonzero(any_real)
        return int(idx.max()) + 1 if idx.numel() else 1


class JEDINetSumO(JEDINet):
    """JEDI-net "ΣO" variant: ``φ_C(Σ_r p_r)``, permutation invariant, any particle count.

    Defaults are the paper's ΣO-150 hyperparameters (50, 14, 10, SELU ×3) for every count.
    """

    name = "jedinet-sumo"
    sum_o = True


class DenseJEDINet(JEDINet):
    """Reference JEDI-net with the paper code's one-hot ``R_r``, ``R_s`` (N, N_E) matrices.

    ``O_r = O R_r``, ``O_s = O R_s`` with ``O`` (B, P, N) give ``(B, P, N_E)`` edge inputs;
    ``E = f_R([O_r; O_s])`` (B, N_E, D_E); ``ē = E·mask_rs R_rᵀ`` (B, N, D_E). Same
    parameters as :class:`JEDINet`; ``R_r, R_s`` are built once per (N, device, dtype).
    Slow (O(N³)): a test oracle and benchmark baseline, not a model to train.
    """

    name = "jedinet"

    def relation_matrices(self, n: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """One-hot ``R_r``, ``R_s`` (n, n(n-1)): column ``e`` is edge (receiver r_e, sender s_e)."""
        key = (n, str(device), dtype)
        if "_relations" not in self.__dict__:  # built on first use: the constructor is JEDINet's
            self._relations: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        if key not in self._relations:
            receivers, senders = torch.meshgrid(torch.arange(n, device=device), torch.arange(n, device=device), indexing="ij")
            off_diagonal = receivers != senders
            receivers, senders = receivers[off_diagonal], senders[off_diagonal]
            n_edges = n * (n - 1)
            R_r = torch.zeros(n, n_edges, dtype=dtype, device=device)
            R_s = torch.zeros(n, n_edges, dtype=dtype, device=device)
            edges = torch.arange(n_edges, device=device)
            R_r[receivers, edges] = 1
            R_s[senders, edges] = 1
            self._relations[key] = (R_r, R_s)
        return self._relations[key]

    def interaction(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, N, P = x.shape
        R_r, R_s = self.relation_matrices(N, x.device, x.dtype)
        O = x.transpose(1, 2)  # (B, P, N)
        edge_inputs = torch.cat([O @ R_r, O @ R_s], dim=1).transpose(1, 2)  # (B, N_E, 2P)
        E = self.f_R(edge_inputs)  # (B, N_E, D_E)
        edge_mask = (mask @ R_r) * (mask @ R_s)  # (B, N_E)
        E = E * edge_mask.unsqueeze(-1)
        return (E.transpose(1, 2) @ R_r.T).transpose(1, 2)  # (B, N, D_E)

    def _n_used(self, mask: torch.Tensor) -> int:
        return mask.shape[1]  # the reference keeps every row


class DenseJEDINetSumO(DenseJEDINet):
    """Dense-reference "ΣO" JEDI-net (see :class:`DenseJEDINet`, :class:`JEDINetSumO`)."""

    name = "jedinet-sumo"
    sum_o = True
