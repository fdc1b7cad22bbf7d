"""Particle Transformer (ParT), Qu, Li & Qian, arXiv:2202.03772.

Particles ``x_i`` (the standardised particle features) and the pair features ``u_ij`` of
:mod:`jetlab.models.part_pairs` (from the raw four-momenta ``momenta``)::

    h_i^0  = Embed(x_i)                        (LayerNorm, Linear, GELU) per embed_dims entry
    U_ij   = PairMLP(u_ij) in R^H               per-head attention bias, every pair (blocked grid)
    h^l    = PAB(h^{l-1}, U)                    l = 1..n_layers particle-attention blocks
    c^m    = CAB(c^{m-1}, h^L)                  m = 1..n_cls_layers class-attention blocks, c^0 learned
    logits = Linear(LayerNorm(c^M))

A particle-attention block (pre-LayerNorm, with the NormFormer normalisations the paper
uses after the attention and after the FFN's activation)::

    a   = softmax(Q Kᵀ / sqrt(d_head) + U + M) V       per head; M = -inf to padded keys
    h  <- h + Dropout(LN(Proj(a)))                     Q, K, V = Linear(LN(h))
    h  <- h + Dropout(W_2 LN(Dropout(GELU(W_1 LN(h)))))   W_1: dim -> ffn_ratio·dim

A class-attention block is the same with the query the class token ``c`` alone, keys
and values ``[c; h]`` and no pair bias. Padded particles are masked keys everywhere,
their outputs are zeroed, so padding never changes the logits; the output is invariant
under permutations of the particles (no positional information anywhere).

Configurations (hyperparameters, every one ``--hp KEY=VALUE``):

* ``part``: embed_dims [128, 512, 128], pair_embed_dims [64, 64, 64], 8 heads, 8 particle
  blocks, 2 class blocks, ffn_ratio 4, dropout / attn_dropout / activation_dropout 0.1 (the
  paper's, ~2.1M parameters);
* ``part-small``: embed_dims [64, 128, 64], pair_embed_dims [32, 32], 4 heads, 3 particle
  blocks, 2 class blocks (jetlab's CPU-sized configuration, ~0.27M parameters).

``block_size``: receivers per block of the pair grid (``None``: automatic). Deviation from
the paper's code: no batch normalisation in the pair embedding (its batch statistics
would differ per block); the first Linear absorbs the scale of ``u``.
Inputs ``particles (B, N, F)``, ``momenta (B, N, 4)`` = (px, py, pz, E), ``mask (B, N)``.
Output: logits (B, n_classes). Any ``N`` works.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from jetlab.errors import JetlabError
from jetlab.models._mlp import MLP, Tagger, init_tagger, is_width_list
from jetlab.models.part_pairs import PAIR_FEATURES, pair_embedding, particle_kinematics
from jetlab.models.particlenet import PARTICLE_NET_FEATURES

__all__ = ["AttentionBlock", "ParticleTransformer", "ParticleTransformerSmall"]


class AttentionBlock(nn.Module):
    """One (particle- or class-) attention block of ParT (Qu, Li & Qian, arXiv:2202.03772;
    module docstring).

    Args:
        dim: C, the model width.
        heads: H, attention heads (must divide ``dim``).
        ffn_ratio: width of the feed-forward layer over ``dim``.
        dropout: dropout after the attention and after the feed-forward layer.
        attn_dropout: dropout on the attention weights.
        activation_dropout: dropout after the feed-forward activation.
    """

    def __init__(self, dim: int, heads: int, ffn_ratio: int, dropout: float, attn_dropout: float,
                 activation_dropout: float):
        super().__init__()
        if dim % heads:
            raise JetlabError(f"part: the embedding width {dim} must be a multiple of n_heads={heads}")
        self.heads = heads
        self.norm_attn = nn.LayerNorm(dim)
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.project = nn.Linear(dim, dim)
        self.norm_post_attn = nn.LayerNorm(dim)
        self.norm_ffn = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, ffn_ratio * dim), nn.Linear(ffn_ratio * dim, dim)
        self.norm_post_act = nn.LayerNorm(ffn_ratio * dim)
        self.dropout, self.attn_dropout = nn.Dropout(dropout), nn.Dropout(attn_dropout)
        self.activation_dropout = nn.Dropout(activation_dropout)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        B, L, C = t.shape
        return t.view(B, L, self.heads, C // self.heads).transpose(1, 2)  # (B, H, L, d)

    def attention(self, query: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor,
                  bias: torch.Tensor | None) -> torch.Tensor:
        q, k, v = self._split(self.query(query)), self._split(self.key(context)), self._split(self.value(context))
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, Q, K)
        if bias is not None:
            logits = logits + bias
        logits = logits.masked_fill(~key_mask[:, None, None, :], torch.finfo(logits.dtype).min)
        weights = self.attn_dropout(torch.softmax(logits, dim=-1))
        out = (weights @ v).transpose(1, 2)
        return self.project(out.reshape(*out.shape[:2], -1))

    def forward(self, query: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        """Attend from ``query`` to ``context`` (self-attention when they are the same tensor).

        Args:
            query: the tokens that are updated (particles, or the class token).
            context: the keys and values.
            key_mask: which context entries may be attended to.
            bias: per-head additive attention bias ``U`` (``None``: none).

        Returns:
            The updated query tokens.

        Shapes:
            - query: ``(batch, queries, dim)``
            - context: ``(batch, keys, dim)``
            - key_mask: ``(batch, keys)`` bool
            - bias: ``(batch, heads, queries, keys)``
            - returns: ``(batch, queries, dim)``
        """
        normed = self.norm_attn(query)
        context = normed if context is query else self.norm_attn(context)
        h = query + self.dropout(self.norm_post_attn(self.attention(normed, context, key_mask, bias)))
        f = self.activation_dropout(F.gelu(self.fc1(self.norm_ffn(h))))
        return h + self.dropout(self.fc2(self.norm_post_act(f)))


class ParticleTransformer(Tagger):
    """ParT (Qu, Li & Qian, arXiv:2202.03772; module docstring), the paper's configuration:
    particle embedding, pair-biased particle attention, class attention.

    Args:
        n_particles: particles per jet of the data set (ParT takes any count).
        n_features: features per particle (``particles``).
        n_classes: output classes.
        embed_dims: widths of the particle embedding's layers (the last is the model width).
        pair_embed_dims: widths of the hidden layers of the pair embedding.
        n_heads: attention heads (must divide the model width).
        n_layers: particle-attention blocks.
        n_cls_layers: class-attention blocks.
        ffn_ratio: width of the feed-forward layer over the model width.
        dropout: dropout after the attention and after the feed-forward layer.
        attn_dropout: dropout on the attention weights.
        activation_dropout: dropout after the feed-forward activation.
        block_size: receivers per block of the pair grid (``None``: automatic).
    """

    name = "part"
    input_keys = ("particles", "momenta", "mask")
    particle_features = PARTICLE_NET_FEATURES

    def __init__(self, n_particles: int, n_features: int, n_classes: int = 5, *,
                 embed_dims: Sequence[int] = (128, 512, 128), pair_embed_dims: Sequence[int] = (64, 64, 64),
                 n_heads: int = 8, n_layers: int = 8, n_cls_layers: int = 2, ffn_ratio: int = 4,
                 dropout: float = 0.1, attn_dropout: float = 0.1, activation_dropout: float = 0.1,
                 block_size: int | None = None):
        super().__init__()
        hp = init_tagger(self, n_particles, n_features, n_classes, embed_dims=embed_dims,
                         pair_embed_dims=pair_embed_dims, n_heads=n_heads, n_layers=n_layers,
                         n_cls_layers=n_cls_layers, ffn_ratio=ffn_ratio, dropout=dropout, attn_dropout=attn_dropout,
                         activation_dropout=activation_dropout, block_size=block_size)
        for key in ("embed_dims", "pair_embed_dims"):
            if not is_width_list(hp[key]):
                raise JetlabError(f"{self.name}: {key} must be a non-empty list of positive widths, got {hp[key]!r}")
        if min(int(hp["n_heads"]), int(hp["n_layers"]), int(hp["ffn_ratio"])) < 1 or int(hp["n_cls_layers"]) < 1:
            raise JetlabError(f"{self.name}: n_heads, n_layers, n_cls_layers and ffn_ratio must be >= 1")
        for key in ("dropout", "attn_dropout", "activation_dropout"):
            if not 0 <= float(hp[key]) < 1:
                raise JetlabError(f"{self.name}: 0 <= {key} < 1 required, got {hp[key]!r}")
        if hp["block_size"] is not None and not (isinstance(hp["block_size"], int) and hp["block_size"] >= 1):
            raise JetlabError(f"{self.name}: block_size must be a positive integer or null, got {hp['block_size']!r}")
        self.block_size = hp["block_size"]
        dims = [self.n_features, *hp["embed_dims"]]
        self.embed = nn.ModuleList(nn.Sequential(nn.LayerNorm(a), nn.Linear(a, b), nn.GELU())
                                   for a, b in zip(dims[:-1], dims[1:]))
        heads, dim = int(hp["n_heads"]), dims[-1]
        self.pair_embed = MLP([len(PAIR_FEATURES), *hp["pair_embed_dims"], heads], "gelu")
        settings = (dim, heads, int(hp["ffn_ratio"]), float(hp["dropout"]), float(hp["attn_dropout"]),
                    float(hp["activation_dropout"]))
        self.blocks = nn.ModuleList(AttentionBlock(*settings) for _ in range(int(hp["n_layers"])))
        self.cls_blocks = nn.ModuleList(AttentionBlock(*settings) for _ in range(int(hp["n_cls_layers"])))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, self.n_classes)

    def pair_bias(self, momenta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``U`` (B, H, N, N) from the raw four-momenta (blocked pair grid)."""
        return pair_embedding(particle_kinematics(momenta, mask), self.pair_embed, self.block_size)

    def forward(self, particles: torch.Tensor, momenta: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits of a batch of jets.

        Args:
            particles: standardised particle features.
            momenta: raw four-momenta (px, py, pz, E) of the particles, for the pair features.
            mask: which particles are real (``None``: all).

        Returns:
            Logits (not probabilities).

        Shapes:
            - particles: ``(batch, particles, n_features)``
            - momenta: ``(batch, particles, 4)``
            - mask: ``(batch, particles)`` bool
            - returns: ``(batch, n_classes)``
        """
        B, N, _ = particles.shape
        if mask is None:
            mask = torch.ones(B, N, dtype=torch.bool, device=particles.device)
        real = mask.unsqueeze(-1)
        h = torch.where(real, particles, 0.0)
        for layer in self.embed:
            h = layer(h)
        h = h * real
        bias = self.pair_bias(momenta, mask)
        for block in self.blocks:
            h = block(h, h, mask, bias) * real
        cls = self.cls_token.expand(B, 1, -1)
        context_mask = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        for block in self.cls_blocks:
            cls = block(cls, torch.cat([cls, h], dim=1), context_mask)
        return self.head(self.norm(cls.squeeze(1)))


class ParticleTransformerSmall(ParticleTransformer):
    """ParT-small: jetlab's CPU-sized Particle Transformer (arXiv:2202.03772's architecture,
    ~0.27M parameters instead of ~2.1M).

    Args:
        n_particles: particles per jet of the data set (ParT takes any count).
        n_features: features per particle (``particles``).
        n_classes: output classes.
        embed_dims: widths of the particle embedding's layers (the last is the model width).
        pair_embed_dims: widths of the hidden layers of the pair embedding.
        n_heads: attention heads (must divide the model width).
        n_layers: particle-attention blocks.
        n_cls_layers: class-attention blocks.
        ffn_ratio: width of the feed-forward layer over the model width.
        dropout: dropout after the attention and after the feed-forward layer.
        attn_dropout: dropout on the attention weights.
        activation_dropout: dropout after the feed-forward activation.
        block_size: receivers per block of the pair grid (``None``: automatic).
    """

    name = "part-small"

    def __init__(self, n_particles: int, n_features: int, n_classes: int = 5, *,
                 embed_dims: Sequence[int] = (64, 128, 64), pair_embed_dims: Sequence[int] = (32, 32),
                 n_heads: int = 4, n_layers: int = 3, n_cls_layers: int = 2, ffn_ratio: int = 4,
                 dropout: float = 0.1, attn_dropout: float = 0.1, activation_dropout: float = 0.1,
                 block_size: int | None = None):
        super().__init__(n_particles, n_features, n_classes, embed_dims=embed_dims, pair_embed_dims=pair_embed_dims,
                         n_heads=n_heads, n_layers=n_layers, n_cls_layers=n_cls_layers, ffn_ratio=ffn_ratio,
                         dropout=dropout, attn_dropout=attn_dropout, activation_dropout=activation_dropout,
                         block_size=block_size)
