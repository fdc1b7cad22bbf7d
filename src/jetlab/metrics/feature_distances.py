"""JetNet's Fréchet and kernel physics distances (FPD, KPD; Kansal et al., arXiv:2211.10295).

Both compare two samples of jet-level features (N, F) vs (M, F), by default the 36 d ≤ 4
EFPs of :func:`jetlab.metrics.efp.get_fpd_kpd_jet_features`, each feature first divided by
its max |value| in the **real** sample (``normalise=True``). Names, arguments, defaults,
random draws and return values are those of ``jetnet.evaluation.fpd`` / ``kpd`` (jetnet
0.2.5), so code written against JetNet runs unchanged and gives the same numbers (up to
round-off) on samples of at least ``max_samples`` (FPD) / ``batch_size`` (KPD) jets.

**FPD**: the Fréchet distance between Gaussians fitted to the two samples,

.. math::

    d_F^2 = \\lVert μ_1 - μ_2 \\rVert^2 + \\mathrm{Tr}\\big(Σ_1 + Σ_2 - 2 (Σ_1 Σ_2)^{1/2}\\big),

has a positive bias that falls like 1/N with the number of jets N. It is measured at
``num_points`` sizes N spaced linearly in 1/N from 1/``min_samples`` to 1/``max_samples``,
each the mean over ``num_batches`` draws (with replacement, ``np.random.default_rng(seed)``,
in JetNet's order), and a straight line a + b/N with a, b ≥ 0 (``scipy.optimize.curve_fit``)
is extrapolated to 1/N → 0: the result is (a, σ_a from the fit's covariance).

**KPD**: the unbiased estimate of the squared maximum mean discrepancy with the polynomial
kernel :math:`k(x, y) = (x^T y / d + 1)^{p}` (d features),

.. math::

    \\mathrm{MMD}^2_u = \\frac{1}{m(m-1)} \\sum_{i \\ne j} k(x_i, x_j)
        + \\frac{1}{n(n-1)} \\sum_{i \\ne j} k(y_i, y_j) - \\frac{2}{mn} \\sum_{i,j} k(x_i, y_j),

over ``num_batches`` batches of ``batch_size`` jets (batch i drawn with replacement by
``np.random.default_rng(seed + 1000 i)``), returning (median, half the 16.275–83.725
percentile range), i.e. JetNet's (median, "IQR"/2) with its ±1σ-equivalent percentiles. The
degree is **p = 4** in JetNet's code (``_mmd_poly_quadratic_unbiased(..., degree=4)``),
although the text of the paper and of KID speak of a cubic kernel; ``degree=3`` gives that.

**Small samples.** JetNet always draws ``min_samples``…``max_samples`` and ``batch_size``
jets, whatever the sample holds. Here no draw is larger than the smaller sample: with
n = min(N_real, N_gen) < ``max_samples`` the FPD sizes are scaled by n / ``max_samples``
(n·``min_samples``/``max_samples`` … n, same spacing), and the KPD batches hold
min(``batch_size``, n) jets. The sizes used are returned with the value
(:class:`FeatureDistance` ``.sizes``), so they can be written next to the number.
Compare a generator only with truth-vs-truth at the same sample sizes.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg
from scipy.stats import iqr

from jetlab.errors import JetlabError
from jetlab.metrics.jet_samples import matmul, to_numpy

__all__ = ["FeatureDistance", "fpd", "fpd_sample_sizes", "frechet_distance", "kpd",
           "mmd_poly_unbiased", "normalise_features"]


class FeatureDistance(tuple):
    """``(value, error)`` as JetNet returns it, plus ``.sizes``: the sample sizes used."""

    def __new__(cls, value: float, error: float, sizes: dict):
        obj = super().__new__(cls, (float(value), float(error)))
        obj.sizes = sizes
        return obj

    @property
    def value(self) -> float:
        return self[0]

    @property
    def error(self) -> float:
        return self[1]


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2).

    :math:`d^2 = \\lVert μ_1 - μ_2\\rVert^2 + \\mathrm{Tr}(Σ_1 + Σ_2 - 2 (Σ_1 Σ_2)^{1/2})`,
    with :math:`\\mathrm{Tr}(Σ_1Σ_2)^{1/2} = \\mathrm{Tr}(Σ_1^{1/2} Σ_2 Σ_1^{1/2})^{1/2}`
    evaluated on symmetric forms (the square root of the PSD Σ1 and the trace from the
    eigenvalues of :math:`Σ_1^{1/2} Σ_2 Σ_1^{1/2}`, both by ``eigh``, negative round-off
    clipped): no complex round-off from the non-symmetric product and no failure when a
    covariance is singular (fewer jets than features, a constant feature).

    Args:
        mu1: mean μ1.
        sigma1: covariance Σ1.
        mu2: mean μ2.
        sigma2: covariance Σ2.

    Returns:
        The squared distance d².

    Shapes:
        - mu1, mu2: ``(features,)``
        - sigma1, sigma2: ``(features, features)``
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, float)), np.atleast_1d(np.asarray(mu2, float))
    sigma1 = np.atleast_2d(np.asarray(sigma1, float))
    sigma2 = np.atleast_2d(np.asarray(sigma2, float))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape[0] != mu1.size:
        raise ValueError(f"inconsistent shapes: mu {mu1.shape}/{mu2.shape}, "
                         f"sigma {sigma1.shape}/{sigma2.shape}")
    eigenvalues, vectors = linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ vectors.T
    middle = root1 @ sigma2 @ root1
    eigenvalues = linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def normalise_features(real, gen) -> tuple[np.ndarray, np.ndarray]:
    """Both samples divided by the real sample's max |value| per feature (1 where it is 0).

    Args:
        real: features of the real jets.
        gen: features of the generated jets.

    Returns:
        ``(real, gen)`` scaled.

    Shapes:
        - real: ``(jets, features)``
        - gen: ``(other_jets, features)``
    """
    scale = np.max(np.abs(real), axis=0)
    scale[scale == 0] = 1.0
    return real / scale, gen / scale


def _features(real_features, gen_features) -> tuple[np.ndarray, np.ndarray]:
    real = np.asarray(to_numpy(real_features), dtype=np.float64)
    gen = np.asarray(to_numpy(gen_features), dtype=np.float64)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise JetlabError(f"features must be (N, F) and (M, F), got {real.shape} and {gen.shape}")
    if len(real) < 2 or len(gen) < 2:
        raise JetlabError(f"need at least 2 jets in each sample, got {len(real)} and {len(gen)}")
    if not (np.all(np.isfinite(real)) and np.all(np.isfinite(gen))):
        raise JetlabError("features contain NaN or infinity")
    return real, gen


def fpd_sample_sizes(n_real: int, n_gen: int, min_samples: int = 20_000,
                     max_samples: int = 50_000, num_points: int = 10) -> np.ndarray:
    """The FPD's sample sizes: JetNet's ``int32(1 / linspace(1/min, 1/max, num_points))``,
    scaled by n / ``max_samples`` when n = min(n_real, n_gen) is smaller (module docstring).

    Args:
        n_real: jets in the real sample.
        n_gen: jets in the generated sample.
        min_samples: smallest size (before the scaling).
        max_samples: largest size (before the scaling).
        num_points: sizes.

    Returns:
        The ``num_points`` int32 sizes, increasing.
    """
    if not 0 < min_samples <= max_samples or num_points < 2:
        raise JetlabError(f"need 0 < min_samples <= max_samples and num_points >= 2, got "
                          f"{min_samples}, {max_samples}, {num_points}")
    available = min(int(n_real), int(n_gen))
    if available < max_samples:
        min_samples = max(2, int(min_samples * available / max_samples))
        max_samples = available
    return (1 / np.linspace(1.0 / min_samples, 1.0 / max_samples, num_points)).astype("int32")


def _mean_cov(sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and covariance (F, F) of a sample (N, F), as ``np.cov(rowvar=False)``."""
    mean = sample.mean(0)
    centred = sample - mean
    return mean, matmul(centred.T, centred) / (len(sample) - 1)


def _linear(x, intercept, slope):
    return intercept + slope * x


def fpd(real_features, gen_features, min_samples: int = 20_000, max_samples: int = 50_000,
        num_batches: int = 20, num_points: int = 10, normalise: bool = True, seed: int = 42
        ) -> FeatureDistance:
    """Fréchet physics distance extrapolated to infinite samples (Kansal et al.,
    arXiv:2211.10295; module docstring).

    Args:
        real_features: features of the real jets, numpy or torch.
        gen_features: features of the generated jets.
        min_samples: smallest sample size of the fit (scaled down for small samples, see
            the module docstring).
        max_samples: largest sample size of the fit (capped at the smaller sample).
        num_batches: draws averaged at each size.
        num_points: sizes in the fit.
        normalise: divide each feature by the real sample's max |value|.
        seed: seed of the draws.

    Returns:
        :class:`FeatureDistance` (value, error) with ``.sizes``.

    Shapes:
        - real_features: ``(jets, features)``
        - gen_features: ``(other_jets, features)``
    """
    real, gen = _features(real_features, gen_features)
    if normalise:
        real, gen = normalise_features(real, gen)
    batches = fpd_sample_sizes(len(real), len(gen), min_samples, max_samples, num_points)
    rng = np.random.default_rng(seed)
    values = []
    for batch_size in batches:
        points = []
        for _ in range(num_batches):
            sample_real = real[rng.choice(len(real), size=batch_size)]
            sample_gen = gen[rng.choice(len(gen), size=batch_size)]
            points.append(frechet_distance(*_mean_cov(sample_real), *_mean_cov(sample_gen)))
        values.append(np.mean(points))
    from scipy.optimize import OptimizeWarning, curve_fit  # slow to import: only when needed

    with warnings.catch_warnings():  # a perfect fit leaves no covariance: error inf
        warnings.simplefilter("ignore", OptimizeWarning)
        params, covariance = curve_fit(_linear, 1 / batches, values,
                                       bounds=([0, 0], [np.inf, np.inf]))
    sizes = {"n_real": len(real), "n_gen": len(gen), "min_samples": int(batches[0]),
             "max_samples": int(batches[-1]), "num_points": int(num_points),
             "num_batches": int(num_batches),
             "capped": bool(min(len(real), len(gen)) < max_samples)}
    return FeatureDistance(params[0], np.sqrt(covariance[0, 0]), sizes)


def _kernel_sum(x: np.ndarray, y: np.ndarray, degree: int, block: int = 1024) -> float:
    """Σ_ij (x_i·y_j / d + 1)^degree, in row blocks to bound the memory."""
    total = 0.0
    for start in range(0, len(x), block):
        kernel = matmul(x[start:start + block], y.T)
        kernel /= x.shape[1]
        kernel += 1.0
        power = kernel.copy()
        for _ in range(degree - 1):  # repeated products: several times faster than ** here
            power *= kernel
        total += float(power.sum())
    return total


def mmd_poly_unbiased(x, y, degree: int = 4) -> float:
    """Unbiased MMD² of two samples with the kernel k = (xᵀy/d + 1)^degree (module docstring).

    Args:
        x: the first sample.
        y: the second sample.
        degree: the polynomial kernel's degree.

    Returns:
        MMD²_u (can be slightly negative).

    Shapes:
        - x: ``(m, features)``
        - y: ``(n, features)``
    """
    if int(degree) != degree or degree < 1:
        raise JetlabError(f"the kernel degree must be a positive integer, got {degree}")
    degree = int(degree)
    m, n = len(x), len(y)
    diag_x = float(np.sum((np.einsum("ij,ij->i", x, x) / x.shape[1] + 1.0) ** degree))
    diag_y = float(np.sum((np.einsum("ij,ij->i", y, y) / y.shape[1] + 1.0) ** degree))
    return ((_kernel_sum(x, x, degree) - diag_x) / (m * (m - 1))
            + (_kernel_sum(y, y, degree) - diag_y) / (n * (n - 1))
            - 2.0 * _kernel_sum(x, y, degree) / (m * n))


def kpd(real_features, gen_features, num_batches: int = 10, batch_size: int = 5_000,
        normalise: bool = True, seed: int = 42, num_threads: int | None = None, *,
        degree: int = 4) -> FeatureDistance:
    """Kernel physics distance (Kansal et al., arXiv:2211.10295; module docstring): the
    median and error of the unbiased MMD² over batches.

    Args:
        real_features: features of the real jets, numpy or torch.
        gen_features: features of the generated jets.
        num_batches: batches.
        batch_size: jets per batch and sample (capped at the smaller sample).
        normalise: divide each feature by the real sample's max |value|.
        seed: batch i is drawn by ``np.random.default_rng(seed + 1000 i)`` (JetNet).
        num_threads: accepted for compatibility with JetNet (numpy's BLAS threads here).
        degree: the polynomial kernel's degree (JetNet: 4).

    Returns:
        :class:`FeatureDistance` (median, half the 16.275–83.725 percentile range) with
        ``.sizes``.

    Shapes:
        - real_features: ``(jets, features)``
        - gen_features: ``(other_jets, features)``
    """
    del num_threads
    real, gen = _features(real_features, gen_features)
    if normalise:
        real, gen = normalise_features(real, gen)
    size = min(int(batch_size), len(real), len(gen))
    values = []
    for i in range(num_batches):
        rng = np.random.default_rng(seed + i * 1000)
        sample_real = real[rng.choice(len(real), size=size)]
        sample_gen = gen[rng.choice(len(gen), size=size)]
        values.append(mmd_poly_unbiased(sample_real, sample_gen, degree))
    sizes = {"n_real": len(real), "n_gen": len(gen), "batch_size": size,
             "num_batches": int(num_batches), "degree": int(degree),
             "capped": bool(size < batch_size)}
    return FeatureDistance(np.median(values), iqr(values, rng=(16.275, 83.725)) / 2, sizes)
