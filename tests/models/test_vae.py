"""SetVAE: shapes, encoder symmetries (permutation, padding), the KL and jet-mass formulas
against hand computations, the loss terms against nnd_loss, and a short training run."""

from __future__ import annotations

import math

import pytest
import torch

from jetlab.losses import kl_divergence, nnd_loss, vae_loss
from jetlab.models.vae import SetVAE
from jetlab.physics import relative_jet_kinematics


def _padded_batch(batch=4, n=8, features=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, n, features, generator=g) * 2 - 1
    counts = torch.tensor([n, 6, 1, 3])[:batch]
    mask = torch.arange(n).unsqueeze(0) < counts.unsqueeze(1)
    return torch.where(mask.unsqueeze(-1), x, torch.zeros_like(x)), mask


@pytest.mark.parametrize("encoder", ["interaction", "deepset"])
@pytest.mark.parametrize("decoder", ["mlp", "pointwise"])
@pytest.mark.parametrize("existence", [False, True])
def test_shapes(encoder, decoder, existence):
    vae = SetVAE(8, 3, latent_dim=5, encoder=encoder, decoder=decoder, hidden=16,
                 output_activation="mnist", existence=existence)
    x, mask = _padded_batch()
    recon, mu, logvar = vae(x, mask)
    assert recon.shape == (4, 8, 3 + existence) and mu.shape == logvar.shape == (4, 5)
    assert vae.decode(mu).shape == (4, 8, 3 + existence)
    points, sample_mask = vae.sample(6, torch.Generator().manual_seed(3), return_mask=True)
    assert points.shape == (6, 8, 3) and sample_mask.shape == (6, 8)
    assert ((points[..., 2] >= 0) & (points[..., 2] < 1)).all()
    assert (points[~sample_mask] == 0).all()
    if not existence:
        assert sample_mask.all()
    torch.testing.assert_close(vae.sample(6, torch.Generator().manual_seed(3)), points)
    loss, parts = vae_loss(x, mask, recon, mu, logvar, 0.1, n_coords=2)
    assert torch.isfinite(loss) and set(parts) == {"nnd", "kl"} | ({"existence"} if existence else set())


@pytest.mark.parametrize("encoder", ["interaction", "deepset"])
def test_encoder_ignores_padding_and_order(encoder):
    torch.manual_seed(0)
    vae = SetVAE(8, 3, latent_dim=5, encoder=encoder, hidden=16).eval()
    x, mask = _padded_batch()
    mu, logvar = vae.encode(x, mask)

    garbage = torch.where(mask.unsqueeze(-1), x, torch.full_like(x, float("nan")))
    torch.testing.assert_close(vae.encode(garbage, mask), (mu, logvar))
    longer = torch.cat([x, torch.randn(4, 5, 3) * 100], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(4, 5, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(vae.encode(longer, longer_mask), (mu, logvar), atol=1e-5, rtol=1e-5)

    perm = torch.randperm(8)
    torch.testing.assert_close(vae.encode(x[:, perm], mask[:, perm]), (mu, logvar), atol=1e-5, rtol=1e-5)

    moved = x.clone()
    moved[:, 0, 1] += 0.3  # a real point of every set
    assert (vae.encode(moved, mask)[0] - mu).abs().amax(1).min() > 0


def test_kl_divergence_by_hand():
    zero = torch.zeros(3, 4)
    assert torch.equal(kl_divergence(zero, zero), torch.zeros(3))
    mu = torch.tensor([[1.0, -2.0]])
    logvar = torch.tensor([[0.0, math.log(3.0)]])
    # 0.5 * (mu² + var - 1 - log var) summed: 0.5 * 1 + 0.5 * (4 + 3 - 1 - log 3)
    expected = 0.5 + 0.5 * (6 - math.log(3.0))
    torch.testing.assert_close(kl_divergence(mu, logvar), torch.tensor([expected]))
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, (0.5 * logvar).exp()), torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl_divergence(mu, logvar), reference)


def test_relative_jet_mass_of_two_particles():
    # two massless particles: m² = 2 pT1 pT2 (cosh Δη − cos Δφ)
    points = torch.tensor([[[0.3, -0.1, 0.6], [-0.2, 0.25, 0.4], [5.0, 5.0, 9.0]]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    mass, _, pt = relative_jet_kinematics(points, mask)
    expected = math.sqrt(2 * 0.6 * 0.4 * (math.cosh(0.5) - math.cos(0.35)))
    torch.testing.assert_close(mass, torch.tensor([expected], dtype=torch.float64))
    torch.testing.assert_close(pt, torch.tensor([1.0], dtype=torch.float64))
    shifted = points.clone()
    shifted[..., 0] += 1.3
    shifted[..., 1] -= 0.7
    torch.testing.assert_close(relative_jet_kinematics(shifted, mask).mass, mass)


def test_loss_terms_match_their_definitions():
    torch.manual_seed(0)
    x, mask = _padded_batch()
    recon = torch.rand(4, 8, 3)
    mu, logvar = torch.randn(4, 5), torch.randn(4, 5)
    total, parts = vae_loss(x, mask, recon, mu, logvar, 0.25, n_coords=2, beta_features=2.0, w_mass=3.0, w_pt=0.5)
    nnd = nnd_loss(recon, x, None, mask, n_coords=2, beta=2.0)
    kl = kl_divergence(mu, logvar).mean()
    m_r, _, pt_r = relative_jet_kinematics(recon)
    m_x, _, pt_x = relative_jet_kinematics(x, mask)
    mass, pt = (m_r - m_x).square().mean(), (pt_r - pt_x).square().mean()
    assert parts == pytest.approx({"nnd": float(nnd), "kl": float(kl), "mass": float(mass), "pt": float(pt)})
    torch.testing.assert_close(total, nnd + 0.25 * kl + 3.0 * mass + 0.5 * pt)


def test_existence_loss_uses_the_most_likely_points():
    x, mask = _padded_batch()
    counts = mask.sum(1)
    logits = torch.randn(4, 8)
    points = torch.rand(4, 8, 3)
    recon = torch.cat([points, logits.unsqueeze(-1)], dim=-1)
    zero = torch.zeros(4, 2)
    total, parts = vae_loss(x, mask, recon, zero, zero, 1.0)
    top = torch.zeros(4, 8, dtype=torch.bool)
    for b in range(4):
        top[b, logits[b].topk(int(counts[b])).indices] = True
    assert parts["nnd"] == pytest.approx(float(nnd_loss(points, x, top, mask)))
    bce = []
    for b in range(4):
        p = torch.sigmoid(logits[b].sort(descending=True).values)
        target = (torch.arange(8) < counts[b]).double()
        bce.append(-(target * p.double().log() + (1 - target) * (1 - p.double()).log()).mean())
    assert parts["existence"] == pytest.approx(float(torch.stack(bce).mean()), rel=1e-5)
    assert parts["kl"] == 0.0
    torch.testing.assert_close(total, torch.tensor(parts["nnd"] + parts["existence"]))


@pytest.mark.parametrize("encoder", ["deepset", "interaction"])
def test_loss_falls_on_a_tiny_set(encoder):
    torch.manual_seed(0)
    x, mask = _padded_batch(batch=4, n=8)
    x, mask = x.repeat(4, 1, 1), mask.repeat(4, 1)
    vae = SetVAE(8, 3, latent_dim=8, encoder=encoder, hidden=32)
    optimizer = torch.optim.Adam(vae.parameters(), lr=3e-3)

    def eval_loss():
        vae.eval()
        with torch.no_grad():
            recon, mu, logvar = vae(x, mask)
            return vae_loss(x, mask, recon, mu, logvar, 1e-3)[1]["nnd"]

    before = eval_loss()
    vae.train()
    for _ in range(50):
        recon, mu, logvar = vae(x, mask)
        loss, _ = vae_loss(x, mask, recon, mu, logvar, 1e-3)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert eval_loss() < 0.5 * before
