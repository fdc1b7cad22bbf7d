"""The pruning curve of ``jetlab tagger prune``: test AUC and accuracy against the sparsity of
the weight matrices, one point per prune-and-retrain iteration, with the unpruned model's
values as horizontal lines (as in the hls4ml paper, arXiv:1804.06913, Fig. 7).
"""

from __future__ import annotations

import os

from jetlab.viz.style import pyplot, save_png, styled

__all__ = ["plot_prune_curve"]


@styled
def plot_prune_curve(curve: dict, path: str | os.PathLike):
    """Two panels from ``prune_curve.json``'s dict: mean and per-class AUC | accuracy, against
    sparsity (%); the dashed lines are the unpruned run, the band its mean AUC − tolerance."""
    plt = pyplot()
    base, points = curve["baseline"], curve["points"]
    x = [100 * p["sparsity"] for p in [base, *points]]
    fig, (ax_auc, ax_acc) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"wspace": 0.6})
    for name in base["auc"]:
        values = [p["auc"].get(name) for p in [base, *points]]
        if all(v is not None for v in values):
            ax_auc.plot(x, values, ".-", lw=0.8, alpha=0.6, label=f"AUC {name}")
    if base["mean_auc"] is not None:
        ax_auc.plot(x, [p["mean_auc"] for p in [base, *points]], "ko-", lw=2, label="mean AUC")
        ax_auc.axhline(base["mean_auc"], color="k", ls="--", lw=1, label="unpruned")
        ax_auc.axhspan(base["mean_auc"] - curve["auc_tolerance"], base["mean_auc"], color="0.85", zorder=0,
                       label=f"unpruned − {curve['auc_tolerance']}")
    ax_auc.set_ylabel("test AUC (one vs rest)")
    accuracies = [p["accuracy"] for p in [base, *points]]
    ax_acc.plot(x, accuracies, "o-", color="C3", label="pruned + retrained")
    ax_acc.axhline(base["accuracy"], color="k", ls="--", lw=1, label="unpruned")
    ax_acc.set_ylabel("test accuracy")
    middle, half = (max(accuracies) + min(accuracies)) / 2, max(max(accuracies) - min(accuracies), 0.04) / 2
    ax_acc.set_ylim(middle - 1.2 * half, middle + 1.2 * half)  # a few 0.001 must not look like a collapse
    for p, xi in zip(points, x[1:]):
        ax_acc.annotate(str(p["iteration"]), (xi, p["accuracy"]), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize="x-small")
    for ax in (ax_auc, ax_acc):
        ax.set_xlabel("sparsity of the weight matrices (% exact zeros)")
        ax.set_xlim(-2, 100)
        ax.grid(True, alpha=0.3)
    ax_auc.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax_acc.legend(fontsize="small", loc="best")
    settings = curve.get("settings", {})
    fig.suptitle(f"{curve['model']}: {settings.get('scope', '')} magnitude pruning, {settings.get('schedule', '')} "
                 f"schedule, {len(points)} iteration(s){', rewound' if settings.get('rewind') else ''}")
    save_png(fig, path, dpi=120, bbox_inches="tight")
    return fig
