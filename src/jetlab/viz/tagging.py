"""Plots for jet taggers: ROC curves in the JEDI-net paper's style (Moreno et al.,
arXiv:1908.05318, Fig. 4: signal efficiency TPR on x, mistag rate FPR on a log y axis,
one curve per class, one-vs-rest) and training curves (loss, accuracy, learning rate
per epoch).

The ROC's y axis stops at the smallest mistag rate the test set can measure, one
background jet in ``N_background``: ``FPR_min = 1 / N_background``. Below it the curve
holds no information (an FPR of 0 is off a log axis anyway), so the axis does not pretend
otherwise; with several curves it is the finest of them, ``1 / max N_background``.

Every function writes a PNG atomically (:func:`jetlab.viz.style.save_png`) in jetlab's
figure style and returns the (closed) matplotlib ``Figure`` for inspection.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from jetlab.viz.style import pyplot, save_png, styled

__all__ = ["fpr_floor", "plot_roc", "plot_roc_comparison", "plot_training_curve"]


def fpr_floor(n_background: int) -> float:
    """The smallest non-zero mistag rate a test set of ``n_background`` background jets resolves."""
    if n_background < 1:
        raise ValueError(f"a ROC curve needs at least one background jet, got {n_background}")
    return 1.0 / n_background


def _background_count(fpr: np.ndarray) -> int:
    """Background jets behind an ROC curve from ``roc_curve``: its FPR steps are multiples of
    1/N_background, the smallest step is one jet (exact unless every step ties two or more)."""
    steps = np.diff(np.unique(np.asarray(fpr, dtype=np.float64)))
    steps = steps[steps > 0]
    return int(round(1.0 / steps.min())) if steps.size else 1


def _roc_axes(ax, title: str, n_background: int, legend_title: str | None = None) -> None:
    ax.set_yscale("log")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(fpr_floor(n_background), 1.0)
    ax.set_xlabel(r"signal efficiency $\varepsilon_S$ (TPR)")
    ax.set_ylabel(r"mistag rate $\varepsilon_B$ (FPR)")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small", title=legend_title, title_fontsize="small")


@styled
def plot_roc(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str], path: str | os.PathLike,
             *, title: str = ""):
    """One-vs-rest ROC of every class: labels (N,), probs (N, C); y axis down to 1/N_background.

    Returns the (closed) figure, or None without writing anything when no class has both
    signal and background jets (e.g. generated jets of one class): there is no curve to draw.
    """
    from jetlab.metrics.tagging import one_vs_rest_rocs, roc_auc  # lazy: start-up (scipy)

    labels = np.asarray(labels)
    curves = [(c, name, curve) for c, (name, curve) in enumerate(zip(class_names, one_vs_rest_rocs(labels, probs)))
              if curve is not None]
    if not curves:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    n_background = 1
    for c, name, curve in curves:
        n_background = max(n_background, int((labels != c).sum()))
        fpr, tpr = curve
        ax.plot(tpr[1:], fpr[1:], label=f"{name} tagger, AUC = {100 * roc_auc(fpr, tpr):.1f}%")
    _roc_axes(ax, title or "one-vs-rest ROC", n_background, f"{len(labels)} test jets")
    save_png(fig, path, dpi=120, bbox_inches="tight")
    return fig


@styled
def plot_roc_comparison(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike,
                        *, title: str, n_background: int | None = None):
    """ROC of several models for one class: ``curves`` maps model label -> (fpr, tpr).

    ``n_background`` (background jets of the test set) sets the y axis floor; when None it
    is read off the curves' FPR steps.
    """
    from jetlab.metrics.tagging import roc_auc  # lazy: start-up (scipy)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    found = 1
    for label, (fpr, tpr) in curves.items():
        found = max(found, _background_count(fpr))
        ax.plot(tpr[1:], fpr[1:], label=f"{label}, AUC = {100 * roc_auc(fpr, tpr):.1f}%")
    n = n_background or found
    _roc_axes(ax, title, n, f"{n} background jets")
    save_png(fig, path, dpi=120, bbox_inches="tight")
    return fig


@styled
def plot_training_curve(history: Sequence[Mapping[str, float]], path: str | os.PathLike, *, title: str = "",
                        best_epoch: int | None = None):
    """Loss, accuracy and learning rate per epoch, on integer epoch ticks.

    ``history`` holds one mapping per epoch with keys ``epoch``, ``train_loss``,
    ``val_loss`` and optionally ``train_accuracy``, ``val_accuracy``, ``lr``. Panels without
    data (no accuracy, no learning rate) are left out. ``best_epoch`` (the one whose weights
    the run keeps) is marked by a dashed line in every panel.
    """
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    first = history[0] if history else {}
    has_acc = any(k in first for k in ("train_accuracy", "val_accuracy"))
    has_lr = "lr" in first
    n_panels = 1 + has_acc + has_lr
    width = 4.6 * n_panels
    # fixed margins (inches over the width), not layout="constrained", which measures every
    # tick label before the drawing measures them again: 2/3 of this figure's time, and every
    # tagger run draws it
    fig, axes = plt.subplots(1, n_panels, figsize=(width, 3.8), squeeze=False, gridspec_kw={
        "left": 0.85 / width, "right": 1 - 0.15 / width, "bottom": 0.15, "top": 0.87 if title else 0.95,
        "wspace": 0.27})
    axes = list(axes[0])
    ax_loss = axes.pop(0)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", markersize=3, label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "s-", markersize=3, label="validation")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_loss.legend()
    if has_acc:
        ax_acc = axes.pop(0)
        for key, label, marker in (("train_accuracy", "train", "o-"), ("val_accuracy", "validation", "s-")):
            if key in first:
                ax_acc.plot(epochs, [h[key] for h in history], marker, markersize=3, label=label)
        ax_acc.set_ylabel("accuracy")
        ax_acc.legend()
    if has_lr:
        ax_lr = axes.pop(0)
        ax_lr.plot(epochs, [h["lr"] for h in history], "k.-")
        ax_lr.set_yscale("log")
        ax_lr.set_ylabel("learning rate")
    for ax in fig.axes:
        if best_epoch:
            ax.axvline(best_epoch, color="0.5", linestyle="--", linewidth=1, label=f"best epoch ({best_epoch})")
            ax.legend(fontsize="small")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    save_png(fig, path, dpi=120)
    return fig
