"""Dataclass configs that load from YAML and reject unknown keys.

Every run writes its full config as ``config.yaml``; ``--config FILE.yaml`` loads one
back. A key the dataclass does not know is an error naming the file and the key
(the idea of EnergyFlow's ``_verify_empty_hps``): a typo must not be silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, TypeVar

from jetlab.errors import InputError, JetlabError
from jetlab.utils.atomic import atomic_write_text

__all__ = ["config_from_dict", "load_config", "save_config"]

T = TypeVar("T")


def config_from_dict(cls: type[T], values: dict[str, Any], *, source: str = "config") -> T:
    """Build dataclass ``cls`` from ``values``; unknown keys raise :class:`JetlabError`."""
    if not isinstance(values, dict):
        raise JetlabError(f"{source}: expected a mapping of settings, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise JetlabError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**values)


def load_config(cls: type[T], path: str | os.PathLike) -> T:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such config file")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    return config_from_dict(cls, values, source=str(path))


def save_config(config: Any, path: str | os.PathLike) -> None:
    import yaml

    atomic_write_text(path, yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
