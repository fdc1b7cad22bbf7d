"""Dataclass configs that load from YAML and reject unknown keys; reading a user's YAML or
JSON file with one-line errors (:func:`read_yaml`, :func:`read_json`).

Every run writes its full config as ``config.yaml``; ``--config FILE.yaml`` loads one
back. A key the dataclass does not know is an error naming the file and the key
(the idea of EnergyFlow's ``_verify_empty_hps``): a typo must not be silently ignored.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, TypeVar

from jetlab.errors import InputError, JetlabError
from jetlab.utils.atomic import atomic_write_text

__all__ = ["config_from_dict", "load_config", "read_json", "read_yaml", "save_config"]

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


def read_yaml(path: str | os.PathLike, *, what: str) -> Any:
    """The contents of the YAML file ``path``; :class:`InputError` "no such <what>" when it is
    missing, "not valid YAML (...)" when it does not parse."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"no such {what}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None


def read_json(path: str | os.PathLike) -> Any:
    """The contents of the JSON file ``path``; :class:`InputError` when it does not parse (a
    missing file raises ``FileNotFoundError``, for the caller to explain)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc.msg})") from None


def load_config(cls: type[T], path: str | os.PathLike) -> T:
    values = read_yaml(path, what="config file") or {}
    return config_from_dict(cls, values, source=str(path))


def save_config(config: Any, path: str | os.PathLike) -> None:
    import yaml

    atomic_write_text(path, yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
