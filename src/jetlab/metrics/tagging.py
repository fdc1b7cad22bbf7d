"""Jet-tagging figures of merit, as quoted in the JEDI-net paper (Moreno et al.,
arXiv:1908.05318, Table 2 and Fig. 4) and the hls4ml jet-tagging benchmark.

For a classifier with softmax outputs ``probs`` (N, C) and true labels ``labels`` (N,),
each class c is scored *one versus rest*: the jets of class c are the signal, every other
jet is background, and the discriminant is ``probs[:, c]``. Along the ROC curve

    TPR(t) = #{signal with score >= t} / #signal      (signal efficiency  eps_S)
    FPR(t) = #{background with score >= t} / #background   (mistag rate  eps_B)

and the reported numbers are

* ``auc``: area under TPR(FPR) (trapezoids; tied scores count one half, i.e. the
  Mann-Whitney statistic);
* ``tpr_at_fpr_10`` / ``tpr_at_fpr_1``: TPR at FPR = 10 % / 1 % (the paper's table);
* ``rejection_at_30``: background rejection 1/eps_B at eps_S = 30 % (``None`` in JSON when
  no background passes, i.e. infinite rejection);
* ``accuracy`` (argmax) and the confusion matrix ``cm[true, predicted]`` (counts and
  row-normalised).

Points between two thresholds are linearly interpolated on the ROC curve, the usual
convention of ``sklearn.metrics.roc_curve`` + ``numpy.interp``.

Statistical errors: :func:`auc_standard_error` is the error of one AUC from the numbers of
signal and background jets (Hanley and McNeil 1982); :func:`paired_mean_auc_difference`
compares two taggers scored on the *same* jets, where most of the test-set fluctuation is
common to both, by resampling the jets (a paired bootstrap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "roc_curve",
    "roc_auc",
    "tpr_at_fpr",
    "fpr_at_tpr",
    "background_rejection",
    "confusion_matrix",
    "one_vs_rest_rocs",
    "tagging_metrics",
    "auc_standard_error",
    "mean_auc",
    "paired_mean_auc_difference",
]


def roc_curve(is_signal: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of a binary discriminant: one point per distinct score, from (0, 0)
    (threshold +inf) to (1, 1), so tied scores give a straight (diagonal) segment.

    Args:
        is_signal: whether each entry is signal.
        scores: the discriminant (higher: more signal-like).

    Returns:
        ``(fpr, tpr, thresholds)``: the point at threshold t is
        ``(#{background >= t} / #background, #{signal >= t} / #signal)``.

    Shapes:
        - is_signal, scores: ``(entries,)``
        - fpr, tpr, thresholds: ``(distinct_scores + 1,)``
    """
    is_signal = np.asarray(is_signal, dtype=bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if is_signal.shape != scores.shape:
        raise ValueError(f"labels {is_signal.shape} and scores {scores.shape} differ in shape")
    n_sig = int(is_signal.sum())
    n_bkg = is_signal.size - n_sig
    if n_sig == 0 or n_bkg == 0:
        raise ValueError("a ROC curve needs both signal and background entries")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    sorted_signal = is_signal[order]
    # last index of every run of equal scores: the cut "score >= t" admits whole runs
    run_ends = np.flatnonzero(np.diff(sorted_scores) != 0)
    run_ends = np.append(run_ends, sorted_scores.size - 1)
    true_pos = np.cumsum(sorted_signal)[run_ends]
    false_pos = (run_ends + 1) - true_pos
    tpr = np.concatenate([[0.0], true_pos / n_sig])
    fpr = np.concatenate([[0.0], false_pos / n_bkg])
    thresholds = np.concatenate([[np.inf], sorted_scores[run_ends]])
    return fpr, tpr, thresholds


def roc_auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the ROC curve by the trapezoidal rule.

    Args:
        fpr: false-positive rates, non-decreasing (:func:`roc_curve`).
        tpr: true-positive rates at the same points.

    Returns:
        The area, in [0, 1].

    Shapes:
        - fpr, tpr: ``(points,)``
    """
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def _interpolate_monotone(x: np.ndarray, y: np.ndarray, x0: float) -> float:
    """y at x = x0 on the piecewise-linear curve (x, y), both non-decreasing.

    Where the curve is vertical at x0 (several points with x == x0) the highest y is
    returned: the best efficiency reachable without exceeding x0.
    """
    last_at_or_below = int(np.searchsorted(x, x0, side="right")) - 1
    if last_at_or_below < 0:
        return float(y[0])
    if last_at_or_below == len(x) - 1 or x[last_at_or_below] == x0:
        return float(y[last_at_or_below])
    x_a, x_b = x[last_at_or_below], x[last_at_or_below + 1]
    y_a, y_b = y[last_at_or_below], y[last_at_or_below + 1]
    return float(y_a + (y_b - y_a) * (x0 - x_a) / (x_b - x_a))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target_fpr: float) -> float:
    """Signal efficiency at mistag rate ``target_fpr`` (e.g. 0.1 or 0.01), interpolated linearly
    between ROC points; on a vertical stretch the highest TPR.

    Args:
        fpr: false-positive rates, non-decreasing (:func:`roc_curve`).
        tpr: true-positive rates at the same points.
        target_fpr: the mistag rate eps_B.

    Returns:
        The signal efficiency eps_S.

    Shapes:
        - fpr, tpr: ``(points,)``
    """
    return _interpolate_monotone(np.asarray(fpr), np.asarray(tpr), target_fpr)


def fpr_at_tpr(fpr: np.ndarray, tpr: np.ndarray, target_tpr: float) -> float:
    """Mistag rate eps_B at signal efficiency ``target_tpr``: the lowest FPR reaching it.

    The curve is read with TPR as the abscissa; on a horizontal stretch (several points
    with tpr == target) the smallest FPR is the one that reaches the target.

    Args:
        fpr: false-positive rates, non-decreasing (:func:`roc_curve`).
        tpr: true-positive rates at the same points.
        target_tpr: the signal efficiency eps_S.

    Returns:
        The mistag rate eps_B.

    Shapes:
        - fpr, tpr: ``(points,)``
    """
    fpr = np.asarray(fpr)
    tpr = np.asarray(tpr)
    first_at_or_above = int(np.searchsorted(tpr, target_tpr, side="left"))
    if first_at_or_above >= len(tpr):
        return float(fpr[-1])
    if tpr[first_at_or_above] == target_tpr or first_at_or_above == 0:
        return float(fpr[first_at_or_above])
    t_a, t_b = tpr[first_at_or_above - 1], tpr[first_at_or_above]
    f_a, f_b = fpr[first_at_or_above - 1], fpr[first_at_or_above]
    return float(f_a + (f_b - f_a) * (target_tpr - t_a) / (t_b - t_a))


def background_rejection(fpr: np.ndarray, tpr: np.ndarray, signal_efficiency: float = 0.3) -> float:
    """Background rejection 1/eps_B at eps_S = ``signal_efficiency``.

    Args:
        fpr: false-positive rates, non-decreasing (:func:`roc_curve`).
        tpr: true-positive rates at the same points.
        signal_efficiency: the signal efficiency eps_S.

    Returns:
        1/eps_B; ``inf`` when no background passes.

    Shapes:
        - fpr, tpr: ``(points,)``
    """
    eps_b = fpr_at_tpr(fpr, tpr, signal_efficiency)
    return math.inf if eps_b <= 0.0 else 1.0 / eps_b


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``cm[true, predicted]``.

    Args:
        labels: true classes, in ``[0, n_classes)``.
        predictions: predicted classes, in ``[0, n_classes)``.
        n_classes: number of classes C.

    Returns:
        int64 counts, rows the true class, columns the predicted one.

    Shapes:
        - labels, predictions: ``(jets,)``
        - returns: ``(n_classes, n_classes)``
    """
    labels = np.asarray(labels, dtype=np.int64).ravel()
    predictions = np.asarray(predictions, dtype=np.int64).ravel()
    flat = labels * n_classes + predictions
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def one_vs_rest_rocs(labels: np.ndarray, probs: np.ndarray) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Per class c the ROC of ``probs[:, c]`` for class c against the rest.

    Args:
        labels: true classes.
        probs: class probabilities (or any per-class scores).

    Returns:
        One ``(fpr, tpr)`` per class (:func:`roc_curve`), ``None`` for a class absent from
        ``labels`` or the only class present.

    Shapes:
        - labels: ``(jets,)``
        - probs: ``(jets, classes)``
        - fpr, tpr: ``(points,)`` per class
    """
    labels = np.asarray(labels).ravel()
    probs = np.asarray(probs)
    curves: list[tuple[np.ndarray, np.ndarray] | None] = []
    for c in range(probs.shape[1]):
        is_signal = labels == c
        if is_signal.all() or not is_signal.any():
            curves.append(None)
            continue
        fpr, tpr, _ = roc_curve(is_signal, probs[:, c])
        curves.append((fpr, tpr))
    return curves


def tagging_metrics(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict:
    """All tagging numbers of a classifier (module docstring).

    Args:
        labels: true classes.
        probs: class probabilities.
        class_names: the name of every class, in column order.

    Returns:
        A JSON-ready dict: ``accuracy``, ``n_jets``, ``mean_auc``, ``per_class`` (name -> auc,
        auc_error, tpr_at_fpr_10, tpr_at_fpr_1, rejection_at_30, n_signal), ``class_names``,
        ``confusion_matrix`` (counts) and ``confusion_matrix_normalized`` (rows sum to 1),
        rows the true class, columns the predicted class, in the order of ``class_names``.

    Shapes:
        - labels: ``(jets,)`` int
        - probs: ``(jets, classes)``, ``classes == len(class_names)``
    """
    labels = np.asarray(labels, dtype=np.int64).ravel()
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = len(class_names)
    if probs.ndim != 2 or probs.shape != (labels.size, n_classes):
        raise ValueError(f"probs must be (N={labels.size}, C={n_classes}), got {probs.shape}")
    predictions = probs.argmax(axis=1)
    cm = confusion_matrix(labels, predictions, n_classes)
    row_sums = cm.sum(axis=1, keepdims=True)
    cm_normalized = np.divide(cm, row_sums, out=np.zeros(cm.shape, dtype=np.float64), where=row_sums > 0)
    per_class: dict[str, dict] = {}
    for c, (name, curve) in enumerate(zip(class_names, one_vs_rest_rocs(labels, probs))):
        if curve is None:
            per_class[name] = {"auc": None, "tpr_at_fpr_10": None, "tpr_at_fpr_1": None,
                               "rejection_at_30": None, "n_signal": int((labels == c).sum())}
            continue
        fpr, tpr = curve
        rejection = background_rejection(fpr, tpr, 0.3)
        n_signal = int((labels == c).sum())
        auc = roc_auc(fpr, tpr)
        per_class[name] = {
            "auc": auc,
            "auc_error": auc_standard_error(auc, n_signal, labels.size - n_signal),
            "tpr_at_fpr_10": tpr_at_fpr(fpr, tpr, 0.10),
            "tpr_at_fpr_1": tpr_at_fpr(fpr, tpr, 0.01),
            "rejection_at_30": None if math.isinf(rejection) else rejection,
            "n_signal": n_signal,
        }
    aucs = [v["auc"] for v in per_class.values() if v["auc"] is not None]
    return {
        "n_jets": int(labels.size),
        "accuracy": float((predictions == labels).mean()) if labels.size else float("nan"),
        "mean_auc": float(np.mean(aucs)) if aucs else None,
        "per_class": per_class,
        "class_names": list(class_names),
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_normalized": cm_normalized.tolist(),
    }


def auc_standard_error(auc: float, n_signal: int, n_background: int) -> float:
    """Standard error of an AUC measured on ``n_signal`` signal and ``n_background``
    background jets (Hanley and McNeil, Radiology 143 (1982) 29, eq. 2):

        Q1 = A / (2 - A),   Q2 = 2 A² / (1 + A)
        SE² = [A (1 - A) + (n_S - 1)(Q1 - A²) + (n_B - 1)(Q2 - A²)] / (n_S n_B)

    It assumes exponential-like score distributions, a good approximation for the AUCs of
    jet taggers (0.8–0.97); compare it with the spread over independent test sets in the tests.

    Args:
        auc: the measured AUC A.
        n_signal: signal jets n_S (at least 1).
        n_background: background jets n_B (at least 1).

    Returns:
        The standard error SE.
    """
    if n_signal < 1 or n_background < 1:
        raise ValueError(f"an AUC error needs signal and background jets, got {n_signal} and {n_background}")
    a = float(auc)
    q1 = a / (2.0 - a)
    q2 = 2.0 * a * a / (1.0 + a)
    variance = (a * (1 - a) + (n_signal - 1) * (q1 - a * a) + (n_background - 1) * (q2 - a * a)) / (
        n_signal * n_background)
    return math.sqrt(max(variance, 0.0))


def mean_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean over classes of the one-vs-rest AUC (classes absent from ``labels`` left out).

    Args:
        labels: true classes.
        probs: class probabilities.

    Returns:
        The mean AUC.

    Shapes:
        - labels: ``(jets,)``
        - probs: ``(jets, classes)``
    """
    aucs = [roc_auc(*curve) for curve in one_vs_rest_rocs(labels, probs) if curve is not None]
    return float(np.mean(aucs))


def paired_mean_auc_difference(labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray, *,
                               n_resamples: int = 200, seed: int = 0) -> tuple[float, float]:
    """Mean AUC of tagger A minus that of tagger B on the same jets, and its statistical error.

    The error is the standard deviation of the difference over ``n_resamples`` bootstrap
    resamples of the jets, each drawn once and applied to both taggers (Efron and Tibshirani,
    *An Introduction to the Bootstrap*, 1993, ch. 6): the fluctuation that both taggers see
    cancels, so the error is much smaller than the two unpaired AUC errors combined. Each
    class is resampled on its own (a stratified bootstrap), so every resample holds every
    class with its number of jets, as the AUC errors assume.

    Args:
        labels: true classes.
        probs_a: class probabilities of tagger A.
        probs_b: class probabilities of tagger B, for the same jets in the same order.
        n_resamples: bootstrap resamples.
        seed: seed of the resampling.

    Returns:
        ``(difference, error)``.

    Shapes:
        - labels: ``(jets,)``
        - probs_a, probs_b: ``(jets, classes)``
    """
    labels = np.asarray(labels).ravel()
    probs_a, probs_b = np.asarray(probs_a), np.asarray(probs_b)
    if probs_a.shape != probs_b.shape or probs_a.shape[0] != labels.size:
        raise ValueError(f"labels {labels.shape}, probs {probs_a.shape} and {probs_b.shape} do not describe "
                         "the same jets")
    observed = mean_auc(labels, probs_a) - mean_auc(labels, probs_b)
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    differences = np.empty(n_resamples)
    for i in range(n_resamples):
        sample = np.concatenate([rng.choice(members, members.size) for members in by_class])
        differences[i] = mean_auc(labels[sample], probs_a[sample]) - mean_auc(labels[sample], probs_b[sample])
    return observed, float(differences.std(ddof=1))
