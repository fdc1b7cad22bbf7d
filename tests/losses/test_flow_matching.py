"""The conditional flow-matching loss (jetlab.losses.flow_matching) and the ODE sampler
(jetlab.models.flow.integrate) against the Gaussian case.

Oracle: for x₀ ~ N(μ₀, σ₀²) and x₁ ~ N(μ₁, σ₁²) independent, the OT path
x_t = a_t x₀ + t x₁ (a_t = 1 − (1 − σ_min) t) has Gaussian marginals N(m_t, s_t²),
m_t = a_t μ₀ + t μ₁, s_t² = a_t² σ₀² + t² σ₁², and the conditional velocity
u = x₁ − (1 − σ_min) x₀ is jointly Gaussian with x_t, so the marginal velocity is the
regression line

    E[u | x_t = x] = μ₁ − (1 − σ_min) μ₀ + c_t / s_t² (x − m_t),   c_t = t σ₁² − (1 − σ_min) a_t σ₀²,

and the loss of that field is its residual variance, L* = ∫₀¹ (Var u − c_t² / s_t²) dt with
Var u = σ₁² + (1 − σ_min)² σ₀² — the smallest value any field can reach. Integrated, the field moves every point along the
straight line of the affine map x₁ = μ₁ + σ₁ (x₀ − μ₀)/σ₀ (σ_min = 0): the ODE solvers' oracle.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from jetlab.losses.flow_matching import flow_matching_loss, ot_path
from jetlab.models.flow import integrate


def gaussian_velocity(mu0, s0, mu1, s1, sigma_min=0.0):
    """The exact marginal velocity field of the module docstring: v(x, t)."""
    def velocity(x, t):
        a = 1 - (1 - sigma_min) * t
        mean = a * mu0 + t * mu1
        var = a * a * s0 * s0 + t * t * s1 * s1
        cov = t * s1 * s1 - (1 - sigma_min) * a * s0 * s0
        return (mu1 - (1 - sigma_min) * mu0) + cov / var * (x - mean)
    return velocity


def minimum_loss(s0, s1, sigma_min=0.0) -> float:
    def residual(t):
        a = 1 - (1 - sigma_min) * t
        var = a * a * s0 * s0 + t * t * s1 * s1
        cov = t * s1 * s1 - (1 - sigma_min) * a * s0 * s0
        return s1 * s1 + (1 - sigma_min) ** 2 * s0 * s0 - cov * cov / var
    return quad(residual, 0, 1)[0]


MU1, S1 = 2.0, 0.5


def _loss(field, sigma_min=0.0, n=200_000, seed=0):
    """Loss of ``field(x, t)`` (t (B, 1)) on x₁ ~ N(MU1, S1²) in (B, 1) sets, common random numbers."""
    generator = torch.Generator().manual_seed(seed)
    x1 = MU1 + S1 * torch.randn(n, 1, generator=generator, dtype=torch.float64)
    return float(flow_matching_loss(lambda x, t, mask: field(x, t.unsqueeze(-1)), x1, sigma_min=sigma_min,
                                    generator=generator))


@pytest.mark.parametrize("sigma_min", [0.0, 0.1])
def test_the_exact_marginal_velocity_reaches_the_minimum_loss_and_perturbed_fields_do_worse(sigma_min):
    exact = gaussian_velocity(0.0, 1.0, MU1, S1, sigma_min)
    best = _loss(exact, sigma_min)
    # Monte Carlo error of the mean of 2e5 squared residuals ~ L* sqrt(2 / n) ~ 0.3 % of L*
    assert best == pytest.approx(minimum_loss(1.0, S1, sigma_min), rel=0.015)
    for perturbed in (lambda x, t: exact(x, t) + 0.1, lambda x, t: exact(x, t) * 1.1,
                      lambda x, t: exact(x, t) + 0.2 * (x - MU1 * t), gaussian_velocity(0.0, 1.0, MU1, 1.2 * S1, sigma_min)):
        assert _loss(perturbed, sigma_min) > best + 1e-3


def test_ot_path_ends_and_velocity():
    x0, x1 = torch.randn(2, 5, 4, 3, dtype=torch.float64)
    t = torch.rand(5, dtype=torch.float64)
    x_t, u = ot_path(x0, x1, t)
    torch.testing.assert_close(x_t, (1 - t)[:, None, None] * x0 + t[:, None, None] * x1)
    torch.testing.assert_close(ot_path(x0, x1, torch.zeros(5, dtype=torch.float64))[0], x0)
    torch.testing.assert_close(ot_path(x0, x1, torch.ones(5, dtype=torch.float64))[0], x1)
    torch.testing.assert_close(u, x1 - x0)
    # sigma_min: u is d x_t / dt (finite difference), and x_1 = x1 + sigma_min x0
    h = 1e-6
    x_a, u_s = ot_path(x0, x1, t, 0.2)
    x_b, _ = ot_path(x0, x1, t + h, 0.2)
    torch.testing.assert_close((x_b - x_a) / h, u_s, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ot_path(x0, x1, torch.ones(5, dtype=torch.float64), 0.2)[0], x1 + 0.2 * x0)


def test_padded_particles_take_no_part_in_the_loss():
    generator = torch.Generator().manual_seed(1)
    batch, n_points, n_features = 6, 5, 3
    x1 = torch.randn(batch, n_points, n_features, generator=generator, dtype=torch.float64)
    counts = torch.tensor([5, 1, 3, 4, 2, 5])
    mask = torch.arange(n_points)[None] < counts[:, None]
    x0 = torch.randn(batch, n_points, n_features, generator=generator, dtype=torch.float64)
    t = torch.rand(batch, generator=generator, dtype=torch.float64)
    seen = []

    def velocity(x, t_, m):
        seen.append(x)
        return 0.5 * x + t_[:, None, None]

    loss = flow_matching_loss(velocity, x1, mask, t=t, x0=x0)
    # by hand: mean over the real particles' features of (v(x_t) - (x1 - x0))^2
    x_t = (1 - t)[:, None, None] * x0 + t[:, None, None] * x1
    error = (0.5 * x_t + t[:, None, None] - (x1 - x0)) ** 2
    assert float(loss) == pytest.approx(float(error[mask].mean()), rel=1e-12)
    assert (seen[0][~mask] == 0).all()  # the network sees zeros where particles are padded
    # padded values (of the data and of the noise) change nothing
    garbage = torch.where(mask[..., None], x1, torch.full_like(x1, 1e3))
    noise = torch.where(mask[..., None], x0, torch.full_like(x0, -7.0))
    assert float(flow_matching_loss(velocity, garbage, mask, t=t, x0=noise)) == pytest.approx(float(loss), rel=1e-12)


def test_loss_draws_from_its_generator_only():
    x1 = torch.randn(8, 4, 3)
    mask = torch.ones(8, 4, dtype=torch.bool)
    field = lambda x, t, m: x * t[:, None, None]  # noqa: E731
    a = flow_matching_loss(field, x1, mask, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    b = flow_matching_loss(field, x1, mask, generator=torch.Generator().manual_seed(3))
    assert float(a) == float(b) and math.isfinite(float(a))
    assert np.isfinite(float(flow_matching_loss(field, x1, torch.zeros_like(mask))))  # an all-padded batch: 0, not nan


MU0, S0, MU1_ODE, S1_ODE = -0.5, 1.5, 2.0, 0.4


def _transport_error(solver: str, steps: int) -> float:
    x0 = torch.linspace(-3, 3, 101, dtype=torch.float64)
    velocity = gaussian_velocity(MU0, S0, MU1_ODE, S1_ODE)
    x1 = integrate(velocity, x0, steps, solver)
    return float((x1 - (MU1_ODE + S1_ODE * (x0 - MU0) / S0)).abs().max())


@pytest.mark.parametrize("solver, order", [("euler", 1), ("midpoint", 2), ("heun", 2)])
def test_solvers_transport_gaussian_to_gaussian_with_their_order(solver, order):
    errors = [_transport_error(solver, steps) for steps in (8, 16, 32, 64)]
    assert errors[-1] < (4e-2 if order == 1 else 2e-3)
    observed = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    # at least the solver's order (midpoint converges faster on this linear field: its leading
    # error term cancels); Euler exactly first order
    assert all(o > order - 0.3 for o in observed[1:]), observed
    if order == 1:
        assert all(abs(o - 1) < 0.3 for o in observed[1:]), observed


def test_sampled_gaussian_has_the_target_moments():
    generator = torch.Generator().manual_seed(0)
    x0 = MU0 + S0 * torch.randn(100_000, generator=generator, dtype=torch.float64)
    x1 = integrate(gaussian_velocity(MU0, S0, MU1_ODE, S1_ODE), x0, 10, "midpoint")
    assert float(x1.mean()) == pytest.approx(MU1_ODE, abs=4 * S1_ODE / math.sqrt(len(x0)) + 1e-3)
    assert float(x1.std()) == pytest.approx(S1_ODE, rel=0.01)
    with pytest.raises(ValueError, match="unknown ODE solver"):
        integrate(lambda x, t: x, x0, 4, "rk4")
