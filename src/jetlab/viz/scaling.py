"""The classic speed-up plot of distributed training: measured on this machine (left) and
predicted by :mod:`jetlab.distributed.scaling` for a stated network (right)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from jetlab.viz.style import pyplot, save_png

__all__ = ["plot_scaling"]

_STYLE = {"allreduce": ("tab:blue", "o"), "downpour": ("tab:orange", "s"), "easgd": ("tab:green", "^"),
          "gem": ("tab:red", "D")}


def plot_scaling(measured: Mapping[str, Mapping[int, float]], predicted: Mapping[str, Mapping[int, float]],
                 path: str | os.PathLike, *, measured_label: str = "speed-up", measured_dashed=None,
                 dashed_label: str = "throughput", predicted_sqrt=None, title: str = "", network: str = "") -> None:
    """``measured[algorithm][ranks]`` (solid; a missing K: not measured or target not reached)
    and ``measured_dashed`` (e.g. throughput) speed-ups on the left, ``predicted[algorithm][workers]``
    (dashed: ``predicted_sqrt``, the asynchronous algorithms under √N sub-masters) on the
    right, each beside the ideal line."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    top = max([2] + [k for values in [*measured.values(), *(measured_dashed or {}).values()] for k in values])
    left.plot([1, top], [1, top], color="0.6", ls=":", label="ideal")
    for algorithm, values in measured.items():
        color, marker = _STYLE.get(algorithm, ("k", "x"))
        ranks = sorted(values)
        left.plot(ranks, [values[k] for k in ranks], color=color, marker=marker, label=algorithm)
    for algorithm, values in (measured_dashed or {}).items():
        color, marker = _STYLE.get(algorithm, ("k", "x"))
        ranks = sorted(values)
        left.plot(ranks, [values[k] for k in ranks], color=color, marker=marker, ls="--", lw=1, mfc="none",
                  label=f"{algorithm}, {dashed_label}")
    left.set_xlabel("MPI ranks on this machine (async: master + workers)")
    left.set_ylabel(measured_label)
    left.set_title("measured")
    left.legend(fontsize=7, ncol=2)
    left.grid(alpha=0.3)

    workers = sorted({n for values in predicted.values() for n in values})
    right.plot(workers, workers, color="0.6", ls=":", label="ideal")
    for algorithm, values in predicted.items():
        color, marker = _STYLE.get(algorithm, ("k", "x"))
        right.plot(workers, [values[n] for n in workers], color=color, marker=marker, label=algorithm)
        if predicted_sqrt and algorithm in predicted_sqrt:
            right.plot(workers, [predicted_sqrt[algorithm][n] for n in workers], color=color, ls="--", lw=1,
                       label=f"{algorithm}, √N sub-masters")
    right.set_xscale("log", base=2)
    right.set_yscale("log", base=2)
    right.set_xlabel("workers")
    right.set_ylabel("predicted throughput speed-up")
    right.set_title(f"model{': ' + network if network else ''}")
    right.legend(fontsize=7)
    right.grid(alpha=0.3, which="both")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
