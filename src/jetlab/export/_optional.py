"""Lazy imports of the optional ``export`` extra (onnx, onnxscript, onnxruntime, hls4ml)."""

from __future__ import annotations

import importlib
from types import ModuleType

from jetlab.errors import JetlabError

__all__ = ["import_optional"]

INSTALL_HINT = 'pip install -e ".[export]"'


def import_optional(name: str, purpose: str) -> ModuleType:
    """``import name``, or a one-line :class:`JetlabError` naming the extra that provides it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing = exc.name or name
        raise JetlabError(f"{purpose} needs {missing}, which is not installed: {INSTALL_HINT}") from None
