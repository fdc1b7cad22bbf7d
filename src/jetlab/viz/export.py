"""Figures of exported taggers: the fixed-point precision scan (hls4ml paper, Duarte et al.,
arXiv:1804.06913: AUC per class against the bit width of ``ap_fixed<W,I>``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from jetlab.viz.style import pyplot, save_png

__all__ = ["plot_precision_scan"]


def plot_precision_scan(rows: Sequence[dict], floating: dict, class_names: Sequence[str],
                        path: str | os.PathLike, *, title: str = "") -> None:
    """Left: one-vs-rest AUC per class vs total width W (solid), the float model's AUC
    (dashed); right: accuracy vs W. ``rows`` as from :func:`jetlab.export.scan_precision`,
    ``floating`` a :func:`jetlab.export.report.metric_summary` of the float model."""
    plt = pyplot()
    widths = [r["width"] for r in rows]
    fig, (ax_auc, ax_acc) = plt.subplots(1, 2, figsize=(10, 4.2))
    for i, c in enumerate(class_names):
        color = f"C{i}"
        ax_auc.plot(widths, [r["auc"][c] for r in rows], "o-", color=color, label=c)
        if floating["auc"][c] is not None:
            ax_auc.axhline(floating["auc"][c], color=color, linestyle="--", linewidth=0.8)
    ax_acc.plot(widths, [r["accuracy"] for r in rows], "o-", color="k", label="fixed point")
    ax_acc.axhline(floating["accuracy"], color="k", linestyle="--", linewidth=0.8, label="float")
    integer = sorted({r["integer"] for r in rows})
    xlabel = f"total bits W of ap_fixed<W,{integer[0]}>" if len(integer) == 1 else "total bits W"
    for ax, ylabel in ((ax_auc, "AUC (one vs rest); dashed: float"), (ax_acc, "accuracy")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_xticks(widths)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
