"""Where jetlab keeps generated default data: ``$JETLAB_CACHE`` or ``~/.cache/jetlab``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> Path:
    root = os.environ.get("JETLAB_CACHE")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) / "jetlab" if xdg else Path.home() / ".cache" / "jetlab"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
