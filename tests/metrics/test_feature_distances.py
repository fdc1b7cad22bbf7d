"""Tests for jetlab.metrics.feature_distances: JetNet's FPD and KPD."""

import numpy as np
import pytest
import torch

from jetlab.errors import JetlabError
from jetlab.metrics import fpd, kpd
from jetlab.metrics.feature_distances import fpd_sample_sizes, frechet_distance, mmd_poly_unbiased


def jetnet_samples():
    rng = np.random.default_rng(2026)
    cov = np.array([[1.0, 0.3, 0, 0], [0.3, 2.0, 0.5, 0], [0, 0.5, 1.5, 0.2], [0, 0, 0.2, 0.7]])
    real = rng.multivariate_normal([1, 2, 0, -1], cov, 6000)
    gen = rng.multivariate_normal([1.1, 2, 0.1, -1], cov * 1.1, 6000)
    return real, gen


def test_same_numbers_as_jetnet():
    # jetnet 0.2.5's jetnet.evaluation.fpd / kpd run on exactly these inputs and arguments
    real, gen = jetnet_samples()
    value, error = fpd(real, gen, min_samples=2000, max_samples=5000, num_batches=5,
                       num_points=4, seed=7)
    assert value == pytest.approx(0.0013039596432941323, rel=1e-6)  # sqrtm round-off
    assert error == pytest.approx(0.00013612578769570596, rel=1e-6)
    result = kpd(real[:1500], gen[:1500], num_batches=6, batch_size=1000, seed=3)
    assert tuple(result) == pytest.approx((0.002518827642081778, 0.0017620872276248806), rel=1e-10)
    result = kpd(torch.from_numpy(real[:1500]), gen[:1500], num_batches=6, batch_size=1000,
                 normalise=False, seed=3)
    assert tuple(result) == pytest.approx((2.3251763765230464, 1.8081256798041028), rel=1e-10)
    assert not result.sizes["capped"] and result.sizes["batch_size"] == 1000


def test_fpd_extrapolates_to_the_gaussians_closed_form():
    # diagonal covariances commute: d^2 = |mu1 - mu2|^2 + sum (sigma1 - sigma2)^2
    rng = np.random.default_rng(1)
    sd1, sd2 = np.array([1.0, 1.0, 1.0, 2.0]), np.array([1.2, 1.0, 0.5, 2.0])
    mu2 = np.array([0.3, 0.0, 0.0, 0.0])
    exact = mu2 @ mu2 + np.sum((sd1 - sd2) ** 2)  # 0.38
    real = rng.normal(0.0, sd1, (40_000, 4))
    gen = rng.normal(mu2, sd2, (40_000, 4))
    assert frechet_distance(np.zeros(4), np.diag(sd1**2), mu2, np.diag(sd2**2)) == \
        pytest.approx(exact, rel=1e-12)
    value, error = fpd(real, gen, min_samples=2000, max_samples=40_000, num_batches=4,
                       normalise=False)
    assert value == pytest.approx(exact, abs=0.02)
    assert 0 < error < 0.01


def test_fpd_truth_vs_truth_is_zero_within_its_error_and_below_the_finite_n_value():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, (2, 30_000, 10))
    result = fpd(a, b, min_samples=2000, max_samples=5000, normalise=False)
    at_max = np.mean([frechet_distance(a[i].mean(0), np.cov(a[i], rowvar=False),
                                       b[j].mean(0), np.cov(b[j], rowvar=False))
                      for i, j in (rng.integers(0, 30_000, (2, 5, 5000)).transpose(1, 0, 2))])
    # what is left at 1/N -> 0 is the FD of the two 30k-jet empirical samples, ~ 2.5e-3
    assert result.value <= 3 * result.error + 2.5e-3
    assert at_max > result.value + 5 * result.error  # the 1/N bias the fit removes


def test_normalisation_uses_the_real_sample():
    real, gen = jetnet_samples()
    gen = gen * 3.0
    scale = np.abs(real).max(0)
    options = dict(min_samples=500, max_samples=1000, num_batches=2, num_points=3)
    assert tuple(fpd(real, gen, **options)) == \
        pytest.approx(tuple(fpd(real / scale, gen / scale, normalise=False, **options)), rel=1e-12)
    assert tuple(kpd(real, gen, num_batches=3, batch_size=200)) == pytest.approx(
        tuple(kpd(real / scale, gen / scale, num_batches=3, batch_size=200, normalise=False)),
        rel=1e-12)


def test_unbiased_mmd_by_hand_and_kpd_draws():
    rng = np.random.default_rng(4)
    x, y = rng.normal(0, 1, (5, 3)), rng.normal(0.5, 1, (4, 3))

    def k(a, b):
        return (a @ b / 3 + 1) ** 4

    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20
    assert mmd_poly_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    # kpd: batch i drawn by default_rng(seed + 1000 i), real then generated, with replacement
    real, gen = rng.normal(0, 1, (6, 3)), rng.normal(0.2, 1, (6, 3))
    values = []
    for i in range(3):
        draw = np.random.default_rng(5 + 1000 * i)
        values.append(mmd_poly_unbiased(real[draw.choice(6, 6)], gen[draw.choice(6, 6)]))
    result = kpd(real, gen, num_batches=3, batch_size=6, normalise=False, seed=5)
    assert result.value == pytest.approx(np.median(values), rel=1e-12)
    assert result.error == pytest.approx((np.percentile(values, 83.725)
                                          - np.percentile(values, 16.275)) / 2, rel=1e-12)


def test_unbiased_mmd_has_zero_mean_for_identical_distributions():
    rng = np.random.default_rng(6)
    values = [mmd_poly_unbiased(rng.normal(0, 1, (30, 4)), rng.normal(0, 1, (30, 4)))
              for _ in range(400)]
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values))


def test_small_samples_cap_the_sizes_and_say_so():
    rng = np.random.default_rng(8)
    real, gen = rng.normal(0, 1, (2, 1000, 3))
    assert list(fpd_sample_sizes(10**6, 10**6)) == list(
        (1 / np.linspace(1 / 20_000, 1 / 50_000, 10)).astype("int32"))
    sizes = fpd_sample_sizes(1000, 5000)
    assert sizes[0] == 400 and sizes[-1] == 1000 and len(sizes) == 10
    result = fpd(real, gen, num_batches=2)
    assert result.sizes == {"n_real": 1000, "n_gen": 1000, "min_samples": 400,
                            "max_samples": 1000, "num_points": 10, "num_batches": 2,
                            "capped": True}
    result = kpd(real, gen[:700], num_batches=2)
    assert result.sizes["batch_size"] == 700 and result.sizes["capped"]


def test_bad_features():
    with pytest.raises(JetlabError, match="features must be"):
        fpd(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(JetlabError, match="at least 2 jets"):
        kpd(np.zeros((1, 3)), np.zeros((10, 3)))
    with pytest.raises(JetlabError, match="NaN"):
        kpd(np.full((5, 3), np.nan), np.zeros((10, 3)))
