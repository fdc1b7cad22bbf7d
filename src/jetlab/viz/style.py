"""Matplotlib without a screen, and PNG files written atomically.

Every plot jetlab writes (ROC curves, training curves, data histograms, generated
samples) goes through :func:`save_png`, so an interrupted run never leaves half a PNG.
"""

from __future__ import annotations

import os

from jetlab.utils.atomic import atomic_path

__all__ = ["pyplot", "save_png"]


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | os.PathLike, *, dpi: int, **savefig_kwargs) -> None:
    """Write ``fig`` to ``path`` as PNG (temporary name, then rename) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, **savefig_kwargs)
    pyplot().close(fig)
