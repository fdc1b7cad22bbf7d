"""Figures of a hyperparameter study (``jetlab hpo report``): optimisation history, parameter
importances, the Pareto front of two objectives, and the per-epoch validation numbers the
pruner saw. Numbers come in as plain arrays and dicts (:mod:`jetlab.hpo.report` reads the
study); every figure is a PNG written atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from jetlab.viz.style import pyplot, save_png, styled

__all__ = ["plot_history", "plot_importances", "plot_intermediate", "plot_pareto", "readable"]

#: study names of objectives and settings -> what a figure calls them
_WORDS = {
    "lr": "learning rate", "val_accuracy": "validation accuracy", "val_loss": "validation loss",
    "test_accuracy": "test accuracy", "mean_auc": "mean AUC", "params": "parameters", "w1m": "W1-M",
    "val_w1m": "validation W1-M", "batch_size": "batch size", "edge_dim": "D_E", "object_dim": "D_O",
    "hidden": "N¹ (hidden nodes)",
}


def readable(name: str) -> str:
    """A study's internal name as a figure shows it: ``val_accuracy`` → "validation accuracy",
    ``lr|adam`` (the learning rate searched when the optimizer is adam) → "learning rate (adam)"."""
    key, *when = name.split("|")
    words = _WORDS.get(key, key.replace("_", " "))
    return f"{words} ({', '.join(when)})" if when else words


@styled
def plot_history(numbers: Sequence[int], values: np.ndarray, names: Sequence[str], directions: Sequence[str],
                 path: str | os.PathLike, *, pruned: Mapping[int, Sequence[float]] | None = None,
                 title: str = ""):
    """Objective value per finished trial and the best so far (one panel per objective).

    ``values`` (n_trials, n_objectives) of the complete trials ``numbers``; ``pruned``: trial
    number -> last reported intermediate value, drawn as crosses on the first panel.
    """
    plt = pyplot()
    values = np.asarray(values, dtype=float).reshape(len(numbers), len(names))
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 3.2 * len(names)), squeeze=False)
    order = np.argsort(numbers)
    x = np.asarray(numbers)[order]
    for i, (ax, name, direction) in enumerate(zip(axes[:, 0], names, directions)):
        y = values[order, i]
        ax.plot(x, y, "o", color="C0", label="complete trial")
        if len(y) and len(names) == 1:
            best = np.maximum.accumulate(y) if direction == "maximize" else np.minimum.accumulate(y)
            ax.step(x, best, where="post", color="C3", label="best so far")
        if i == 0 and pruned:
            ax.plot(list(pruned), list(pruned.values()), "x", color="0.5", label="pruned (last epoch reported)")
        ax.set_ylabel(f"{readable(name)} ({direction})")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    from matplotlib.ticker import MaxNLocator

    axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1, 0].set_xlabel("trial number")
    axes[0, 0].set_title(title or "optimisation history")
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    return fig


@styled
def plot_importances(importances: Mapping[str, Mapping[str, float]], path: str | os.PathLike, *,
                     title: str = ""):
    """Horizontal bars of parameter importance (normalised to sum 1), one panel per objective."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(importances), figsize=(5.5 * len(importances), 0.5 + 0.45 * max(
        (len(v) for v in importances.values()), default=1)), squeeze=False)
    for ax, (objective, values) in zip(axes[0], importances.items()):
        names = sorted(values, key=values.get)
        ax.barh([readable(n) for n in names], [values[n] for n in names], color="C0")
        for y, n in enumerate(names):
            ax.text(values[n], y, f" {values[n]:.2f}", va="center", fontsize="small")
        ax.set_xlim(0, 1.15 * max(values.values(), default=1.0) or 1.0)
        ax.set_xlabel(f"importance for {readable(objective)}")
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle(title or "hyperparameter importances")
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    return fig


@styled
def plot_pareto(values: np.ndarray, on_front: np.ndarray, names: Sequence[str], directions: Sequence[str],
                path: str | os.PathLike, *, numbers: Sequence[int] | None = None,
                log_axes: tuple[bool, bool] = (False, False), title: str = ""):
    """Two objectives of every complete trial, the Pareto front highlighted and joined.

    ``values`` (n, 2); ``on_front`` (n,) bool; ``numbers`` label the front's points (trials
    with equal values share a label); ``log_axes``: log scale on x, y (e.g. parameter counts).
    """
    plt = pyplot()
    values = np.asarray(values, dtype=float)
    on_front = np.asarray(on_front, dtype=bool)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    ax.plot(values[~on_front, 0], values[~on_front, 1], "o", color="0.6", label="dominated trial")
    front = values[on_front]
    order = np.argsort(front[:, 0])
    ax.plot(front[order, 0], front[order, 1], "o-", color="C3", label="Pareto front")
    if numbers is not None:
        labels: dict[tuple[float, float], list[str]] = {}
        for point, n in zip(map(tuple, values[on_front]), np.asarray(numbers)[on_front]):
            labels.setdefault(point, []).append(str(n))
        for (x, y), text in labels.items():
            ax.annotate(",".join(text), (x, y), textcoords="offset points", xytext=(4, 4), fontsize="small")
    if log_axes[0]:
        ax.set_xscale("log")
    if log_axes[1]:
        ax.set_yscale("log")
    ax.set_xlabel(f"{readable(names[0])} ({directions[0]})")
    ax.set_ylabel(f"{readable(names[1])} ({directions[1]})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title or "Pareto front")
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    return fig


@styled
def plot_intermediate(curves: Mapping[int, tuple[Sequence[int], Sequence[float]]], pruned: set[int],
                      path: str | os.PathLike, *, ylabel: str, title: str = ""):
    """Per-epoch validation number of every trial (``curves``: number -> (epochs, values));
    pruned trials grey."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for number, (steps, values) in sorted(curves.items()):
        is_pruned = number in pruned
        ax.plot(steps, values, "-", marker=".", color="0.65" if is_pruned else "C0", alpha=0.8,
                lw=0.8 if is_pruned else 1.2)
    ax.plot([], [], "-", color="C0", label="complete")
    ax.plot([], [], "-", color="0.65", label="pruned")
    ax.set_xlabel("epoch")
    ax.set_ylabel(readable(ylabel))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title or "validation number per epoch (what the pruner sees)")
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    return fig
