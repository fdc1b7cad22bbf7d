"""Progress bars with rate and ETA (tqdm), silenced on non-zero ranks and when asked."""

from __future__ import annotations

import os
import sys

__all__ = ["progress"]


def progress(iterable=None, *, total=None, desc: str = "", unit: str = "it", disable: bool | None = None, **kw):
    """A tqdm bar showing ``rate unit/s`` and ETA.

    Disabled on distributed ranks other than 0 and when ``JETLAB_NO_PROGRESS=1``.
    """
    from tqdm.auto import tqdm

    if disable is None:
        rank = int(os.environ.get("RANK", os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))))
        disable = rank != 0 or os.environ.get("JETLAB_NO_PROGRESS") == "1"
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=disable,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
        **kw,
    )
