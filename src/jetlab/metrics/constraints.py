"""What every real jet obeys, checked on a jet sample: Σ pT_rel, pT_rel > 0 and the multiplicity.

A generator's distributions can be close to the real ones on average while single jets break
what no real jet breaks: particles of negative or zero pT_rel, a scalar sum of the listed
particles' pT_rel far above 1 (a particle's pT_rel is its pT over the jet's, and the leading
P particles of a real jet carry at most about the jet's pT — 0.7 % of JetNet-style gluon jets
with 30 particles reach 1.0–1.07), or fewer particles than jets of the class list.
:func:`physical_constraints` measures these on one sample, so that a generated sample and a
real one can be read side by side (:func:`jetlab.metrics.generation.evaluate_generated` reports
them for the generated jets and for the truth half of the real jets, both against the same
reference half).

Jets as in :mod:`jetlab.metrics.generation`: ``(N, P, 3)`` of (η_rel, φ_rel, pT_rel) with a
mask ``(N, P)`` or ``(N, P, 4)`` with the mask as the last column.
"""

from __future__ import annotations

import numpy as np

from jetlab.errors import JetlabError
from jetlab.metrics.jet_samples import as_particles

__all__ = ["physical_constraints"]

#: quantiles of the multiplicity reported (5 %, median, 95 %)
MULTIPLICITY_QUANTILES = (0.05, 0.5, 0.95)
#: Σ pT_rel counts as above 1 beyond this round-off (float32 sums of up to 150 particles)
SUM_PT_TOLERANCE = 1e-5


def physical_constraints(jets, mask=None, *, reference=None, reference_mask=None) -> dict:
    """Σ pT_rel, pT_rel > 0 and multiplicity of a jet sample (and how far its multiplicity and
    Σ pT_rel distributions are from a reference sample's).

    Args:
        jets: (η_rel, φ_rel, pT_rel) jets, numpy or torch, optionally with a mask column.
        mask: which particles are listed (True = real particle).
        reference: real jets to compare the distributions with (optional).
        reference_mask: the mask of ``reference``.

    Returns:
        Plain Python numbers: ``{"n_jets", "sum_pt_rel": {"mean", "max", "frac_above_1"},
        "nonpositive_pt": {"particles", "fraction", "jets_with_any"},
        "multiplicity": {"mean", "min", "max", "q05", "q50", "q95", "frac_full"}}`` where
        ``sum_pt_rel`` is the scalar sum of the listed particles' pT_rel per jet (above 1:
        beyond :data:`SUM_PT_TOLERANCE`),
        ``nonpositive_pt`` counts listed particles with pT_rel <= 0 (``fraction`` of all listed
        particles, ``jets_with_any`` the fraction of jets with at least one) and ``frac_full``
        is the fraction of jets listing all P particles. With ``reference``: also
        ``"w1_multiplicity"`` and ``"w1_sum_pt_rel"``, the 1-Wasserstein distances between
        this sample's and the reference's per-jet distributions.

    Raises:
        JetlabError: an empty sample, or what :func:`~jetlab.metrics.jet_samples.as_particles` refuses.

    Shapes:
        - jets: ``(N, P, 3)`` or ``(N, P, 4)``; mask: ``(N, P)``
        - reference: ``(M, P', 3)`` or ``(M, P', 4)``; reference_mask: ``(M, P')``
    """
    particles, mask = as_particles(jets, mask, "jets")
    if len(particles) == 0:
        raise JetlabError("jets: need at least one jet to check")
    counts, sums = _per_jet(particles, mask)
    nonpositive = mask & (particles[..., 2] <= 0)
    listed = max(int(mask.sum()), 1)
    quantiles = np.quantile(counts, MULTIPLICITY_QUANTILES)
    result = {
        "n_jets": int(len(particles)),
        "sum_pt_rel": {"mean": float(sums.mean()), "max": float(sums.max()),
                       "frac_above_1": float(np.mean(sums > 1.0 + SUM_PT_TOLERANCE))},
        "nonpositive_pt": {"particles": int(nonpositive.sum()), "fraction": float(nonpositive.sum() / listed),
                           "jets_with_any": float(np.mean(nonpositive.any(1)))},
        "multiplicity": {"mean": float(counts.mean()), "min": int(counts.min()), "max": int(counts.max()),
                         **{f"q{round(100 * p):02d}": float(v) for p, v in zip(MULTIPLICITY_QUANTILES, quantiles)},
                         "frac_full": float(np.mean(counts == particles.shape[1]))},
    }
    if reference is not None:
        from scipy.stats import wasserstein_distance  # lazy: start-up

        ref_counts, ref_sums = _per_jet(*as_particles(reference, reference_mask, "reference jets"))
        result["w1_multiplicity"] = float(wasserstein_distance(counts, ref_counts))
        result["w1_sum_pt_rel"] = float(wasserstein_distance(sums, ref_sums))
    return result


def _per_jet(particles: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Listed particles per jet (N,) and the scalar Σ pT_rel of the listed particles (N,)."""
    return mask.sum(1).astype(np.float64), np.where(mask, particles[..., 2], 0.0).sum(1)
