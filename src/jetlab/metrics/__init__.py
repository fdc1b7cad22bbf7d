"""Metrics: numbers only (figures are :mod:`jetlab.viz`'s).

Tagging (:mod:`jetlab.metrics.tagging`): accuracy, per-class one-vs-rest ROC AUC, TPR at
fixed FPR, background rejection, confusion matrix. Generation (JetNet conventions, Kansal
et al. arXiv:2106.11535): :mod:`jetlab.metrics.generation` (W1-M, W1-P, W1-EFP, FPD,
coverage/MMD with the EMD, :func:`~jetlab.metrics.generation.evaluate_generated`) and
:mod:`jetlab.metrics.efp` (the 5 n=4, d=4 prime EFPs).
"""

from jetlab.metrics import efp, generation, tagging

__all__ = ["efp", "generation", "tagging"]
