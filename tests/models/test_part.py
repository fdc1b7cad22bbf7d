"""Particle Transformer: pair features by hand, the blocked pair embedding against the dense
grid (values and gradients), attention with its pair bias against a loop oracle, masking,
permutation invariance and the published configuration."""

from __future__ import annotations

import math

import pytest
import torch

from jetlab.models import build_tagger
from jetlab.models._mlp import MLP
from jetlab.models.part import AttentionBlock
from jetlab.models.part_pairs import EPS, pair_embedding, pair_features, particle_kinematics


def massless(pt, y, phi):
    return [pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(y), pt * math.cosh(y)]


def test_pair_features_of_two_particles_by_hand():
    # φ on both sides of ±π: Δφ must wrap to 2π - 6
    a, b = (100.0, 0.3, 3.0), (50.0, -0.2, -3.0)
    momenta = torch.tensor([[massless(*a), massless(*b), [0.0] * 4]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    u = pair_features(particle_kinematics(momenta, mask), 0, 3)
    delta = math.hypot(0.5, 2 * math.pi - 6.0)
    m2 = 2 * 100.0 * 50.0 * (math.cosh(0.5) - math.cos(2 * math.pi - 6.0))  # massless pair
    expected = [math.log(delta), math.log(50.0 * delta), math.log(50.0 / 150.0), math.log(m2)]
    torch.testing.assert_close(u[0, 0, 1], torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(u[0, 1, 0], u[0, 0, 1])  # symmetric
    # the diagonal and every pair with the padded particle are 0, and nothing is NaN
    assert torch.all(u[0, [0, 1, 2], [0, 1, 2]] == 0) and torch.all(u[0, 2] == 0) and torch.all(u[0, :, 2] == 0)


def jets(b=4, n=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    pt = 10 + 200 * torch.rand(b, n, generator=g, dtype=torch.float64)
    y, phi = (0.3 * torch.randn(b, n, 2, generator=g, dtype=torch.float64)).unbind(-1)
    mass = torch.rand(b, n, generator=g, dtype=torch.float64)
    mt = torch.sqrt(pt**2 + mass**2)
    momenta = torch.stack([pt * phi.cos(), pt * phi.sin(), mt * torch.sinh(y), mt * torch.cosh(y)], -1)
    mask = torch.arange(n) < torch.tensor([n, 1, 4, n - 2][:b])[:, None]
    return momenta * mask[..., None], mask


def dense_pair_grid(momenta, mask):
    """Oracle: the whole (B, N, N, 4) grid from four-vector sums, then the same clamps and mask."""
    p_a, p_b = momenta[:, :, None, :], momenta[:, None, :, :]
    pt_a, pt_b = torch.hypot(p_a[..., 0], p_a[..., 1]), torch.hypot(p_b[..., 0], p_b[..., 1])
    y_a = 0.5 * torch.log((p_a[..., 3] + p_a[..., 2]).clamp(min=EPS) / (p_a[..., 3] - p_a[..., 2]).clamp(min=EPS))
    y_b = 0.5 * torch.log((p_b[..., 3] + p_b[..., 2]).clamp(min=EPS) / (p_b[..., 3] - p_b[..., 2]).clamp(min=EPS))
    dphi = torch.atan2(p_a[..., 1], p_a[..., 0]) - torch.atan2(p_b[..., 1], p_b[..., 0])
    dphi = torch.atan2(torch.sin(dphi), torch.cos(dphi))
    delta = torch.sqrt((y_a - y_b) ** 2 + dphi**2)
    s = p_a + p_b
    m2 = s[..., 3] ** 2 - s[..., 0] ** 2 - s[..., 1] ** 2 - s[..., 2] ** 2
    lo = torch.minimum(pt_a, pt_b)
    u = torch.stack([delta.clamp(min=EPS).log(), (lo * delta).clamp(min=EPS).log(),
                     (lo / (pt_a + pt_b).clamp(min=EPS)).clamp(min=EPS).log(), m2.clamp(min=EPS).log()], -1)
    n = mask.shape[1]
    pair = mask[:, :, None] & mask[:, None, :] & ~torch.eye(n, dtype=torch.bool)
    return torch.where(pair[..., None], u, 0.0)


@pytest.mark.parametrize("block_size", [1, 4, 9])
def test_blocked_pair_embedding_equals_the_dense_grid(block_size):
    torch.manual_seed(0)
    momenta, mask = jets()
    mlp = MLP([4, 8, 8, 3], "gelu").double()
    dense = mlp(dense_pair_grid(momenta, mask)).permute(0, 3, 1, 2)
    blocked = pair_embedding(particle_kinematics(momenta, mask), mlp, block_size)
    torch.testing.assert_close(blocked, dense)
    weights = torch.randn_like(dense)
    grads = torch.autograd.grad((blocked * weights).sum(), list(mlp.parameters()))
    expected = torch.autograd.grad((dense * weights).sum(), list(mlp.parameters()))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


def test_attention_with_pair_bias_against_a_loop_oracle():
    torch.manual_seed(0)
    block = AttentionBlock(8, 2, 2, 0.0, 0.0, 0.0).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    bias = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    out = block.attention(x, x, mask, bias)
    q, k, v = block.query(x), block.key(x), block.value(x)
    heads = []
    for h in range(2):
        cols = slice(4 * h, 4 * h + 4)
        logits = q[..., cols] @ k[..., cols].transpose(1, 2) / 2.0 + bias[:, h]
        logits = torch.where(mask[:, None, :], logits, -math.inf)
        heads.append(torch.softmax(logits, -1) @ v[..., cols])
    torch.testing.assert_close(out, block.project(torch.cat(heads, -1)))


def small_part(**extra):
    return build_tagger("part-small", n_particles=9, n_features=5, embed_dims=[16, 16], pair_embed_dims=[8],
                        n_heads=2, n_layers=2, dropout=0.0, attn_dropout=0.0, activation_dropout=0.0,
                        **extra).double()


def test_part_is_permutation_invariant_blind_to_padding_and_uses_the_pairs():
    torch.manual_seed(0)
    model = small_part(block_size=2)
    momenta, mask = jets()
    x = torch.randn(4, 9, 5, dtype=torch.float64)
    out = model(x, momenta, mask)
    perm = torch.randperm(9)
    torch.testing.assert_close(model(x[:, perm], momenta[:, perm], mask[:, perm]), out)
    padded = model(torch.cat([x, torch.randn(4, 3, 5, dtype=torch.float64)], 1),
                   torch.cat([momenta, 100 * torch.rand(4, 3, 4, dtype=torch.float64)], 1),
                   torch.cat([mask, torch.zeros(4, 3, dtype=torch.bool)], 1))
    torch.testing.assert_close(padded, out)
    moved = momenta.clone()
    moved[0, 1] = moved[0, 1] * torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=torch.float64)  # φ -> -φ of one particle
    assert not torch.allclose(model(x, moved, mask)[0], out[0])  # the pair bias reaches the logits


def test_part_configurations():
    full = build_tagger("part", n_particles=30, n_features=7)
    assert (len(full.blocks), len(full.cls_blocks), full.blocks[0].heads) == (8, 2, 8)
    assert [layer[1].out_features for layer in full.embed] == [128, 512, 128]
    assert [layer.out_features for layer in full.pair_embed.layers] == [64, 64, 64, 8]
    assert 2_000_000 < sum(p.numel() for p in full.parameters()) < 2_300_000
    small = build_tagger("part-small", n_particles=30, n_features=7)
    assert (len(small.blocks), len(small.cls_blocks), small.blocks[0].heads) == (3, 2, 4)
