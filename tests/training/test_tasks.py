"""The training tasks update their networks with exactly the losses of jetlab.losses (the ones
the loss tests check), with every term: replayed here from the same random numbers."""

import pytest
import torch

from jetlab.losses import discriminator_loss, generator_loss, r1_penalty, vae_loss
from jetlab.models.mpgan import MPDiscriminator, MPGenerator
from jetlab.models.vae import SetVAE
from jetlab.training.point_sets import Normalisation
from jetlab.training.tasks import GANTask, VAETask


def _sets(n=6, p=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(n, p, 3, generator=g)
    mask = torch.arange(p).expand(n, p) < torch.randint(2, p + 1, (n, 1), generator=g)
    return {"points": torch.where(mask.unsqueeze(-1), points, 0.0), "mask": mask}


class Recorder:
    """Stands in for the engine's update: keeps the losses instead of stepping."""

    def __init__(self):
        self.losses = []

    def __call__(self, name, loss):
        self.losses.append((name, loss.detach().clone()))


@pytest.mark.parametrize("kind, r1_gamma, d_steps", [("ns", 1.0, 1), ("ls", 0.0, 1), ("ns", 0.5, 2)])
def test_gan_step_uses_the_gan_losses_and_the_r1_term(kind, r1_gamma, d_steps):
    batch = _sets()
    norm = Normalisation.fit(batch["points"].numpy(), batch["mask"].numpy())
    torch.manual_seed(0)
    gen, disc = MPGenerator(5, 3, latent_dim=4, hidden=8, n_layers=1), MPDiscriminator(3, hidden=8, n_layers=1)
    task = GANTask(gen, disc, None, None, norm, kind="mnist", loss=kind, r1_gamma=r1_gamma, d_steps=d_steps)
    update = Recorder()
    torch.manual_seed(7)
    task.train_step(batch, update)
    assert [name for name, _ in update.losses] == ["discriminator"] * d_steps + ["generator"]

    torch.manual_seed(7)  # replay: the same noise, the losses by hand
    x = norm.encode(batch["points"], batch["mask"])
    counts = batch["mask"].sum(1)
    for step in range(d_steps):
        with torch.no_grad():
            fake, fake_mask = gen.sample(6, counts=counts, return_mask=True)
        real = x.clone().requires_grad_(True)
        d_real = disc(real, batch["mask"])
        expected = discriminator_loss(d_real, disc(fake, fake_mask), kind)
        if r1_gamma:
            expected = expected + 0.5 * r1_gamma * r1_penalty(d_real, real)
        torch.testing.assert_close(update.losses[step][1], expected.detach())
    fake, fake_mask = gen.sample(6, counts=counts, return_mask=True)
    torch.testing.assert_close(update.losses[-1][1], generator_loss(disc(fake, fake_mask), kind).detach())


def test_vae_step_uses_the_vae_loss_with_its_jet_terms():
    batch = _sets(seed=1)
    norm = Normalisation.fit(batch["points"].numpy(), batch["mask"].numpy(), log_columns=(2,))
    torch.manual_seed(0)
    vae = SetVAE(5, 3, latent_dim=4, hidden=8, encoder="deepset", existence=True)
    task = VAETask(vae, None, norm, kind="jets", n_coords=2, kl_weight=0.3, nnd_feature_weight=2.0,
                   mass_weight=5.0, pt_weight=0.5)
    update = Recorder()
    torch.manual_seed(3)
    numbers = task.train_step(batch, update)
    assert [name for name, _ in update.losses] == ["vae"] and {"mass", "pt", "kl", "nnd", "existence"} <= set(numbers)

    torch.manual_seed(3)
    x = norm.encode(batch["points"], batch["mask"])
    recon, mu, logvar = vae(x, batch["mask"])
    expected, parts = vae_loss(x, batch["mask"], recon, mu, logvar, 0.3, n_coords=2, beta_features=2.0, w_mass=5.0,
                               w_pt=0.5, to_physical=norm.decode_differentiable)
    torch.testing.assert_close(update.losses[0][1], expected.detach())
    assert parts["mass"] > 0 and parts["kl"] > 0  # every term is really there
