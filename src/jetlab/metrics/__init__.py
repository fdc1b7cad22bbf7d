"""Metrics: numbers only (figures are :mod:`jetlab.viz`'s).

Tagging (:mod:`jetlab.metrics.tagging`): accuracy, per-class one-vs-rest ROC AUC, TPR at
fixed FPR, background rejection, confusion matrix. Generation (JetNet conventions, Kansal
et al. arXiv:2106.11535 and arXiv:2211.10295): :mod:`jetlab.metrics.generation` (W1-M, W1-P,
W1-EFP, FD6, coverage/MMD with the EMD, :func:`~jetlab.metrics.generation.evaluate_generated`),
:mod:`jetlab.metrics.feature_distances` (JetNet's FPD and KPD), :mod:`jetlab.metrics.efp`
(the 36 d ≤ 4 EFPs and the 5 n=4, d=4 prime ones) and :mod:`jetlab.metrics.classifier_test`
(classifier two-sample test).

JetNet's names, arguments and return values, so code written against ``jetnet.evaluation``
runs unchanged::

    from jetlab.metrics import fpd, get_fpd_kpd_jet_features, kpd
    real_features = get_fpd_kpd_jet_features(real_jets)      # (N, 36)
    value, error = fpd(real_features, get_fpd_kpd_jet_features(generated_jets))
"""

from jetlab.metrics import efp, feature_distances, generation, tagging
from jetlab.metrics.efp import get_fpd_kpd_jet_features
from jetlab.metrics.feature_distances import fpd, kpd

__all__ = ["efp", "feature_distances", "fpd", "generation", "get_fpd_kpd_jet_features", "kpd",
           "tagging"]
