"""Generative-model metrics for jets, following JetNet (Kansal et al., arXiv:2106.11535 and
arXiv:2211.10295), and the report :func:`evaluate_generated` that runs them all.

Jets are particle arrays ``(N, P, 3)`` of (η_rel, φ_rel, pT_rel) with an optional boolean mask
``(N, P)`` (True = real particle), or ``(N, P, 4)`` with the mask as the 4th column (the JetNet
layout; a particle is real when the column is ≥ 0.5). Without any mask a particle is real when
its three features are not all zero (JetNet's ``exclude_zeros``). Masked particles are zeroed.

Metrics (:mod:`jetlab.metrics.w1`; mean ± std over ``num_batches`` = 5 batches of
``num_eval_samples`` = 50,000 jets drawn with replacement from each sample, JetNet's defaults):

- **W1-M**: 1-Wasserstein distance (``scipy.stats.wasserstein_distance``) between the relative
  jet masses, :math:`m = \\sqrt{(\\sum E)^2 - |\\sum \\vec p|^2}` of massless particles with
  :math:`(p_T, η, φ) = (p_{T,rel}, η_{rel}, φ_{rel})` (so m is in units of the jet pT).
- **W1-P**: W1 of each particle feature over all real particles of the batch's jets
  (``w1p_eta``, ``w1p_phi``, ``w1p_pt``), and their average.
- **W1-NN** (jetlab's, not JetNet's): W1 of the ΔR from each particle to its nearest
  neighbour in the jet (:func:`jetlab.physics.kinematics.nearest_neighbour_delta_r`), over all
  particles of the batch's jets that have one: the collinear pairs of real jets, which the
  other metrics average over and a particle-level classifier sees.
- **W1-EFP**: W1 of each of the 5 EFPs of :mod:`jetlab.metrics.efp` (n = 4, d = 4, prime;
  hadronic measure, β = 1, unnormalised pT_rel; ``w1efp_0`` … ``w1efp_4``), and their average.
- **FD6**: jetlab's Fréchet distance on 6 jet features (relative mass and the 5 EFPs), each
  divided by its max |value| in the real sample, at the batch size used (no extrapolation;
  compare it only with truth-vs-truth at the same size). Earlier ``evaluation.json`` files
  call it "fpd"; that name now means JetNet's FPD only.
- **FPD** and **KPD**: JetNet's, on the 36 d ≤ 4 EFPs (:mod:`jetlab.metrics.feature_distances`):
  value ± fit error extrapolated to infinite samples, and median ± half the 68 % range of the
  unbiased polynomial-kernel MMD²; the sample sizes used are in ``settings``.
- **COV / MMD** with the energy mover's distance between jets (weighted point clouds in
  (η, φ), weights pT, Euclidean ground distance / R). Default: energyflow's ``emds`` default
  as used by JetNet's ``cov_mmd`` (``norm=False``: unbalanced, the pT difference is moved at
  cost 1); ``emd_norm=True`` normalises the pTs to sum 1. On ``cov_mmd_samples = 100`` real vs
  100 generated jets per batch, 10 batches: **COV** = fraction of real jets that are the
  nearest neighbour of some generated jet, **MMD** = mean over real jets of the EMD to the
  nearest generated jet.
- **Classifier AUC** (optional, :mod:`jetlab.metrics.classifier_test`): ROC AUC ± bootstrap
  std of a particle-level network trained to tell the two samples apart; 0.5 = indistinguishable.
- **Constraints** (:mod:`jetlab.metrics.constraints`, under ``constraints``, not a score): Σ pT_rel
  per jet (mean, max, fraction above 1), listed particles with pT_rel <= 0 and the multiplicity
  (mean, quantiles, fraction of full jets), with the W1 of the multiplicity and Σ pT_rel
  distributions against the reference half.

:func:`evaluate_generated` reports every metric twice: real vs generated and real vs real
(two independent halves of the real sample), the baseline a generator is measured against,
with the same sample sizes in both rows.
"""

from __future__ import annotations

import numpy as np

from jetlab.errors import JetlabError
from jetlab.metrics.constraints import physical_constraints
from jetlab.metrics.efp import JETNET_W1EFP_COLUMNS, efps_d4
from jetlab.metrics.emd import coverage_mmd, coverage_mmd_batches, emd, emd_matrix
from jetlab.metrics.feature_distances import fpd, frechet_distance, kpd
from jetlab.metrics.jet_samples import CLASSIFIER_MIN_JETS, Score, as_particles, check_nonnegative_pt, eval_size, score
from jetlab.metrics.w1 import (
    _w1_columns_batches,
    _w1nn_batches,
    _w1p_batches,
    fd6,
    jet_features,
    jet_mass,
    w1efp,
    w1m,
    w1nn,
    w1p,
)
from jetlab.physics.kinematics import nearest_neighbour_delta_r

__all__ = [
    "Score",
    "as_particles",
    "jet_mass",
    "jet_features",
    "w1m",
    "w1p",
    "w1efp",
    "w1nn",
    "frechet_distance",
    "fd6",
    "fpd",
    "kpd",
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
    **{f"w1efp_{k}": f"  W1 EFP {k}" for k in range(5)},
    "w1nn": "W1-NN (nearest-particle dR)",
    "fd6": "FD6 (mass+5 EFPs, at N)",
    "fpd": "FPD (JetNet, N -> inf)",
    "kpd": "KPD (JetNet)",
    "cov": "COV",
    "mmd": "MMD",
    "classifier_auc": "classifier AUC",
}
#: JetNet's sample sizes (W1s; COV/MMD)
JETNET_W1_SAMPLES, JETNET_COV_MMD_SAMPLES = 50_000, 100


def _row_scores(reference, reference_efps, reference_nn, other, *, w1_size, num_batches, cov_mmd_size,
                cov_mmd_batches, emd_norm, fpd_options, kpd_options, classifier, seed,
                show_progress, desc) -> tuple[dict[str, Score], dict]:
    """Every metric of ``other`` (jets, mask) against ``reference`` -> (scores, sizes)."""
    (ref, ref_mask), (jets, mask) = reference, other
    other_efps = efps_d4(jets, mask)
    columns = list(JETNET_W1EFP_COLUMNS)
    ref_fd6 = np.concatenate([jet_mass(ref, ref_mask)[:, None], reference_efps[:, columns]], 1)
    other_fd6 = np.concatenate([jet_mass(jets, mask)[:, None], other_efps[:, columns]], 1)
    settings = dict(num_eval_samples=w1_size, num_batches=num_batches, replace=True)
    scores = {"w1m": score(_w1_columns_batches(ref_fd6[:, :1], other_fd6[:, :1],
                                                seed=(seed, 0), **settings)[:, 0])}
    particle_w1 = _w1p_batches(ref, ref_mask, jets, mask, seed=(seed, 1), **settings)
    scores["w1p"] = score(particle_w1.mean(1))
    for f, feature in enumerate(PARTICLE_FEATURE_NAMES):
        scores[f"w1p_{feature}"] = score(particle_w1[:, f])
    efp_w1 = _w1_columns_batches(ref_fd6[:, 1:], other_fd6[:, 1:], seed=(seed, 2), **settings)
    scores["w1efp"] = score(efp_w1.mean(1))
    for k in range(efp_w1.shape[1]):
        scores[f"w1efp_{k}"] = score(efp_w1[:, k])
    scores["w1nn"] = score(_w1nn_batches(reference_nn, nearest_neighbour_delta_r(jets, mask), seed=(seed, 5),
                                         **settings))
    scores["fd6"] = fd6(ref_fd6, other_fd6, seed=(seed, 3), **settings)
    sizes = {}
    for name, function, options in (("fpd", fpd, fpd_options), ("kpd", kpd, kpd_options)):
        result = function(reference_efps, other_efps, **options)
        scores[name], sizes[name] = Score(result.value, result.error), result.sizes
    cov_mmd = coverage_mmd_batches(ref, ref_mask, jets, mask, cov_mmd_size, cov_mmd_batches,
                                    True, (seed, 4), 1.0, emd_norm, show_progress, desc)
    scores["cov"], scores["mmd"] = score(cov_mmd[:, 0]), score(cov_mmd[:, 1])
    if classifier is not None and min(len(ref), len(jets)) < CLASSIFIER_MIN_JETS:
        sizes["classifier_skipped"] = (f"classifier test skipped: it needs {CLASSIFIER_MIN_JETS} jets in each "
                                       f"sample, got {min(len(ref), len(jets))}")
    elif classifier is not None:
        from jetlab.metrics.classifier_test import classifier_two_sample_test  # lazy: start-up (torch)

        result = classifier_two_sample_test(ref, jets, real_mask=ref_mask, generated_mask=mask,
                                            **{"seed": seed, **classifier})
        scores["classifier_auc"] = Score(result.pop("auc"), result.pop("auc_std"))
        sizes["classifier"] = result
    return scores, sizes


def _scores_to_dict(scores: dict[str, Score]) -> dict[str, dict[str, float]]:
    return {key: {"mean": float(score.mean), "std": float(score.std)}
            for key, score in scores.items()}


def evaluate_generated(real, generated, *, real_mask=None, generated_mask=None, seed: int = 0,
                       num_eval_samples: int | None = JETNET_W1_SAMPLES, num_batches: int = 5,
                       cov_mmd_samples: int = JETNET_COV_MMD_SAMPLES, cov_mmd_batches: int = 10,
                       emd_norm: bool = False, fpd_options: dict | None = None,
                       kpd_options: dict | None = None, classifier: dict | None = None,
                       progress: bool = False) -> dict:
    """Every generation metric for real vs generated jets and for truth vs truth.

    The real sample is shuffled (``seed``) and split into two independent halves A and B;
    ``"generated"`` holds A vs generated and ``"truth"`` holds A vs B. Both rows use the same
    reference A and the same sizes: B and the generated sample are cut to the smaller of the
    two (n), the W1 batches hold min(``num_eval_samples``, |A|, n) jets, and FPD/KPD cap their
    sizes at min(|A|, n). The sizes used are in ``settings``; ``notes`` says where they fall
    short of JetNet's.

    Args:
        real: real (η_rel, φ_rel, pT_rel) jets (numpy or torch), pT_rel ≥ 0, optionally
            with a 4th mask column.
        generated: generated jets, the same layout.
        real_mask: which particles of ``real`` are real (True = real particle).
        generated_mask: the same for ``generated``.
        seed: seed of the split and of every bootstrap (FPD/KPD: their own ``seed`` option,
            JetNet's 42 by default).
        num_eval_samples: jets per batch of the W1-M, W1-P, W1-EFP and FD6 bootstrap.
        num_batches: batches of that bootstrap.
        cov_mmd_samples: jets per sample and batch for COV/MMD.
        cov_mmd_batches: batches for COV/MMD.
        emd_norm: normalise pTs to sum 1 in the EMD (default False: JetNet/energyflow).
        fpd_options: keyword arguments of :func:`~jetlab.metrics.fpd` (default: JetNet's).
        kpd_options: keyword arguments of :func:`~jetlab.metrics.kpd` (default: JetNet's).
        classifier: keyword arguments of
            :func:`~jetlab.metrics.classifier_test.classifier_two_sample_test` (e.g.
            ``{"max_seconds": 60}``) to run the classifier test; None (default) skips it.
        progress: show progress bars for the COV/MMD batches (the slow part: about 1 s per
            100 x 100 batch on one CPU core).

    Returns:
        ``{"generated": {metric: {"mean", "std"}}, "truth": {...}, "constraints": {"generated":
        ..., "truth": ...}, "n_real", "n_generated", "n_reference", "n_truth", "n_compared",
        "settings", "notes"}`` with the metric keys of :data:`METRICS` and, under
        ``constraints``, :func:`~jetlab.metrics.constraints.physical_constraints` of each row's
        jets against the reference half; plain Python numbers (JSON-serialisable).

    Shapes:
        - real: ``(jets, particles, 3)`` or ``(jets, particles, 4)``
        - generated: ``(other_jets, particles, 3)`` or ``(other_jets, particles, 4)``
        - real_mask, generated_mask: ``(jets, particles)``, ``(other_jets, particles)`` bool
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
    n_compared = min(len(half_b), len(generated))
    reference = real[half_a], real_mask[half_a]
    others = {"generated": (generated[:n_compared], generated_mask[:n_compared]),
              "truth": (real[half_b[:n_compared]], real_mask[half_b[:n_compared]])}
    w1_size = eval_size(len(half_a), n_compared, num_eval_samples)
    cov_mmd_size = eval_size(len(half_a), n_compared, cov_mmd_samples)
    reference_efps = efps_d4(*reference)  # the reference's features, computed once for both rows
    reference_nn = nearest_neighbour_delta_r(*reference)
    options = dict(w1_size=w1_size, num_batches=num_batches, cov_mmd_size=cov_mmd_size,
                   cov_mmd_batches=cov_mmd_batches, emd_norm=emd_norm,
                   fpd_options=dict(fpd_options or {}), kpd_options=dict(kpd_options or {}),
                   classifier=None if classifier is None else dict(classifier))
    rows, sizes = {}, {}
    for offset, (row, other) in enumerate(others.items(), start=1):
        rows[row], sizes[row] = _row_scores(
            reference, reference_efps, reference_nn, other, seed=seed + offset, show_progress=progress,
            desc=f"COV/MMD real vs {'generated' if row == 'generated' else 'real'}", **options)
    settings = {"seed": seed, "num_eval_samples": num_eval_samples, "w1_eval_samples": w1_size,
                "num_batches": num_batches, "cov_mmd_samples": cov_mmd_samples,
                "cov_mmd_eval_samples": cov_mmd_size, "cov_mmd_batches": cov_mmd_batches,
                "emd_norm": emd_norm, "fd6_features": list(JET_FEATURE_NAMES),
                "fpd_kpd_features": "36 EFPs, d <= 4", **sizes["generated"]}
    if "classifier" in sizes["truth"]:
        settings["classifier_truth"] = sizes["truth"]["classifier"]
    settings.pop("classifier_skipped", None)
    constraints = {row: physical_constraints(*other, reference=reference[0], reference_mask=reference[1])
                   for row, other in others.items()}
    return {
        "generated": _scores_to_dict(rows["generated"]),
        "truth": _scores_to_dict(rows["truth"]),
        "constraints": constraints,
        "n_real": int(real.shape[0]),
        "n_generated": int(generated.shape[0]),
        "n_reference": int(len(half_a)),
        "n_truth": int(len(half_b)),
        "n_compared": int(n_compared),
        "settings": settings,
        "notes": _size_notes(settings) + ([sizes["generated"]["classifier_skipped"]]
                                          if "classifier_skipped" in sizes["generated"] else []),
    }


def _size_notes(settings: dict) -> list[str]:
    """Where the sizes used fall short of JetNet's defaults (the held-out set is smaller)."""
    notes = []
    if settings["w1_eval_samples"] < JETNET_W1_SAMPLES:
        notes.append(f"W1s and FD6 on batches of {settings['w1_eval_samples']} jets "
                     f"(JetNet: {JETNET_W1_SAMPLES}); truth-vs-truth at the same size")
    if settings["cov_mmd_eval_samples"] < JETNET_COV_MMD_SAMPLES:
        notes.append(f"COV/MMD on batches of {settings['cov_mmd_eval_samples']} jets "
                     f"(JetNet: {JETNET_COV_MMD_SAMPLES})")
    fpd_sizes, kpd_sizes = settings.get("fpd", {}), settings.get("kpd", {})
    if fpd_sizes.get("capped"):
        notes.append(f"FPD fitted on N = {fpd_sizes['min_samples']}..{fpd_sizes['max_samples']} "
                     "(JetNet: 20000..50000)")
    if kpd_sizes.get("capped"):
        notes.append(f"KPD on batches of {kpd_sizes['batch_size']} jets (JetNet: 5000)")
    return notes


def format_metrics_table(result: dict) -> str:
    """A plain-text table of :func:`evaluate_generated`'s result: metric, generated, truth,
    followed by the sample sizes used.

    Args:
        result: what :func:`evaluate_generated` returned (or read back from its JSON).

    Returns:
        The table, lines joined by newlines.
    """
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
    settings = result.get("settings", {})
    if "w1_eval_samples" in settings:
        sizes = [f"compared: {result.get('n_compared', '?')} generated and as many truth jets "
                 f"against {result.get('n_reference', '?')} reference jets",
                 f"W1/FD6: {settings['num_batches']} batches of {settings['w1_eval_samples']} "
                 f"jets; COV/MMD: {settings['cov_mmd_batches']} batches of "
                 f"{settings['cov_mmd_eval_samples']}"]
        if "fpd" in settings:
            f, k = settings["fpd"], settings["kpd"]
            sizes.append(f"FPD: N = {f['min_samples']}..{f['max_samples']} ({f['num_points']} "
                         f"sizes x {f['num_batches']} draws) -> 1/N = 0; KPD: {k['num_batches']} "
                         f"batches of {k['batch_size']}, kernel degree {k['degree']}")
        if "classifier" in settings:
            c = settings["classifier"]
            sizes.append(f"classifier: {c['model']}, {c['n_train']} + {c['n_train']} training and "
                         f"{c['n_test']} + {c['n_test']} test jets, {c['epochs']} epochs "
                         f"({c['seconds']:.0f} s)")
        lines += sizes + [f"note: {note}" for note in result.get("notes", [])]
    return "\n".join(lines + _format_constraints(result.get("constraints", {})))


def _format_constraints(constraints: dict) -> list[str]:
    """Lines of the physical checks (``evaluate_generated(...)["constraints"]``): Σ pT_rel,
    pT_rel <= 0 and multiplicity of each row's jets (generated, truth), side by side.

    Args:
        constraints: ``{"generated": ..., "truth": ...}`` as :func:`evaluate_generated` returns.

    Returns:
        The lines (none without constraints).
    """
    if not constraints:
        return []

    def cells(c: dict) -> tuple[str, ...]:
        s, m, bad = c["sum_pt_rel"], c["multiplicity"], c["nonpositive_pt"]
        dropped = c.get("dropped_nonpositive_pt")
        return (f"{s['mean']:.4g} / {s['max']:.4g} / {s['frac_above_1']:.4g}",
                f"{bad['fraction']:.4g}" + (f" (dropped: {dropped['fraction']:.4g})" if dropped else ""),
                f"{m['mean']:.4g} [{m['q05']:.0f}, {m['q95']:.0f}] / {m['frac_full']:.4g}",
                f"{c.get('w1_multiplicity', float('nan')):.4g} / {c.get('w1_sum_pt_rel', float('nan')):.4g}")

    labels = ("sum pT_rel: mean / max / fraction > 1", "listed particles with pT_rel <= 0",
              "multiplicity: mean [5%, 95%] / fraction full", "W1 vs reference: multiplicity / sum pT_rel")
    columns = {row: cells(c) for row, c in constraints.items()}
    lines = ["physical checks: " + " | ".join(columns)]
    lines += [f"  {label}: " + " | ".join(col[i] for col in columns.values()) for i, label in enumerate(labels)]
    return lines
