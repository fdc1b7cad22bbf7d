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
    """Energy mover's distance between two jets (JetNet convention; Komiske, Metodiev &
    Thaler, arXiv:1902.02346).

    :math:`\\mathrm{EMD} = \\min_{f \\ge 0} \\sum_{ij} f_{ij} θ_{ij}/R + |\\sum_i p_{T,i} -
    \\sum_j p_{T,j}|` subject to :math:`\\sum_j f_{ij} \\le p_{T,i}`, :math:`\\sum_i f_{ij} \\le
    p_{T,j}`, :math:`\\sum f = \\min(\\sum p_{T,i}, \\sum p_{T,j})`, θ the Euclidean distance in
    (η, φ) (energyflow's ``emd(..., R=radius, norm=False)``).

    Args:
        jet_a: (η, φ, pT) particles of the first jet (pT ≥ 0).
        jet_b: the second jet.
        mask_a: which particles of ``jet_a`` are real (``None``: those with pT > 0).
        mask_b: the same for ``jet_b``.
        radius: the jet radius R.
        norm: first scale both jets' pTs to sum 1.

    Returns:
        The EMD.

    Shapes:
        - jet_a: ``(particles, ≥3)``
        - jet_b: ``(other_particles, ≥3)``
        - mask_a, mask_b: ``(particles,)``, ``(other_particles,)`` bool
    """
    jet_a, jet_b = np.asarray(to_numpy(jet_a), float), np.asarray(to_numpy(jet_b), float)
    for name, jet in (("jet_a", jet_a), ("jet_b", jet_b)):
        if jet.ndim != 2 or jet.shape[1] < 3:
            raise JetlabError(f"{name}: expected (P, >=3) particles, got {jet.shape}")
        check_nonnegative_pt(jet[None], name)
    return _emd_events(*_emd_event(jet_a, mask_a), *_emd_event(jet_b, mask_b), radius, norm)


def emd_matrix(jets_a, jets_b, mask_a=None, mask_b=None, *, radius: float = 1.0,
               norm: bool = False) -> np.ndarray:
    """Pairwise EMDs (:func:`emd`) between two sets of jets.

    Args:
        jets_a: (η, φ, pT) particles of the first set.
        jets_b: the second set.
        mask_a: which particles of ``jets_a`` are real.
        mask_b: the same for ``jets_b``.
        radius: the jet radius R.
        norm: first scale every jet's pTs to sum 1.

    Returns:
        ``out[i, j]`` = EMD of jet i of ``jets_a`` and jet j of ``jets_b``.

    Shapes:
        - jets_a: ``(jets, particles, ≥3)``
        - jets_b: ``(other_jets, particles, ≥3)``
        - mask_a, mask_b: ``(jets, particles)``, ``(other_jets, particles)`` bool
        - returns: ``(jets, other_jets)``
    """
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
    """Per-batch coverage and MMD of validated samples (:func:`coverage_mmd` does the checks).

    Args:
        real: real particles (:func:`~jetlab.metrics.jet_samples.as_particles`).
        real_mask: their mask.
        gen: generated particles.
        gen_mask: their mask.
        num_eval_samples: jets per batch (``None``: the smaller sample).
        num_batches: batches.
        replace: draw with replacement.
        seed: seed of the draws.
        radius: the jet radius R of the EMD.
        norm: scale every jet's pTs to sum 1.
        show_progress: a progress bar over the batches.
        desc: the progress bar's label.

    Returns:
        ``(coverage, mmd)`` of every batch.

    Shapes:
        - real, gen: ``(jets, particles, 3)``, ``(other_jets, particles, 3)``
        - real_mask, gen_mask: ``(jets, particles)``, ``(other_jets, particles)`` bool
        - returns: ``(num_batches, 2)``
    """
    from jetlab.utils.progress import progress

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
    """Coverage and MMD with the EMD (JetNet's ``cov_mmd``; Kansal et al., arXiv:2106.11535):
    COV is the fraction of real jets that are the nearest (EMD) real jet of some generated
    jet, MMD the mean over real jets of the EMD to the nearest generated jet, per batch.

    Args:
        real: real jets (η_rel, φ_rel, pT_rel), numpy or torch; a 4th column is the mask.
        generated: generated jets, the same layout.
        real_mask: which particles of ``real`` are real.
        generated_mask: the same for ``generated``.
        num_eval_samples: jets per batch (each batch is ``num_eval_samples``² EMDs).
        num_batches: batches (the std is over them).
        replace: draw the batches with replacement.
        seed: seed of the draws.
        radius: the jet radius R of the EMD.
        norm: scale every jet's pTs to sum 1.
        progress: show a bar over the batches.

    Returns:
        ``(COV, MMD)``, two :class:`~jetlab.metrics.jet_samples.Score` s.

    Shapes:
        - real: ``(jets, particles, 3)`` or ``(jets, particles, 4)``
        - generated: ``(other_jets, particles, 3)`` or ``(other_jets, particles, 4)``
        - real_mask, generated_mask: ``(jets, particles)``, ``(other_jets, particles)`` bool
    """
    real, real_mask = as_particles(real, real_mask, "real jets")
    generated, generated_mask = as_particles(generated, generated_mask, "generated jets")
    check_nonnegative_pt(real, "real jets")
    check_nonnegative_pt(generated, "generated jets")
    values = coverage_mmd_batches(real, real_mask, generated, generated_mask, num_eval_samples,
                                   num_batches, replace, seed, radius, norm, progress)
    return score(values[:, 0]), score(values[:, 1])
