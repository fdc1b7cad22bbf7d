"""Energy mover's distance between jets, and the coverage / MMD of a generated sample
(JetNet conventions, Kansal et al. arXiv:2106.11535; Komiske et al. arXiv:1902.02346).

The EMD between two jets is the optimal-transport cost of moving one jet's pT onto the
other's in (η, φ) with Euclidean ground distance / R (POT's ``emd2``); ``norm=False`` (the
default, energyflow's ``emds`` as used by JetNet) moves the pT difference at cost 1,
``norm=True`` normalises each jet's pT to sum 1. On ``num_eval_samples`` real vs as many
generated jets: **COV** = fraction of real jets that are the nearest neighbour of some
generated jet, **MMD** = mean over real jets of the EMD to the nearest generated jet.
"""

from __future__ import annotations

import numpy as np

from jetlab.errors import JetlabError
from jetlab.metrics.jet_samples import Score, as_particles, check_nonnegative_pt, draw, eval_size, score, to_numpy
from jetlab.utils.progress import progress

__all__ = ["coverage_mmd", "coverage_mmd_batches", "emd", "emd_matrix"]


def _emd_event(particles: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(pT (K,), coordinates (K, 2)) of the particles with pT > 0 of one jet (P, ≥3)."""
    keep = particles[:, 2] > 0
    if mask is not None:
        keep &= mask
    return particles[keep, 2], particles[keep, :2]


def _emd_events(pts_a, coords_a, pts_b, coords_b, radius: float, norm: bool) -> float:
    import ot

    sum_a, sum_b = pts_a.sum(), pts_b.sum()
    if norm:
        if sum_a <= 0 or sum_b <= 0:
            raise JetlabError("EMD with norm=True is undefined for a jet with no pT")
        weights_a, weights_b, rescale = pts_a / sum_a, pts_b / sum_b, 1.0
        ground = np.sqrt(((coords_a[:, None] - coords_b[None]) ** 2).sum(-1)) / radius
    else:
        # unbalanced EMD (energyflow norm=False): the pT difference sits on an extra
        # particle of the softer jet at ground distance 1 (= R) from everything
        rescale = max(sum_a, sum_b)
        if rescale <= 0:
            return 0.0
        ground = np.ones((len(pts_a) + 1, len(pts_b) + 1))
        ground[:-1, :-1] = np.sqrt(((coords_a[:, None] - coords_b[None]) ** 2).sum(-1)) / radius
        weights_a = np.append(pts_a, max(sum_b - sum_a, 0.0)) / rescale
        weights_b = np.append(pts_b, max(sum_a - sum_b, 0.0)) / rescale
        weights_b *= weights_a.sum() / weights_b.sum()  # exact balance for POT's check
    # marginals are balanced above; skipping POT's checks and dual centring halves the time
    cost = ot.emd2(weights_a, weights_b, ground, check_marginals=False, center_dual=False)
    return float(cost) * rescale


def emd(jet_a, jet_b, mask_a=None, mask_b=None, *, radius: float = 1.0,
        norm: bool = False) -> float:
    """Energy mover's distance between two jets (P, ≥3) of (η, φ, pT) (JetNet convention).

    :math:`\\mathrm{EMD} = \\min_{f \\ge 0} \\sum_{ij} f_{ij} θ_{ij}/R + |\\sum_i p_{T,i} -
    \\sum_j p_{T,j}|` subject to :math:`\\sum_j f_{ij} \\le p_{T,i}`, :math:`\\sum_i f_{ij} \\le
    p_{T,j}`, :math:`\\sum f = \\min(\\sum p_{T,i}, \\sum p_{T,j})`, θ the Euclidean distance in
    (η, φ) (energyflow's ``emd(..., R=radius, norm=False)``). ``norm=True`` first scales both
    jets' pTs to sum 1.
    """
    jet_a, jet_b = np.asarray(to_numpy(jet_a), float), np.asarray(to_numpy(jet_b), float)
    for name, jet in (("jet_a", jet_a), ("jet_b", jet_b)):
        if jet.ndim != 2 or jet.shape[1] < 3:
            raise JetlabError(f"{name}: expected (P, >=3) particles, got {jet.shape}")
        check_nonnegative_pt(jet[None], name)
    return _emd_events(*_emd_event(jet_a, mask_a), *_emd_event(jet_b, mask_b), radius, norm)


def emd_matrix(jets_a, jets_b, mask_a=None, mask_b=None, *, radius: float = 1.0,
               norm: bool = False) -> np.ndarray:
    """Pairwise EMDs (len(jets_a), len(jets_b)) between two sets of jets (N, P, ≥3)."""
    jets_a, mask_a = as_particles(jets_a, mask_a, "jets_a")
    jets_b, mask_b = as_particles(jets_b, mask_b, "jets_b")
    check_nonnegative_pt(jets_a, "jets_a")
    check_nonnegative_pt(jets_b, "jets_b")
    return _emd_matrix(jets_a, mask_a, jets_b, mask_b, radius, norm)


def _emd_matrix(jets_a, mask_a, jets_b, mask_b, radius, norm) -> np.ndarray:
    events_a = [_emd_event(jet, m) for jet, m in zip(jets_a, mask_a)]
    events_b = [_emd_event(jet, m) for jet, m in zip(jets_b, mask_b)]
    out = np.empty((len(events_a), len(events_b)))
    for i, event_a in enumerate(events_a):
        for j, event_b in enumerate(events_b):
            out[i, j] = _emd_events(*event_a, *event_b, radius, norm)
    return out


def coverage_mmd_batches(real, real_mask, gen, gen_mask, num_eval_samples, num_batches,
                          replace, seed, radius, norm, show_progress=False, desc="COV/MMD"
                          ) -> np.ndarray:
    """Per-batch (coverage, MMD) -> (num_batches, 2)."""
    rng = np.random.default_rng(seed)
    size = eval_size(len(real), len(gen), num_eval_samples)
    out = np.empty((num_batches, 2))
    batches = progress(range(num_batches), desc=desc, unit="batch",
                       disable=None if show_progress else True)
    for batch in batches:
        pick_real = draw(rng, len(real), size, replace)
        pick_gen = draw(rng, len(gen), size, replace)
        distances = _emd_matrix(gen[pick_gen], gen_mask[pick_gen], real[pick_real],
                                real_mask[pick_real], radius, norm)        # (gen, real)
        coverage = np.unique(np.argmin(distances, axis=1)).size / size
        mmd = np.mean(np.min(distances, axis=0))
        out[batch] = coverage, mmd
    return out


def coverage_mmd(real, generated, *, real_mask=None, generated_mask=None,
                 num_eval_samples: int | None = 100, num_batches: int = 10,
                 replace: bool = True, seed=0, radius: float = 1.0, norm: bool = False,
                 progress: bool = False) -> tuple[Score, Score]:
    """Coverage and MMD with the EMD (JetNet ``cov_mmd``): returns (COV, MMD) Scores.

    ``progress`` shows a bar over the batches (each is ``num_eval_samples``² EMDs).
    """
    real, real_mask = as_particles(real, real_mask, "real jets")
    generated, generated_mask = as_particles(generated, generated_mask, "generated jets")
    check_nonnegative_pt(real, "real jets")
    check_nonnegative_pt(generated, "generated jets")
    values = coverage_mmd_batches(real, real_mask, generated, generated_mask, num_eval_samples,
                                   num_batches, replace, seed, radius, norm, progress)
    return score(values[:, 0]), score(values[:, 1])
