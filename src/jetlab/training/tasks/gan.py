"""Training the message-passing GAN (MPGAN style, Kansal et al. arXiv:2106.11535): generator
:class:`~jetlab.models.mpgan.MPGenerator` against discriminator
:class:`~jetlab.models.mpgan.MPDiscriminator`, each with its own Adam.

One training step on a batch of B real sets x (mask m): ``d_steps`` discriminator updates,
each on B freshly generated sets, with ``L_D`` of :func:`jetlab.losses.gan.discriminator_loss`
(+ ``(γ/2)·R1`` when ``r1_gamma`` > 0); then one generator update with
:func:`jetlab.losses.gan.generator_loss`, the discriminator frozen. Fake sets get the
multiplicities of the real batch (MPGAN), unless every training set was full.

Monitor: for jets the per-epoch W1-M (``val_w1m``, :mod:`.sets`) picks the best epoch; for
MNIST there is none and the last epoch is kept.
"""

from __future__ import annotations

import torch

from jetlab.losses import discriminator_loss, generator_loss, r1_penalty
from jetlab.training.point_sets import Normalisation
from jetlab.training.tasks.base import Update
from jetlab.training.tasks.sets import SetGeneratorTask

__all__ = ["GANTask"]


class GANTask(SetGeneratorTask):
    """Networks ``"generator"`` and ``"discriminator"`` (module docstring)."""

    name = "gan"

    def __init__(self, generator, discriminator, optimizer_g, optimizer_d, norm: Normalisation, *, kind: str,
                 loss: str = "ns", r1_gamma: float = 1.0, d_steps: int = 1, **options):
        super().__init__({"generator": generator, "discriminator": discriminator},
                         {"generator": optimizer_g, "discriminator": optimizer_d}, norm, kind=kind, **options)
        self.loss = loss
        self.r1_gamma = r1_gamma
        self.d_steps = d_steps
        self.monitor = "w1m" if self.has_metric else None

    def train_step(self, batch, update: Update) -> dict[str, float]:
        generator, discriminator = self.modules["generator"], self.modules["discriminator"]
        x, mask = self.encode(batch)
        n = x.shape[0]
        counts = None if self.norm.always_full else mask.sum(1)
        numbers = {}
        for _ in range(self.d_steps):
            with torch.no_grad():
                fake, fake_mask = generator.sample(n, counts=counts, return_mask=True)
            real = x.detach().requires_grad_(self.r1_gamma > 0)
            d_real, d_fake = discriminator(real, mask), discriminator(fake, fake_mask)
            loss_d = discriminator_loss(d_real, d_fake, self.loss)
            if self.r1_gamma > 0:
                r1 = r1_penalty(d_real, real)
                loss_d = loss_d + 0.5 * self.r1_gamma * r1
                numbers["r1"] = r1.item()
            update("discriminator", loss_d)

        discriminator.requires_grad_(False)
        fake, fake_mask = generator.sample(n, counts=counts, return_mask=True)
        loss_g = generator_loss(discriminator(fake, fake_mask), self.loss)
        update("generator", loss_g)
        discriminator.requires_grad_(True)
        numbers.update(loss_d=loss_d.item(), loss_g=loss_g.item(), d_real=d_real.detach().mean().item(),
                       d_fake=d_fake.mean().item())
        return numbers

    def sample_model_tensor(self, n: int):
        generator = self.modules["generator"]
        counts = self.norm.sample_counts(n, self.device)
        return generator.sample(n, counts=counts, return_mask=True)
