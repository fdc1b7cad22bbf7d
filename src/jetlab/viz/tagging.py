"""Plots for jet taggers: ROC curves in the JEDI-net paper's style (Moreno et al.,
arXiv:1908.05318, Fig. 4: signal efficiency TPR on x, mistag rate FPR on a log y axis,
one curve per class, one-vs-rest) and training curves (loss, accuracy, learning rate
per epoch).

All functions write a PNG atomically and use matplotlib's non-interactive Agg backend.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from jetlab.viz.style import pyplot, save_png

__all__ = ["plot_roc", "plot_roc_comparison", "plot_training_curve"]


def _roc_axes(ax, title: str) -> None:
    ax.set_yscale("log")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(1e-4, 1.0)
    ax.set_xlabel("signal efficiency (TPR)")
    ax.set_ylabel("mistag rate (FPR)")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")


def plot_roc(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str], path: str | os.PathLike,
             *, title: str = "") -> None:
    """One-vs-rest ROC of every class: labels (N,), probs (N, C)."""
    from jetlab.metrics.tagging import one_vs_rest_rocs, roc_auc

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, curve in zip(class_names, one_vs_rest_rocs(labels, probs)):
        if curve is None:
            continue
        fpr, tpr = curve
        ax.plot(tpr[1:], fpr[1:], label=f"{name} tagger, AUC = {100 * roc_auc(fpr, tpr):.1f}%")
    _roc_axes(ax, title or "one-vs-rest ROC")
    save_png(fig, path, dpi=120, bbox_inches="tight")


def plot_roc_comparison(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike,
                        *, title: str) -> None:
    """ROC of several models for one class: ``curves`` maps model label -> (fpr, tpr)."""
    from jetlab.metrics.tagging import roc_auc

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for label, (fpr, tpr) in curves.items():
        ax.plot(tpr[1:], fpr[1:], label=f"{label}, AUC = {100 * roc_auc(fpr, tpr):.1f}%")
    _roc_axes(ax, title)
    save_png(fig, path, dpi=120, bbox_inches="tight")


def plot_training_curve(history: Sequence[Mapping[str, float]], path: str | os.PathLike, *, title: str = "") -> None:
    """Loss, accuracy and learning rate per epoch.

    ``history`` holds one mapping per epoch with keys ``epoch``, ``train_loss``,
    ``val_loss`` and optionally ``train_accuracy``, ``val_accuracy``, ``lr``.
    """
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(14, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "s-", label="validation")
    ax_loss.set_ylabel("cross-entropy loss")
    for key, label, marker in (("train_accuracy", "train", "o-"), ("val_accuracy", "validation", "s-")):
        if history and key in history[0]:
            ax_acc.plot(epochs, [h[key] for h in history], marker, label=label)
    ax_acc.set_ylabel("accuracy")
    if history and "lr" in history[0]:
        ax_lr.plot(epochs, [h["lr"] for h in history], "k.-")
        ax_lr.set_yscale("log")
    ax_lr.set_ylabel("learning rate")
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    ax_loss.legend()
    ax_acc.legend()
    if title:
        fig.suptitle(title)
    save_png(fig, path, dpi=120, bbox_inches="tight")
