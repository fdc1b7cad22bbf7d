"""Tagging metrics against answers worked out by hand and against scikit-learn."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from jetlab.metrics.tagging import (
    background_rejection,
    confusion_matrix,
    fpr_at_tpr,
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
