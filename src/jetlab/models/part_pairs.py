"""The Particle Transformer's pair features and their embedding on the blocked pair grid.

For particles ``a``, ``b`` with four-momenta ``(px, py, pz, E)`` (arXiv:2202.03772, Eq. 3)::

    Δ   = sqrt((y_a − y_b)² + (φ_a − φ_b)²)          y: rapidity, Δφ wrapped to (−π, π]
    k_T = min(pT_a, pT_b) Δ
    z   = min(pT_a, pT_b) / (pT_a + pT_b)
    m²  = (E_a + E_b)² − |p_a + p_b|²
    u_ab = (ln Δ, ln k_T, ln z, ln m²)                each argument clamped at ε = 1e-8

and the attention bias of every head is ``U_ab = MLP(u_ab)``, one pointwise MLP
``4 -> pair_embed_dims... -> n_heads`` (GELU between layers) applied to every pair.

The features are non-linear in the pair, so (unlike JEDI-net's first layer, which splits
into per-particle halves) the first layer cannot be computed per particle. Instead
:func:`pair_embedding` walks the grid in blocks of receivers
(:mod:`jetlab.models.pair_grid`): per block it forms the pair features ``(B, nb, N, 4)``
from per-particle ``(pT, y, φ, E, p)`` and runs the MLP, so the ``(B, N, N, width)``
hidden activations never exist whole; only the result ``U`` (B, H, N, N), which the
attention needs anyway, does. In training each block is recomputed in backward
(``torch.utils.checkpoint``), so autograd keeps one block's activations, not the grid's.
Pairs with a padded particle, and ``a = b``, get ``u = 0`` (their bias is masked out of
the attention or constant).

CUDA: the fused Triton kernels of :mod:`jetlab.models.jedinet_triton` do not apply: they
reduce the grid to a per-receiver sum (JEDI-net's ``ē_r``) from per-particle halves of the
first layer, while ParT needs every entry ``U_ab`` of the grid and a first layer on
non-linear pair features; on CUDA the blocks simply get the larger GPU budget.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.utils.checkpoint import checkpoint

from jetlab.models.pair_grid import edge_mask_block, grid_block_size, receiver_blocks
from jetlab.physics.kinematics import delta_phi

__all__ = ["EPS", "PAIR_FEATURES", "ParticleKinematics", "pair_embedding", "pair_features", "particle_kinematics"]

PAIR_FEATURES = ("ln_delta", "ln_kt", "ln_z", "ln_m2")
EPS = 1e-8


class ParticleKinematics(NamedTuple):
    """Per-particle quantities the pair features are built from, each (B, N); ``mask`` float."""

    pt: torch.Tensor
    rapidity: torch.Tensor
    phi: torch.Tensor
    energy: torch.Tensor
    px: torch.Tensor
    py: torch.Tensor
    pz: torch.Tensor
    mask: torch.Tensor


def particle_kinematics(momenta: torch.Tensor, mask: torch.Tensor) -> ParticleKinematics:
    """The per-particle quantities of the pair features (Qu, Li & Qian, arXiv:2202.03772).

    Padded rows are set to 0 first; ``y = ½ ln((E + pz) / (E − pz))`` with both sides clamped
    at ε, so no ``log(0)`` is ever taken (a padded particle gets ``y = 0``).

    Args:
        momenta: (px, py, pz, E) of the particles.
        mask: which particles are real.

    Returns:
        :class:`ParticleKinematics` (pT, y, φ, E, px, py, pz and the float mask).

    Shapes:
        - momenta: ``(batch, particles, 4)``
        - mask: ``(batch, particles)`` bool
        - every field of the result: ``(batch, particles)``
    """
    momenta = torch.where(mask.unsqueeze(-1), momenta, 0.0)
    px, py, pz, energy = momenta.unbind(dim=-1)
    rapidity = 0.5 * ((energy + pz).clamp(min=EPS).log() - (energy - pz).clamp(min=EPS).log())
    return ParticleKinematics((px.square() + py.square()).sqrt(), rapidity, torch.atan2(py, px), energy, px, py, pz,
                              mask.to(momenta.dtype))


def pair_features(kin: ParticleKinematics, r0: int, r1: int) -> torch.Tensor:
    """The pair features ``u = (ln Δ, ln k_T, ln z, ln m²)`` of receivers ``r0:r1`` against every
    particle (module docstring), 0 off the edge mask.

    Args:
        kin: the per-particle quantities (:func:`particle_kinematics`).
        r0: first receiver of the block.
        r1: one past the last receiver.

    Returns:
        The features of every pair of the block.

    Shapes:
        - returns: ``(batch, r1 - r0, particles, 4)``
    """
    def grid(t):
        return t[:, r0:r1, None], t[:, None, :]

    (pt_a, pt_b), (e_a, e_b) = grid(kin.pt), grid(kin.energy)
    (y_a, y_b), (phi_a, phi_b) = grid(kin.rapidity), grid(kin.phi)
    delta = ((y_a - y_b).square() + delta_phi(phi_a, phi_b).square()).sqrt()  # (no hypot: ONNX has none)
    pt_min = torch.minimum(pt_a, pt_b)
    m2 = (e_a + e_b).square() - sum((p[0] + p[1]).square() for p in map(grid, (kin.px, kin.py, kin.pz)))
    u = torch.stack([delta.clamp(min=EPS).log(), (pt_min * delta).clamp(min=EPS).log(),
                     (pt_min / (pt_a + pt_b).clamp(min=EPS)).clamp(min=EPS).log(), m2.clamp(min=EPS).log()], dim=-1)
    return u * edge_mask_block(kin.mask, r0, r1).unsqueeze(-1)


def _embed_block(mlp: torch.nn.Module, kin: ParticleKinematics, r0: int, r1: int) -> torch.Tensor:
    return mlp(pair_features(kin, r0, r1))


def pair_embedding(kin: ParticleKinematics, mlp: torch.nn.Module, block_size: int | None = None) -> torch.Tensor:
    """``U = mlp(u)`` over the whole grid, one receiver block at a time.

    Blocks are checkpointed when gradients are needed; during graph export the grid is one
    block.

    Args:
        kin: the per-particle quantities (:func:`particle_kinematics`).
        mlp: the pointwise MLP ``4 -> ... -> heads`` (its ``layers`` give the widest width).
        block_size: receivers per block (``None``: the grid budget of
            :func:`~jetlab.models.pair_grid.grid_block_size` for the MLP's widest layer).

    Returns:
        The per-head attention bias ``U``.

    Shapes:
        - returns: ``(batch, heads, particles, particles)``
    """
    B, N = kin.pt.shape
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        block_size = N  # symbolic batch size: no data-dependent block arithmetic while exporting
    else:
        width = max(layer.out_features for layer in mlp.layers)
        block_size = grid_block_size(B, N, width, kin.pt.device, block_size)
    recompute = torch.is_grad_enabled() and block_size < N
    blocks = [checkpoint(_embed_block, mlp, kin, r0, r1, use_reentrant=False) if recompute
              else _embed_block(mlp, kin, r0, r1) for r0, r1 in receiver_blocks(N, block_size)]
    return torch.cat(blocks, dim=1).permute(0, 3, 1, 2)
