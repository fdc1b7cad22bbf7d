"""The GAN losses training calls (jetlab.losses.gan) against hand-computed values."""

import math

import pytest
import torch

from jetlab.losses import discriminator_loss, generator_loss, r1_penalty
from jetlab.training.tasks import gan as gan_task


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


REAL = torch.tensor([2.0, 0.5, -1.0], dtype=torch.float64)
FAKE = torch.tensor([-1.5, 0.25], dtype=torch.float64)


def test_non_saturating_losses_are_the_binary_cross_entropy_with_real_labelled_one():
    # L_D = -E[log D(real)] - E[log(1 - D(fake))], D = sigmoid(logit)
    expected_d = (-sum(_log_sigmoid(r) for r in REAL.tolist()) / 3
                  - sum(_log_sigmoid(-f) for f in FAKE.tolist()) / 2)
    assert discriminator_loss(REAL, FAKE, "ns").item() == pytest.approx(expected_d, rel=1e-12)
    # L_G = -E[log D(fake)]
    expected_g = -sum(_log_sigmoid(f) for f in FAKE.tolist()) / 2
    assert generator_loss(FAKE, "ns").item() == pytest.approx(expected_g, rel=1e-12)


def test_least_squares_losses_by_hand():
    expected_d = ((2 - 1) ** 2 + (0.5 - 1) ** 2 + (-1 - 1) ** 2) / 3 + (1.5**2 + 0.25**2) / 2
    assert discriminator_loss(REAL, FAKE, "ls").item() == pytest.approx(expected_d, rel=1e-12)
    expected_g = ((-1.5 - 1) ** 2 + (0.25 - 1) ** 2) / 2
    assert generator_loss(FAKE, "ls").item() == pytest.approx(expected_g, rel=1e-12)


@pytest.mark.parametrize("kind, real_logit, fake_logit", [("ns", 3.0, -3.0), ("ls", 1.0, 0.0)])
def test_a_discriminator_that_tells_real_from_fake_has_the_lower_loss(kind, real_logit, fake_logit):
    real, fake = torch.full((4,), real_logit), torch.full((4,), fake_logit)
    assert discriminator_loss(real, fake, kind) < 0.2 < discriminator_loss(fake, real, kind)
    # and the generator's loss falls as its sets are called real
    assert generator_loss(real, kind) < 0.2 < generator_loss(fake, kind)


def test_r1_penalty_of_a_linear_discriminator():
    # D(x) = Σ_points,features w·x  =>  ∇_x D = w at every point, ‖∇‖² = n_points · Σ w²
    w = torch.tensor([0.5, -2.0, 1.0], requires_grad=True)
    x = torch.randn(6, 4, 3, requires_grad=True)
    logits = (x * w).sum((1, 2))
    penalty = r1_penalty(logits, x)
    assert penalty.item() == pytest.approx(4 * float((w.detach()**2).sum()), rel=1e-6)
    # differentiable with respect to the discriminator's weights: d(4 Σ w²)/dw = 8 w
    (grad_w,) = torch.autograd.grad(penalty, w)
    torch.testing.assert_close(grad_w, 8 * w.detach())


def test_unknown_loss_kind_is_refused():
    with pytest.raises(ValueError, match="unknown GAN loss"):
        discriminator_loss(REAL, FAKE, "wasserstein")


def test_training_calls_these_losses():
    # the GAN task uses the functions tested above, not a copy of them
    assert gan_task.discriminator_loss is discriminator_loss
    assert gan_task.generator_loss is generator_loss
    assert gan_task.r1_penalty is r1_penalty
