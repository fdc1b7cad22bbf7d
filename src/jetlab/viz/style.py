"""Matplotlib without a screen, one HEP look for every figure, and PNG files written atomically.

Every plot jetlab writes (ROC and training curves, data histograms, generated samples) is
drawn inside :func:`hep_style` -- the experiment-neutral ``ROOT`` style of ``mplhep``
(ticks inside on all four sides, minor ticks, axis labels at the ends of the axes, TeX Gyre
Heros font), scaled down to the few-inch figures jetlab draws -- and written with
:func:`save_png`, so an interrupted run never leaves half a PNG. The style is applied with
``matplotlib.rc_context``: drawing a jetlab figure never changes the caller's own
matplotlib settings.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

from jetlab.utils.atomic import atomic_path

__all__ = ["OVERFLOW_NOTE", "hep_style", "note_overflow", "pyplot", "save_png", "styled", "with_overflow"]

F = TypeVar("F", bound=Callable)

#: font size (points) of jetlab's figures: mplhep's 26 pt are meant for 10 x 10 inch figures
FONT_SIZE = 10.0


#: said on every histogram whose edge bins hold what falls outside the drawn range
OVERFLOW_NOTE = "edge bins include under/overflow"


def with_overflow(values, bins):
    """``values`` clipped into the first and last of ``bins`` (edges), so a histogram counts
    every entry: what lies outside the drawn range lands in the edge bins instead of
    vanishing (normalised histograms would otherwise hide the loss)."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    return np.clip(values, bins[0], np.nextafter(bins[-1], -np.inf))


def note_overflow(ax) -> None:
    """Say on ``ax`` that its edge bins include the under/overflow."""
    ax.text(0.99, 0.01, OVERFLOW_NOTE, transform=ax.transAxes, ha="right", va="bottom", fontsize="x-small",
            color="0.4")


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


@functools.cache
def _rc() -> dict:
    """mplhep's ROOT style with sizes scaled from its 10-inch, 26-pt figures to ours."""
    import mplhep

    scale = FONT_SIZE / 26.0
    rc = {k: v for k, v in mplhep.style.ROOT.items() if k != "figure.figsize"}
    rc["font.size"] = FONT_SIZE
    for key in ("axes.linewidth",):
        rc[key] = rc[key] * scale * 1.5
    for axis in ("xtick", "ytick"):
        for which in ("major", "minor"):
            size_key = f"{axis}.{which}.size"
            if size_key in rc:
                rc[size_key] = float(rc[size_key]) * scale
        rc[f"{axis}.major.pad"] = 3
    rc["legend.frameon"] = False
    rc["lines.linewidth"] = 1.5
    rc["figure.dpi"] = 100
    return rc


@contextlib.contextmanager
def hep_style() -> Iterator[None]:
    """Draw inside this context to get jetlab's figure style (caller's rcParams restored after)."""
    import matplotlib

    pyplot()
    with matplotlib.rc_context(_rc()):
        yield


def styled(function: F) -> F:
    """Decorator: run a plotting function inside :func:`hep_style`."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with hep_style():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def save_png(fig, path: str | os.PathLike, *, dpi: int, **savefig_kwargs) -> None:
    """Write ``fig`` to ``path`` as PNG (temporary name, then rename) and close it.

    The closed figure can still be inspected (its axes, limits and labels), which the
    plotting functions use to return it to tests and notebooks.
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, **savefig_kwargs)
    pyplot().close(fig)
