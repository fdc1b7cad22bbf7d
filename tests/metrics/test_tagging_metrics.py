"""Tagging metrics against answers worked out by hand and against scikit-learn."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from jetlab.metrics.tagging import (
    auc_standard_error,
    background_rejection,
    confusion_matrix,
    fpr_at_tpr,
    mean_auc,
    paired_mean_auc_difference,
    roc_auc,
    roc_curve,
    tagging_metrics,
    tpr_at_fpr,
)

# 10 background jets at 0.05, 0.15, ..., 0.95 and 10 signal jets; sorted by score the
# sequence is S S B S S B S B B S B S B S B S B S B B ... worked through in the tests
BKG = np.arange(10) / 10 + 0.05
SIG = np.array([0.99, 0.97, 0.90, 0.88, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
HAND_LABELS = np.r_[np.zeros(10, bool), np.ones(10, bool)]
HAND_SCORES = np.r_[BKG, SIG]


def test_perfect_classifier_has_auc_one_and_full_efficiency():
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    fpr, tpr, _ = roc_curve(labels, scores)
    assert roc_auc(fpr, tpr) == 1.0
    assert tpr_at_fpr(fpr, tpr, 0.01) == 1.0
    assert math.isinf(background_rejection(fpr, tpr, 0.3))


def test_auc_of_a_hand_case_counts_ordered_pairs():
    # S 0.9 beats both B; S 0.7 beats B 0.6 only: 3 of 4 pairs
    fpr, tpr, _ = roc_curve([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6])
    assert roc_auc(fpr, tpr) == pytest.approx(0.75)


def test_constant_scores_give_auc_one_half_and_random_scores_about_one_half():
    fpr, tpr, _ = roc_curve([1, 0, 1, 0, 0], [0.5] * 5)
    assert roc_auc(fpr, tpr) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 20_000).astype(bool)
    fpr, tpr, _ = roc_curve(labels, rng.random(20_000))
    assert roc_auc(fpr, tpr) == pytest.approx(0.5, abs=0.015)


def test_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.random(500) + 0.3 * labels, 1)  # many ties
    fpr, tpr, _ = roc_curve(labels, scores)
    assert roc_auc(fpr, tpr) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_tpr_at_fpr_on_a_hand_made_score_list():
    fpr, tpr, _ = roc_curve(HAND_LABELS, HAND_SCORES)
    # a cut at 0.88 passes 1 of 10 background (0.95) and 4 signal (0.99 0.97 0.90 0.88)
    assert tpr_at_fpr(fpr, tpr, 0.10) == pytest.approx(0.4)
    # FPR 1% lies between the points (0, 0.2) and (0.1, 0.2): TPR 0.2
    assert tpr_at_fpr(fpr, tpr, 0.01) == pytest.approx(0.2)
    # FPR 25 % lies on the flat stretch from (0.2, 0.4) [cut 0.85] to (0.3, 0.4) [cut 0.75]
    assert tpr_at_fpr(fpr, tpr, 0.25) == pytest.approx(0.4)


def test_background_rejection_by_hand():
    fpr, tpr, _ = roc_curve(HAND_LABELS, HAND_SCORES)
    # eps_S = 30 % is first reached by the cut at 0.90, which passes 1 background: eps_B = 0.1
    assert fpr_at_tpr(fpr, tpr, 0.3) == pytest.approx(0.1)
    assert background_rejection(fpr, tpr, 0.3) == pytest.approx(10.0)
    # eps_S = 20 % needs no background at all
    assert math.isinf(background_rejection(fpr, tpr, 0.2))


def test_interpolation_matches_numpy_interp_on_sklearn_curve():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 2000)
    scores = rng.normal(size=2000) + labels
    fpr, tpr, _ = roc_curve(labels, scores)
    sk_fpr, sk_tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    # no ties: each step adds one jet, so the ROC crosses a vertical line FPR = t on a
    # flat (background) step whose height is the best TPR with FPR <= t
    for target in (0.01, 0.1, 0.37):
        assert tpr_at_fpr(fpr, tpr, target) == pytest.approx(max(sk_tpr[sk_fpr <= target]))
    assert fpr_at_tpr(fpr, tpr, 0.3) == pytest.approx(min(sk_fpr[sk_tpr >= 0.3]))


def test_confusion_matrix_by_hand():
    labels = [0, 0, 1, 2, 2, 2]
    predictions = [0, 1, 1, 2, 0, 2]
    expected = [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    np.testing.assert_array_equal(confusion_matrix(labels, predictions, 3), expected)


def test_tagging_metrics_multiclass_against_sklearn():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 600)
    logits = rng.normal(size=(600, 3)) + 1.5 * np.eye(3)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    metrics = tagging_metrics(labels, probs, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == labels))
    for c, name in enumerate("abc"):
        assert metrics["per_class"][name]["auc"] == pytest.approx(roc_auc_score(labels == c, probs[:, c]))
        assert metrics["per_class"][name]["n_signal"] == int((labels == c).sum())
    cm = np.array(metrics["confusion_matrix"])
    assert cm.sum() == 600
    np.testing.assert_allclose(np.array(metrics["confusion_matrix_normalized"]).sum(1), 1.0)
    assert np.trace(cm) / 600 == pytest.approx(metrics["accuracy"])


def test_tagging_metrics_perfect_classifier_reports_no_finite_rejection():
    labels = np.array([0, 1, 2, 0, 1, 2])
    probs = np.eye(3)[labels]
    metrics = tagging_metrics(labels, probs, ["a", "b", "c"])
    assert metrics["accuracy"] == 1.0
    assert metrics["mean_auc"] == 1.0
    assert all(v["rejection_at_30"] is None and v["tpr_at_fpr_1"] == 1.0 for v in metrics["per_class"].values())


# ---------------------------------------------------------------- statistical errors


def test_hanley_mcneil_error_matches_hand_computation():
    # A = 0.9, 30 signal, 120 background: Q1 = 0.9/1.1, Q2 = 1.62/1.9
    q1, q2 = 0.9 / 1.1, 2 * 0.81 / 1.9
    expected = math.sqrt((0.9 * 0.1 + 29 * (q1 - 0.81) + 119 * (q2 - 0.81)) / (30 * 120))
    assert auc_standard_error(0.9, 30, 120) == pytest.approx(expected, rel=1e-12)
    assert auc_standard_error(0.9, 300, 1200) < auc_standard_error(0.9, 30, 120)
    with pytest.raises(ValueError):
        auc_standard_error(0.9, 0, 10)


def test_hanley_mcneil_error_matches_spread_over_independent_test_sets():
    # exponential scores (the model behind the formula): background Exp(1), signal Exp(1/4)
    # gives AUC = 4/5; the AUC's spread over 400 test sets should match the formula
    rng = np.random.default_rng(3)
    n_signal, n_background = 200, 800
    labels = np.r_[np.ones(n_signal, bool), np.zeros(n_background, bool)]
    aucs = [roc_auc(*roc_curve(labels, np.r_[rng.exponential(4.0, n_signal), rng.exponential(1.0, n_background)])[:2])
            for _ in range(400)]
    assert np.mean(aucs) == pytest.approx(0.8, abs=0.005)
    assert np.std(aucs) == pytest.approx(auc_standard_error(0.8, n_signal, n_background), rel=0.15)


def _two_taggers(rng, n_jets, n_classes=3):
    """Labels and the softmax outputs of a better tagger A and a worse tagger B sharing most of
    their per-jet fluctuation (as two models trained on the same jets do)."""
    labels = rng.integers(0, n_classes, n_jets)
    signal = np.eye(n_classes)[labels] * 1.5
    common = rng.normal(size=(n_jets, n_classes))
    logits_a = signal + common + 0.3 * rng.normal(size=(n_jets, n_classes))
    logits_b = 0.85 * signal + common + 0.3 * rng.normal(size=(n_jets, n_classes))
    softmax = lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # noqa: E731
    return labels, softmax(logits_a), softmax(logits_b)


def test_paired_bootstrap_error_matches_spread_over_independent_test_sets():
    rng = np.random.default_rng(5)
    labels, probs_a, probs_b = _two_taggers(rng, 1500)
    difference, error = paired_mean_auc_difference(labels, probs_a, probs_b, n_resamples=200, seed=1)
    assert difference == pytest.approx(mean_auc(labels, probs_a) - mean_auc(labels, probs_b))
    assert difference > 0
    spread = np.std([np.subtract(*[mean_auc(lab, p) for p in (pa, pb)])
                     for lab, pa, pb in (_two_taggers(rng, 1500) for _ in range(150))])
    assert error == pytest.approx(spread, rel=0.3)
    # pairing is the point: the difference is far better known than each AUC on its own
    unpaired = math.hypot(*(np.std([mean_auc(labels[s], p[s]) for s in
                                    (rng.integers(0, 1500, 1500) for _ in range(100))]) for p in (probs_a, probs_b)))
    assert error < 0.6 * unpaired


def test_paired_bootstrap_is_antisymmetric_and_zero_for_identical_taggers():
    labels, probs_a, probs_b = _two_taggers(np.random.default_rng(2), 600)
    ab = paired_mean_auc_difference(labels, probs_a, probs_b, n_resamples=50, seed=4)
    ba = paired_mean_auc_difference(labels, probs_b, probs_a, n_resamples=50, seed=4)
    assert ab[0] == pytest.approx(-ba[0]) and ab[1] == pytest.approx(ba[1])
    assert paired_mean_auc_difference(labels, probs_a, probs_a, n_resamples=20) == (0.0, 0.0)
    with pytest.raises(ValueError, match="same jets"):
        paired_mean_auc_difference(labels, probs_a, probs_b[:-1])
