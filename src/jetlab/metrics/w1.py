"""The sample-level generation metrics of JetNet/MPGAN (Kansal et al., arXiv:2106.11535):
W1-M, W1-P (per feature), W1-EFP (per EFP), jetlab's W1-NN and FD6, each as mean ± std over
``num_batches`` batches of ``num_eval_samples`` jets (JetNet: 50,000 and 5) drawn with
replacement. Jets and masks as in :mod:`jetlab.metrics.generation`, which describes each
metric; :func:`jetlab.metrics.generation.evaluate_generated` runs them all.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance

from jetlab.errors import JetlabError
from jetlab.metrics.efp import efps as compute_efps
from jetlab.metrics.feature_distances import frechet_distance, normalise_features
from jetlab.metrics.jet_samples import Score, as_particles, draw, eval_size, score, to_numpy
from jetlab.physics.kinematics import nearest_neighbour_delta_r, relative_jet_kinematics

__all__ = ["fd6", "jet_features", "jet_mass", "w1efp", "w1m", "w1nn", "w1p"]


# ------------------------------------------------------------------------- jet features


def jet_mass(particles, mask=None) -> np.ndarray:
    """Relative jet mass of massless particles (:func:`jetlab.physics.kinematics.relative_jet_kinematics`).

    Args:
        particles: (η_rel, φ_rel, pT_rel) of the particles (further columns ignored).
        mask: which particles are real (``None``: every row; all-zero rows add nothing).

    Returns:
        The relative jet mass m / pT of every jet.

    Shapes:
        - particles: ``(jets, particles, ≥3)``
        - mask: ``(jets, particles)`` bool
        - returns: ``(jets,)``
    """
    return relative_jet_kinematics(np.asarray(particles, dtype=np.float64), mask).mass


def jet_features(particles, mask=None) -> np.ndarray:
    """Jet-level features of FD6: the relative mass and the 5 W1-EFP EFPs.

    Args:
        particles: (η_rel, φ_rel, pT_rel) of the particles.
        mask: which particles are real (``None``: every row; all-zero rows add nothing).

    Returns:
        ``[mass, efp_1, ..., efp_5]`` of every jet.

    Shapes:
        - particles: ``(jets, particles, ≥3)``
        - mask: ``(jets, particles)`` bool
        - returns: ``(jets, 6)``
    """
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
        num_eval_samples: int | None = 50_000, num_batches: int = 5, replace: bool = True,
        seed=0) -> Score:
    """W1 between the relative jet masses of ``real`` and ``generated`` jets (Kansal et al.,
    arXiv:2106.11535).

    Args:
        real: real jets (η_rel, φ_rel, pT_rel), numpy or torch; a 4th column is the mask.
        generated: generated jets, the same layout.
        real_mask: which particles of ``real`` are real (``None``: the 4th column, else the
            particles with a non-zero feature).
        generated_mask: the same for ``generated``.
        num_eval_samples: jets per batch (``None``: all; capped at the smaller sample).
        num_batches: batches (the std is over them).
        replace: draw the batches with replacement (JetNet's bootstrap).
        seed: seed of the draws.

    Returns:
        The :class:`~jetlab.metrics.jet_samples.Score` (mean ± std over the batches).

    Shapes:
        - real: ``(jets, particles, 3)`` or ``(jets, particles, 4)``
        - generated: ``(other_jets, particles, 3)`` or ``(other_jets, particles, 4)``
        - real_mask, generated_mask: ``(jets, particles)``, ``(other_jets, particles)`` bool
    """
    real, real_mask = as_particles(real, real_mask, "real jets")
    generated, generated_mask = as_particles(generated, generated_mask, "generated jets")
    return score(_w1_columns_batches(jet_mass(real, real_mask)[:, None],
                                      jet_mass(generated, generated_mask)[:, None],
                                      num_eval_samples, num_batches, replace, seed)[:, 0])


def _w1p_batches(real, real_mask, gen, gen_mask, num_eval_samples, num_batches, replace, seed
                 ) -> np.ndarray:
    """Per-batch, per-feature W1 over real particles: (N, P, F) and (M, P, F) -> (num_batches, F)."""
    rng = np.random.default_rng(seed)
    size = eval_size(len(real), len(gen), num_eval_samples)
    n_features = real.shape[-1]
    out = np.empty((num_batches, n_features))
    for batch in range(num_batches):
        jets_real = draw(rng, len(real), size, replace)
        jets_gen = draw(rng, len(gen), size, replace)
        parts_real = real[jets_real][real_mask[jets_real]]
        parts_gen = gen[jets_gen][gen_mask[jets_gen]]
        if len(parts_real) == 0 or len(parts_gen) == 0:
            out[batch] = np.inf
        else:
            out[batch] = [wasserstein_distance(parts_real[:, f], parts_gen[:, f])
                          for f in range(n_features)]
    return out


def _w1nn_batches(real_nn: np.ndarray, gen_nn: np.ndarray, **settings) -> np.ndarray:
    """Per-batch W1 of nearest-neighbour ΔRs (:func:`nearest_neighbour_delta_r`'s (N, P) and (M, P),
    NaN where a particle has none) over the particles that have one -> (num_batches,)."""
    return _w1p_batches(real_nn[..., None], ~np.isnan(real_nn), gen_nn[..., None], ~np.isnan(gen_nn),
                        **settings)[:, 0]


def w1p(real, generated, *, real_mask=None, generated_mask=None,
        num_eval_samples: int | None = 50_000, num_batches: int = 5, replace: bool = True,
        seed=0, per_feature: bool = False):
    """W1 of the particle (η_rel, φ_rel, pT_rel) distributions over real particles (Kansal et
    al., arXiv:2106.11535).

    Args:
        real: real jets (η_rel, φ_rel, pT_rel), numpy or torch; a 4th column is the mask.
        generated: generated jets, the same layout.
        real_mask: which particles of ``real`` are real (``None``: the 4th column, else the
            particles with a non-zero feature).
        generated_mask: the same for ``generated``.
        num_eval_samples: jets per batch (``None``: all; capped at the smaller sample).
        num_batches: batches (the std is over them).
        replace: draw the batches with replacement (JetNet's bootstrap).
        seed: seed of the draws.
        per_feature: one Score per feature instead of the Score of their mean.

    Returns:
        The :class:`~jetlab.metrics.jet_samples.Score` of the mean over the 3 features, or with
        ``per_feature`` a tuple of 3 Scores (η, φ, pT).

    Shapes:
        - real: ``(jets, particles, 3)`` or ``(jets, particles, 4)``
        - generated: ``(other_jets, particles, 3)`` or ``(other_jets, particles, 4)``
        - real_mask, generated_mask: ``(jets, particles)``, ``(other_jets, particles)`` bool
    """
    real, real_mask = as_particles(real, real_mask, "real jets")
    generated, generated_mask = as_particles(generated, generated_mask, "generated jets")
    values = _w1p_batches(real, real_mask, generated, generated_mask, num_eval_samples,
                          num_batches, replace, seed)
    if per_feature:
        return tuple(score(values[:, f]) for f in range(3))
    return score(values.mean(1))


def w1nn(real, generated, *, real_mask=None, generated_mask=None,
         num_eval_samples: int | None = 50_000, num_batches: int = 5, replace: bool = True,
         seed=0) -> Score:
    """W1 of the particles' nearest-neighbour ΔR (:func:`jetlab.physics.kinematics.nearest_neighbour_delta_r`), over every
    real particle with a neighbour; jetlab's, not JetNet's: it sees the collinear pairs of real
    jets that W1-P, W1-M and the EFPs average over.

    Args:
        real: real jets (η_rel, φ_rel, pT_rel), numpy or torch; a 4th column is the mask.
        generated: generated jets, the same layout.
        real_mask: which particles of ``real`` are real (``None``: the 4th column, else the
            particles with a non-zero feature).
        generated_mask: the same for ``generated``.
        num_eval_samples: jets per batch (``None``: all; capped at the smaller sample).
        num_batches: batches (the std is over them).
        replace: draw the batches with replacement (JetNet's bootstrap).
        seed: seed of the draws.

    Returns:
        The :class:`~jetlab.metrics.jet_samples.Score` (mean ± std over the batches).

    Shapes:
        - real: ``(jets, particles, 3)`` or ``(jets, particles, 4)``
        - generated: ``(other_jets, particles, 3)`` or ``(other_jets, particles, 4)``
        - real_mask, generated_mask: ``(jets, particles)``, ``(other_jets, particles)`` bool
    """
    real, real_mask = as_particles(real, real_mask, "real jets")
    generated, generated_mask = as_particles(generated, generated_mask, "generated jets")
    return score(_w1nn_batches(nearest_neighbour_delta_r(real, real_mask),
                               nearest_neighbour_delta_r(generated, generated_mask),
                               num_eval_samples=num_eval_samples, num_batches=num_batches, replace=replace, seed=seed))


def w1efp(real, generated, *, real_mask=None, generated_mask=None,
          num_eval_samples: int | None = 50_000, num_batches: int = 5, replace: bool = True,
          seed=0, per_feature: bool = False):
    """W1 of the 5 EFPs (n=4, d=4, prime) of the jets (Kansal et al., arXiv:2106.11535).

    Args:
        real: real jets (η_rel, φ_rel, pT_rel), numpy or torch; a 4th column is the mask.
        generated: generated jets, the same layout.
        real_mask: which particles of ``real`` are real (``None``: the 4th column, else the
            particles with a non-zero feature).
        generated_mask: the same for ``generated``.
        num_eval_samples: jets per batch (``None``: all; capped at the smaller sample).
        num_batches: batches (the std is over them).
        replace: draw the batches with replacement (JetNet's bootstrap).
        seed: seed of the draws.
        per_feature: one Score per EFP (JetNet's array) instead of the Score of their mean.

    Returns:
        The :class:`~jetlab.metrics.jet_samples.Score` of the mean over the 5 EFPs per batch, or
        with ``per_feature`` a tuple of 5 Scores.

    Shapes:
        - real: ``(jets, particles, 3)`` or ``(jets, particles, 4)``
        - generated: ``(other_jets, particles, 3)`` or ``(other_jets, particles, 4)``
        - real_mask, generated_mask: ``(jets, particles)``, ``(other_jets, particles)`` bool
    """
    real, real_mask = as_particles(real, real_mask, "real jets")
    generated, generated_mask = as_particles(generated, generated_mask, "generated jets")
    values = _w1_columns_batches(compute_efps(real, real_mask),
                                 compute_efps(generated, generated_mask),
                                 num_eval_samples, num_batches, replace, seed)
    if per_feature:
        return tuple(score(values[:, f]) for f in range(values.shape[1]))
    return score(values.mean(1))


# ------------------------------------------------------------------------------ FD6


def fd6(real_features, generated_features, *, num_eval_samples: int | None = 50_000,
        num_batches: int = 5, normalise: bool = True, replace: bool = True, seed=0) -> Score:
    """Fréchet distance between Gaussians fitted to jet-level features at one sample size
    (mean ± std over batches; no 1/N extrapolation, unlike JetNet's FPD).

    jetlab's "FD6" on :func:`jet_features` (mass + 5 EFPs); named "fpd" before JetNet's
    FPD (:func:`jetlab.metrics.fpd`) was added.

    Args:
        real_features: features of the real jets.
        generated_features: features of the generated jets.
        num_eval_samples: jets per batch (``None``: all; capped at the smaller sample).
        num_batches: batches (the std is over them).
        normalise: divide every feature by its max |value| in the real sample.
        replace: draw the batches with replacement.
        seed: seed of the draws.

    Returns:
        The :class:`~jetlab.metrics.jet_samples.Score` (mean ± std over the batches).

    Shapes:
        - real_features: ``(jets, features)``
        - generated_features: ``(other_jets, features)``
    """
    real = np.asarray(to_numpy(real_features), dtype=np.float64)
    gen = np.asarray(to_numpy(generated_features), dtype=np.float64)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise JetlabError(f"features must be (N, F) and (M, F), got {real.shape} and {gen.shape}")
    if normalise:
        real, gen = normalise_features(real, gen)
    rng = np.random.default_rng(seed)
    size = eval_size(len(real), len(gen), num_eval_samples)
    if size < 2:
        raise JetlabError("FD6 needs at least 2 jets in each sample")
    values = []
    for _ in range(num_batches):
        sample_real = real[draw(rng, len(real), size, replace)]
        sample_gen = gen[draw(rng, len(gen), size, replace)]
        values.append(frechet_distance(sample_real.mean(0), np.cov(sample_real, rowvar=False),
                                       sample_gen.mean(0), np.cov(sample_gen, rowvar=False)))
    return score(np.array(values))
