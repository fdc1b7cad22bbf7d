"""MPGAN generator/discriminator: the message-passing layer against a per-edge loop,
symmetries (permutation, padding), output activations and a few training steps."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from jetlab.losses import discriminator_loss, generator_loss
from jetlab.models.mpgan import (
    MessagePassingLayer,
    MPDiscriminator,
    MPGenerator,
    masked_mean_max,
)


def _padded_batch(batch=4, n=7, features=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, features, generator=g)
    counts = torch.tensor([n, 5, 1, 3])[:batch]
    mask = torch.arange(n).unsqueeze(0) < counts.unsqueeze(1)
    return torch.where(mask.unsqueeze(-1), x, torch.zeros_like(x)), mask


def test_message_passing_layer_matches_edge_loop():
    torch.manual_seed(0)
    layer = MessagePassingLayer(3, 5, 6, edge_features=1)
    h, mask = _padded_batch()
    edge_attr = torch.rand(4, 7, 7, 1)
    out = layer(h, mask, edge_attr)

    def edge_mlp(hi, hj, d):
        w = torch.cat([layer.edge_receiver.weight, layer.edge_sender.weight, layer.edge_attr.weight], dim=1)
        pre = F.linear(torch.cat([hi, hj, d]), w, layer.edge_receiver.bias)
        return F.leaky_relu(layer.edge_out(F.leaky_relu(pre, 0.2)), 0.2)

    for b in range(4):
        for i in range(7):
            if not mask[b, i]:
                assert (out[b, i] == 0).all()
                continue
            senders = [j for j in range(7) if j != i and mask[b, j]]
            if senders:
                message = torch.stack([edge_mlp(h[b, i], h[b, j], edge_attr[b, i, j]) for j in senders]).mean(0)
            else:
                message = torch.zeros(6)
            expected = layer.node_out(F.leaky_relu(layer.node_hidden(torch.cat([h[b, i], message])), 0.2))
            torch.testing.assert_close(out[b, i], expected, atol=1e-5, rtol=1e-5)


def test_discriminator_gradients_are_exact():
    # the pair-grid temporaries are updated in place: check first and second derivatives
    # (the R1 penalty needs the latter) against finite differences
    torch.manual_seed(0)
    disc = MPDiscriminator(2, hidden=4, n_layers=1).double()
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    assert torch.autograd.gradcheck(lambda t: disc(t, mask), (x,))
    assert torch.autograd.gradgradcheck(lambda t: disc(t, mask), (x,))


def test_masked_mean_max_by_hand():
    h = torch.tensor([[[1.0, -2.0], [3.0, 5.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    torch.testing.assert_close(masked_mean_max(h, mask), torch.tensor([[2.0, 1.5, 3.0, 5.0]]))
    assert (masked_mean_max(h, torch.zeros_like(mask)) == 0).all()


def test_shapes_and_output_activations():
    gen = MPGenerator(n_points=11, n_features=3, latent_dim=8, hidden=16, n_layers=2, output_activation="mnist")
    assert MPGenerator(11, 3).latent_dim == 32 and MPDiscriminator(3).n_coords == 2
    points = gen(torch.randn(5, 11, 8))
    assert points.shape == (5, 11, 3)
    assert ((points[..., 2] > 0) & (points[..., 2] < 1)).all()
    assert (points[..., :2] < 0).any()  # coordinates are not squashed
    jets = MPGenerator(11, 3, 8, hidden=16, output_activation="jets").sample(4)
    assert jets.shape == (4, 11, 3) and (jets[..., 2] > 0).all()

    sampled, mask = gen.sample(3, torch.Generator().manual_seed(1), counts=torch.tensor([11, 4, 0]),
                               return_mask=True)
    assert mask.sum(1).tolist() == [11, 4, 0]
    assert (sampled[~mask] == 0).all() and (sampled[0] != 0).any()
    again = gen.sample(3, torch.Generator().manual_seed(1), counts=torch.tensor([11, 4, 0]))
    torch.testing.assert_close(sampled, again)

    disc = MPDiscriminator(n_features=3, hidden=16, n_layers=2)
    assert disc(points).shape == (5,)
    with pytest.raises(ValueError, match="output activations"):
        MPGenerator(4, 3, output_activation=("none", "sigmoid"))


def test_generator_is_permutation_equivariant():
    torch.manual_seed(0)
    gen = MPGenerator(9, 3, latent_dim=6, hidden=16, n_layers=3)
    z = torch.randn(2, 9, 6)
    perm = torch.randperm(9)
    torch.testing.assert_close(gen(z[:, perm]), gen(z)[:, perm], atol=1e-5, rtol=1e-5)
    # the points interact: changing one noise vector moves the others
    z2 = z.clone()
    z2[:, 0] += 1.0
    assert not torch.allclose(gen(z2)[:, 1:], gen(z)[:, 1:])


@pytest.mark.parametrize("n_coords", [2, 0])
def test_discriminator_permutation_and_mask_invariance(n_coords):
    torch.manual_seed(0)
    disc = MPDiscriminator(3, hidden=16, n_layers=2, n_coords=n_coords)
    x, mask = _padded_batch()
    logits = disc(x, mask)

    perm = torch.randperm(7)
    torch.testing.assert_close(disc(x[:, perm], mask[:, perm]), logits, atol=1e-5, rtol=1e-5)

    garbage = torch.where(mask.unsqueeze(-1), x, torch.full_like(x, float("nan")))
    torch.testing.assert_close(disc(garbage, mask), logits)
    longer = torch.cat([x, torch.randn(4, 3, 3) * 50], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(4, 3, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(disc(longer, longer_mask), logits, atol=1e-5, rtol=1e-5)

    moved = x.clone()
    moved[:, 0, 0] += 0.5  # a real point in every set
    assert (disc(moved, mask) - logits).abs().min() > 0


def test_training_steps_change_weights_and_stay_finite():
    torch.manual_seed(0)
    real, mask = _padded_batch(batch=4, n=7)
    gen = MPGenerator(7, 3, latent_dim=8, hidden=16, n_layers=2)
    disc = MPDiscriminator(3, hidden=16, n_layers=2)
    gen_before, disc_before = copy.deepcopy(gen.state_dict()), copy.deepcopy(disc.state_dict())
    opt_g = torch.optim.Adam(gen.parameters(), 1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), 1e-3, betas=(0.5, 0.999))
    counts = mask.sum(1)
    for _ in range(4):
        fake, fake_mask = gen.sample(4, counts=counts, return_mask=True)
        loss_d = discriminator_loss(disc(real, mask), disc(fake.detach(), fake_mask))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        fake, fake_mask = gen.sample(4, counts=counts, return_mask=True)
        loss_g = generator_loss(disc(fake, fake_mask))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    for before, model in ((gen_before, gen), (disc_before, disc)):
        for name, value in model.state_dict().items():
            assert not torch.equal(before[name], value), name
