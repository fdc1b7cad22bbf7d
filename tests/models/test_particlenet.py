"""ParticleNet: the k-NN graph and an EdgeConv block against a per-jet oracle, masking,
permutation invariance, and the published configurations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jetlab.errors import JetlabError
from jetlab.models import build_tagger
from jetlab.models.particlenet import EdgeConvBlock, knn


def cloud(b=6, n=10, f=5, seed=0, dtype=torch.float64):
    """A batch of particle clouds with 1..n real particles (padded rows hold garbage, not zeros)."""
    g = torch.Generator().manual_seed(seed)
    n_real = torch.tensor([1, 2, 3, n, n - 1, 5][:b])
    mask = torch.arange(n) < n_real[:, None]
    return torch.randn(b, n, f, generator=g, dtype=dtype), torch.randn(b, n, 2, generator=g, dtype=dtype), mask


def nearest_real(coordinates: np.ndarray, mask: np.ndarray, i: int, k: int) -> list[int]:
    """Oracle: the k nearest real particles j != i of one jet, by sorting distances."""
    others = [j for j in range(len(mask)) if mask[j] and j != i]
    return sorted(others, key=lambda j: float(np.sum((coordinates[i] - coordinates[j]) ** 2)))[:k]


@pytest.mark.parametrize("k", [1, 3, 7])
def test_knn_takes_the_k_nearest_real_particles(k):
    _, points, mask = cloud()
    index, valid = knn(points, mask, k)
    assert index.shape == valid.shape == (6, 10, min(k, 9))
    for b in range(6):
        for i in range(10):
            got = sorted(index[b, i][valid[b, i]].tolist())
            want = sorted(nearest_real(points[b].numpy(), mask[b].numpy(), i, k)) if mask[b, i] else []
            assert got == want, (b, i)


def edge_conv_oracle(block: EdgeConvBlock, coordinates, x, mask) -> torch.Tensor:
    """One jet at a time, real particles only, loops over neighbours (eval-mode batch norm = affine)."""
    def affine(norm, t):
        return (t - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps) * norm.weight + norm.bias

    out = torch.zeros(*x.shape[:2], block.linears[-1].out_features, dtype=x.dtype)
    for b in range(x.shape[0]):
        for i in torch.nonzero(mask[b]).flatten().tolist():
            messages = []
            for j in nearest_real(coordinates[b].numpy(), mask[b].numpy(), i, block.k):
                h = torch.cat([x[b, i], x[b, j] - x[b, i]])
                for linear, norm in zip(block.linears, block.norms):
                    h = torch.relu(affine(norm, linear(h)))
                messages.append(h)
            mean = torch.stack(messages).mean(0) if messages else 0.0
            shortcut = x[b, i] if block.shortcut is None else affine(block.shortcut_norm, block.shortcut(x[b, i]))
            out[b, i] = torch.relu(shortcut + mean)
    return out


@pytest.mark.parametrize("in_features,widths", [(5, [8, 8, 6]), (6, [8, 6])])
def test_edge_conv_block_against_oracle(in_features, widths):
    torch.manual_seed(0)
    x, points, mask = cloud(f=in_features)
    block = EdgeConvBlock(4, in_features, widths).double()
    with torch.no_grad():  # non-trivial running statistics
        for norm in [*block.norms, block.shortcut_norm]:
            if norm is not None:
                norm.running_mean.uniform_(-0.5, 0.5)
                norm.running_var.uniform_(0.5, 2.0)
                norm.weight.uniform_(0.5, 1.5)
    block.eval()
    x = torch.where(mask[..., None], x, 0.0)
    with torch.no_grad():
        torch.testing.assert_close(block(points, x, mask), edge_conv_oracle(block, points, x, mask))


def test_particlenet_is_permutation_invariant_and_blind_to_padding():
    torch.manual_seed(0)
    model = build_tagger("particlenet-lite", n_particles=10, n_features=5, k=3, dropout=0.0).double()
    x, points, mask = cloud()
    out = model(x, points, mask)  # training mode: batch statistics over real particles and edges only
    perm = torch.randperm(10)
    torch.testing.assert_close(model(x[:, perm], points[:, perm], mask[:, perm]), out)
    pad = torch.randn(6, 4, 5, dtype=torch.float64)
    padded = model(torch.cat([x, pad], 1), torch.cat([points, pad[..., :2]], 1),
                   torch.cat([mask, torch.zeros(6, 4, dtype=torch.bool)], 1))
    torch.testing.assert_close(padded, out)
    model.eval()
    torch.testing.assert_close(model(x[:, perm], points[:, perm], mask[:, perm]), model(x, points, mask))


def test_particlenet_configurations_are_the_papers():
    full = build_tagger("particlenet", n_particles=30, n_features=7)
    lite = build_tagger("particlenet-lite", n_particles=30, n_features=7)
    for model, k, widths, fc in ((full, 16, [64, 128, 256], 256), (lite, 7, [32, 64], 128)):
        assert [block.k for block in model.blocks] == [k] * len(widths)
        assert [[layer.out_features for layer in block.linears] for block in model.blocks] == [[w] * 3 for w in widths]
        assert model.head[0].out_features == fc and model.head[2].p == 0.1
    # the paper's parameter counts with its 7 inputs: ~366k and ~26k
    assert 360_000 < sum(p.numel() for p in full.parameters()) < 370_000
    assert 25_000 < sum(p.numel() for p in lite.parameters()) < 28_000
    with pytest.raises(JetlabError, match="conv_widths"):
        build_tagger("particlenet", n_particles=30, n_features=7, conv_widths=[64, 128])
