"""Generative-model metrics for jets, following JetNet/MPGAN (Kansal et al., arXiv:2106.11535).

Jets are particle arrays ``(N, P, 3)`` of (η_rel, φ_rel, pT_rel) with an optional boolean mask
``(N, P)`` (True = real particle), or ``(N, P, 4)`` with the mask as the 4th column (the JetNet
layout; a particle is real when the column is ≥ 0.5). Without any mask a particle is real when
its three features are not all zero (JetNet's ``exclude_zeros``). Masked particles are zeroed.

Metrics (each as mean ± std over ``num_batches`` bootstrap batches of ``num_eval_samples`` jets
drawn with replacement from each sample, as ``jetnet.evaluation``):

- **W1-M**: 1-Wasserstein distance (``scipy.stats.wasserstein_distance``) between the relative
  jet masses, :math:`m = \\sqrt{(\\sum E)^2 - |\\sum \\vec p|^2}` of massless particles with
  :math:`(p_T, η, φ) = (p_{T,rel}, η_{rel}, φ_{rel})` (so m is in units of the jet pT).
- **W1-P**: W1 of each particle feature over all real particles of the batch's jets, averaged
  over the 3 features (the per-feature values are reported too).
- **W1-EFP**: W1 of each of the 5 EFPs of :mod:`jetlab.metrics.efp` (n = 4, d = 4, prime;
  hadronic measure, β = 1, unnormalised pT_rel), averaged over the 5 EFPs (MPGAN's table).
- **FPD**: Fréchet distance
  :math:`\\lVert μ_1-μ_2 \\rVert^2 + \\mathrm{Tr}(Σ_1+Σ_2-2(Σ_1Σ_2)^{1/2})` between
  Gaussians fitted to jet-level features (relative mass and the 5 EFPs), each feature
  divided by its max |value| in the real sample (JetNet's ``normalise``). This is the value at
  the batch size used (not JetNet's 1/N → 0 extrapolation), so compare it only with the
  truth-vs-truth value measured at the same size.
- **COV / MMD** with the energy mover's distance between jets (weighted point clouds in
  (η, φ), weights pT, Euclidean ground distance / R). Default: energyflow's ``emds`` default
  as used by JetNet's ``cov_mmd`` (``norm=False``: unbalanced, the pT difference is moved at
  cost 1); ``emd_norm=True`` normalises the pTs to sum 1. On ``num_eval_samples = 100`` real vs
  100 generated jets per batch: **COV** = fraction of real jets that are the nearest neighbour
  of some generated jet, **MMD** = mean over real jets of the EMD to the nearest generated jet.

:func:`evaluate_generated` reports every metric twice: real vs generated and real vs real
(two independent halves of the real sample), the baseline a generator is measured against.
"""

from __future__ import annotations


import numpy as np
from scipy.stats import wasserstein_distance

from jetlab.errors import JetlabError
from jetlab.metrics.efp import efps as compute_efps
from jetlab.metrics.feature_distances import frechet_distance
from jetlab.metrics.emd import coverage_mmd, coverage_mmd_batches, emd, emd_matrix
from jetlab.metrics.jet_samples import Score, as_particles, check_nonnegative_pt, draw, eval_size, score, to_numpy
from jetlab.physics.kinematics import relative_jet_kinematics

__all__ = [
    "Score",
    "as_particles",
    "jet_mass",
    "jet_features",
    "w1m",
    "w1p",
    "w1efp",
    "frechet_distance",
    "fpd",
    "emd",
    "emd_matrix",
    "coverage_mmd",
    "evaluate_generated",
    "format_metrics_table",
    "METRICS",
]

PARTICLE_FEATURE_NAMES = ("eta", "phi", "pt")
JET_FEATURE_NAMES = ("mass", "efp0", "efp1", "efp2", "efp3", "efp4")
#: metric key -> label used by :func:`format_metrics_table`
METRICS = {
    "w1m": "W1-M",
    "w1p": "W1-P",
    "w1p_eta": "  W1 eta_rel",
    "w1p_phi": "  W1 phi_rel",
    "w1p_pt": "  W1 pT_rel",
    "w1efp": "W1-EFP",
    "fpd": "FPD",
    "cov": "COV",
    "mmd": "MMD",
}


# ------------------------------------------------------------------------- jet features


def jet_mass(particles, mask=None) -> np.ndarray:
    """Relative jet mass (N,) of massless particles (η_rel, φ_rel, pT_rel) (N, P, ≥3)
    (:func:`jetlab.physics.kinematics.relative_jet_kinematics`)."""
    return relative_jet_kinematics(np.asarray(particles, dtype=np.float64), mask).mass


def jet_features(particles, mask=None) -> np.ndarray:
    """Jet-level features for FPD: (N, 6) = relative mass and the 5 EFPs."""
    return np.concatenate([jet_mass(particles, mask)[:, None], compute_efps(particles, mask)], 1)


# ----------------------------------------------------------------------- bootstrapping


def _w1_columns_batches(real: np.ndarray, gen: np.ndarray, num_eval_samples: int | None,
                        num_batches: int, replace: bool, seed) -> np.ndarray:
    """W1 of each column of real (N, F) vs gen (M, F) per batch -> (num_batches, F)."""
    rng = np.random.default_rng(seed)
    size = eval_size(len(real), len(gen), num_eval_samples)
    out = np.empty((num_batches, real.shape[1]))
    for batch in range(num_batches):
        sample_real = real[draw(rng, len(real), size, replace)]
        sample_gen = gen[draw(rng, len(gen), size, replace)]
        out[batch] = [wasserstein_distance(sample_real[:, f], sample_gen[:, f])
                      for f in range(real.shape[1])]
    return out


# ------------------------------------------------------------------------------ W1s


def w1m(real, generated, *, real_mask=None, generated_mask=None,
        num_eval_samples: int | None = 10_000, num_batches: int = 5, replace: bool = True,
        seed=0) -> Score:
    """W1 between relative jet masses of ``real`` and ``generated`` jets (mean ± std)."""
    real, real_mask = as_particles(real, real_mask, "real jets")
    generated, generated_mask = as_particles(generated, generated_mask, "generated jets")
    return score(_w1_columns_batches(jet_mass(real, real_mask)[:, None],
                                      jet_mass(generated, generated_mask)[:, None],
                                      num_eval_samples, num_batches, replace, seed)[:, 0])


def _w1p_batches(real, real_mask, gen, gen_mask, num_eval_samples, num_batches, replace, seed
                 ) -> np.ndarray:
    """Per-batch, per-feature W1 over real particles -> (num_batches, 3)."""
    rng = np.random.default_rng(seed)
    size = eval_size(len(real), len(gen), num_eval_samples)
    out = np.empty((num_batches, 3))
    for batch in range(num_batches):
        jets_real = draw(rng, len(real), size, replace)
        jets_gen = draw(rng, len(gen), size, replace)
        parts_real = real[jets_real][real_mask[jets_real]]
        parts_gen = gen[jets_gen][gen_mask[jets_gen]]
        if len(parts_real) == 0 or len(parts_gen) == 0:
            out[batch] = np.inf
        else:
            out[batch] = [wasserstein_distance(parts_real[:, f], parts_gen[:, f])
                          for f in range(3)]
    return out


def w1p(real, generated, *, real_mask=None, generated_mask=None,
        num_eval_samples: int | None = 10_000, num_batches: int = 5, replace: bool = True,
        seed=0, per_feature: bool = False):
    """W1 of particle (η_rel, φ_rel, pT_rel) distributions over real particles.

    Returns the :class:`Score` of the mean over the 3 features, or with ``per_feature=True``
    a tuple of 3 Scores (η, φ, pT).
    """
    real, real_mask = as_particles(real, real_mask, "real jets")
    generated, generated_mask = as_particles(generated, generated_mask, "generated jets")
    values = _w1p_batches(real, real_mask, generated, generated_mask, num_eval_samples,
                          num_batches, replace, seed)
    if per_feature:
        return tuple(score(values[:, f]) for f in range(3))
    return score(values.mean(1))


def w1efp(real, generated, *, real_mask=None, generated_mask=None,
          num_eval_samples: int | None = 10_000, num_batches: int = 5, replace: bool = True,
          seed=0) -> Score:
    """W1 of the 5 EFPs (n=4, d=4, prime), averaged over the EFPs per batch (mean ± std)."""
    real, real_mask = as_particles(real, real_mask, "real jets")
    generated, generated_mask = as_particles(generated, generated_mask, "generated jets")
    values = _w1_columns_batches(compute_efps(real, real_mask),
                                 compute_efps(generated, generated_mask),
                                 num_eval_samples, num_batches, replace, seed)
    return score(values.mean(1))


# ------------------------------------------------------------------------------ FPD


def fpd(real_features, generated_features, *, num_eval_samples: int | None = 10_000,
        num_batches: int = 5, normalise: bool = True, replace: bool = True, seed=0) -> Score:
    """Fréchet distance between Gaussians fitted to jet-level features (N, F) vs (M, F).

    ``normalise`` divides every feature by its max |value| in the real sample (JetNet).
    """
    real = np.asarray(to_numpy(real_features), dtype=np.float64)
    gen = np.asarray(to_numpy(generated_features), dtype=np.float64)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise JetlabError(f"features must be (N, F) and (M, F), got {real.shape} and {gen.shape}")
    if normalise:
        scale = np.max(np.abs(real), axis=0)
        scale[scale == 0] = 1.0
        real, gen = real / scale, gen / scale
    rng = np.random.default_rng(seed)
    size = eval_size(len(real), len(gen), num_eval_samples)
    if size < 2:
        raise JetlabError("FPD needs at least 2 jets in each sample")
    values = []
    for _ in range(num_batches):
        sample_real = real[draw(rng, len(real), size, replace)]
        sample_gen = gen[draw(rng, len(gen), size, replace)]
        values.append(frechet_distance(sample_real.mean(0), np.cov(sample_real, rowvar=False),
                                       sample_gen.mean(0), np.cov(sample_gen, rowvar=False)))
    return score(np.array(values))


# ---------------------------------------------------------------------------- summary


def _all_scores(reference, reference_mask, other, other_mask, reference_features,
                other_features, *, num_eval_samples, num_batches, cov_mmd_samples,
                cov_mmd_batches, emd_norm, seed, show_progress, desc) -> dict[str, Score]:
    settings = dict(num_eval_samples=num_eval_samples, num_batches=num_batches, replace=True)
    scores = {"w1m": score(_w1_columns_batches(reference_features[:, :1], other_features[:, :1],
                                                seed=(seed, 0), **settings)[:, 0])}
    particle_w1 = _w1p_batches(reference, reference_mask, other, other_mask,
                               seed=(seed, 1), **settings)
    scores["w1p"] = score(particle_w1.mean(1))
    for f, feature in enumerate(PARTICLE_FEATURE_NAMES):
        scores[f"w1p_{feature}"] = score(particle_w1[:, f])
    scores["w1efp"] = score(_w1_columns_batches(reference_features[:, 1:], other_features[:, 1:],
                                                 seed=(seed, 2), **settings).mean(1))
    scores["fpd"] = fpd(reference_features, other_features, seed=(seed, 3), **settings)
    cov_mmd = coverage_mmd_batches(reference, reference_mask, other, other_mask,
                                    cov_mmd_samples, cov_mmd_batches, True, (seed, 4), 1.0,
                                    emd_norm, show_progress, desc)
    scores["cov"], scores["mmd"] = score(cov_mmd[:, 0]), score(cov_mmd[:, 1])
    return scores


def _scores_to_dict(scores: dict[str, Score]) -> dict[str, dict[str, float]]:
    return {key: {"mean": score.mean, "std": score.std} for key, score in scores.items()}


def evaluate_generated(real, generated, *, real_mask=None, generated_mask=None, seed: int = 0,
                       num_eval_samples: int | None = 10_000, num_batches: int = 5,
                       cov_mmd_samples: int = 100, cov_mmd_batches: int = 10,
                       emd_norm: bool = False, progress: bool = False) -> dict:
    """Every generation metric for real vs generated jets and for truth vs truth.

    The real sample is shuffled (``seed``) and split into two independent halves A and B;
    ``"generated"`` holds A vs generated and ``"truth"`` holds A vs B, so both rows use the
    same reference jets and the same batch sizes (``min(num_eval_samples, available)``).

    Args:
        real, generated: (N, P, 3) or (N, P, 4 with mask column) (η_rel, φ_rel, pT_rel) jets
            (numpy or torch), pT_rel ≥ 0.
        real_mask, generated_mask: optional (N, P) bool masks (True = real particle).
        seed: seed of the split and of every bootstrap.
        num_eval_samples, num_batches: bootstrap of W1-M, W1-P, W1-EFP and FPD.
        cov_mmd_samples, cov_mmd_batches: jets per sample and batches for COV/MMD.
        emd_norm: normalise pTs to sum 1 in the EMD (default False: JetNet/energyflow).
        progress: show progress bars for the COV/MMD batches (the slow part: about 1 s per
            100 x 100 batch on one CPU core).

    Returns:
        ``{"generated": {metric: {"mean", "std"}}, "truth": {...}, "n_real", "n_generated",
        "n_reference", "n_truth", "settings"}`` with the metric keys of :data:`METRICS`;
        plain Python numbers (JSON-serialisable).
    """
    real, real_mask = as_particles(real, real_mask, "real jets")
    generated, generated_mask = as_particles(generated, generated_mask, "generated jets")
    if real.shape[0] < 4:
        raise JetlabError(f"real jets: need at least 4 jets to split into two truth samples, "
                          f"got {real.shape[0]}")
    if generated.shape[0] < 2:
        raise JetlabError(f"generated jets: need at least 2 jets, got {generated.shape[0]}")
    check_nonnegative_pt(real, "real jets")
    check_nonnegative_pt(generated, "generated jets")

    order = np.random.default_rng(seed).permutation(real.shape[0])
    half_a, half_b = order[: len(order) // 2], order[len(order) // 2:]
    reference, reference_mask = real[half_a], real_mask[half_a]
    truth, truth_mask = real[half_b], real_mask[half_b]

    reference_features = jet_features(reference, reference_mask)
    options = dict(num_eval_samples=num_eval_samples, num_batches=num_batches,
                   cov_mmd_samples=cov_mmd_samples, cov_mmd_batches=cov_mmd_batches,
                   emd_norm=emd_norm)
    generated_scores = _all_scores(reference, reference_mask, generated, generated_mask,
                                   reference_features, jet_features(generated, generated_mask),
                                   seed=seed + 1, show_progress=progress,
                                   desc="COV/MMD real vs generated", **options)
    truth_scores = _all_scores(reference, reference_mask, truth, truth_mask,
                               reference_features, jet_features(truth, truth_mask),
                               seed=seed + 2, show_progress=progress,
                               desc="COV/MMD real vs real", **options)
    return {
        "generated": _scores_to_dict(generated_scores),
        "truth": _scores_to_dict(truth_scores),
        "n_real": int(real.shape[0]),
        "n_generated": int(generated.shape[0]),
        "n_reference": int(len(half_a)),
        "n_truth": int(len(half_b)),
        "settings": {"seed": seed, **options, "fpd_features": list(JET_FEATURE_NAMES)},
    }


def format_metrics_table(result: dict) -> str:
    """A plain-text table of :func:`evaluate_generated`'s result: metric, generated, truth."""
    header = ("metric", "real vs generated", "real vs real (truth)")
    rows = []
    for key, label in METRICS.items():
        if key not in result.get("generated", {}):
            continue
        cells = []
        for column in ("generated", "truth"):
            score = result.get(column, {}).get(key)
            cells.append("-" if score is None else f"{score['mean']:.4g} ± {score['std']:.2g}")
        rows.append((label, *cells))
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append(f"({result.get('n_generated', '?')} generated jets; real: "
                 f"{result.get('n_reference', '?')} reference + {result.get('n_truth', '?')} "
                 "truth jets)")
    return "\n".join(lines)
