"""Loading a user's model class — only from a file or module named on this command line.

Loading a model from a file runs that file's code, and run directories, study databases and
config files are shared. So :func:`trusting` holds the files (``FILE.py[:Class]``) and
modules (``package.module[:Class]``) that the user named on the command line (``--model`` of
a training command, ``--model-code`` elsewhere), and :func:`load_user_class` loads a class only
from one of them: a new spec only from the very file named, a recorded one (``code``, with the
file's SHA-256) only from a named file with that hash. Everything else is a one-line refusal
that says which file to name. The registry (:mod:`jetlab.models.registry`) wraps the class in
its :class:`~jetlab.models.registry.ModelEntry`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn

from jetlab.errors import InputError, JetlabError

__all__ = ["load_user_class", "trusting"]

ENTRY_POINT_GROUP = "jetlab.models"
#: the constructor keywords jetlab passes, by task
SHAPE_KEYWORDS = {"classify": ("n_particles", "n_features", "n_classes"),
                  "generate": ("n_points", "n_features", "n_cond")}

_TRUSTED: list[str] = []  # files (resolved paths) and module names named on the command line
_LOADED: dict[tuple[str, str], tuple[type, dict]] = {}  # (spec, sha256) -> (class, record), this command


@contextlib.contextmanager
def trusting(locations: Iterable[str]):
    """Within the block, user models may be loaded from ``locations``.

    Args:
        locations: what the user named on the command line: files (``FILE`` or
            ``FILE:Class``), modules (``module:Class``) and entry points' names.

    Returns:
        A context manager; leaving it forgets the locations and the classes loaded.
    """
    before = list(_TRUSTED)
    _TRUSTED[:] = [_trusted_location(spec) for spec in locations if spec]
    try:
        yield
    finally:
        _TRUSTED[:] = before
        _LOADED.clear()


def _location(spec: str) -> str:
    """``FILE[:Class]`` -> the file's resolved path; ``module:Class`` -> the module's name."""
    where = spec.rsplit(":", 1)[0] if ":" in spec and not _is_windows_drive(spec) else spec
    if _names_file(where):
        return str(Path(where).expanduser().resolve())
    return where


def _trusted_location(spec: str) -> str:
    """What ``--model`` / ``--model-code`` names: a file, a module, or an entry point's module."""
    if ":" in spec or _names_file(spec):
        return _location(spec)
    from importlib.metadata import entry_points

    found = entry_points(group=ENTRY_POINT_GROUP, name=spec)
    return next(iter(found)).value.rpartition(":")[0] if found else spec


def _is_windows_drive(spec: str) -> bool:
    return len(spec) > 1 and spec[1] == ":" and spec.count(":") == 1


def _names_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def split_spec(name: str, unknown: str) -> tuple[str, str]:
    """``FILE.py:Class`` / ``module:Class`` -> (location, class name); an entry point's name
    is looked up first (``unknown``: the message when there is none)."""
    if ":" not in name:
        from importlib.metadata import entry_points

        found = entry_points(group=ENTRY_POINT_GROUP, name=name)
        if not found:
            raise JetlabError(unknown)
        name = next(iter(found)).value
    where, _, cls_name = name.rpartition(":")
    if not where or not cls_name.isidentifier():
        raise JetlabError(f"--model {name!r}: expected FILE.py:ClassName or package.module:ClassName")
    return where, cls_name


def _file_of(where: str) -> Path:
    """The file whose code ``where`` (a path or a module name) is."""
    if _names_file(where):
        return Path(where).expanduser().resolve()
    try:
        spec = importlib.util.find_spec(where)
    except (ImportError, ValueError) as exc:
        raise JetlabError(f"{where}: cannot find this module ({exc})") from None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise JetlabError(f"{where}: no such module (is its package installed?)")
    return Path(spec.origin)


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except OSError as exc:
        raise InputError(path, f"cannot read it ({exc.strerror or exc})") from None


def _refusal(spec: str, file: str, where: str | None) -> JetlabError:
    run = f"{where}: " if where else ""
    return JetlabError(f"{run}this run's model is defined in {spec}; pass --model-code {file} to load it — it runs "
                       "that file's code")


def load_user_class(name: str, code: dict, where: str | None, unknown: str) -> tuple[type, dict]:
    """The class of the user's model ``name``, from a file or module named on this command line
    (:func:`trusting`); one-line errors otherwise (module docstring).

    Args:
        name: ``FILE.py:Class``, ``module:Class`` or an entry point's name.
        code: what a run recorded of the model (its ``sha256`` must match the file named),
            or ``{}`` for a model named afresh.
        where: the run, study or config naming the model, for the messages.
        unknown: the message for a name that is neither a spec nor an entry point.

    Returns:
        ``(class, record)``, the record ``{"spec", "file", "class", "sha256", "task"}``.
    """
    location, cls_name = split_spec(name, unknown)
    recorded = code.get("sha256")
    shown_file = code.get("file") or location
    if recorded:  # a recorded model: whichever named file has its hash
        for key, loaded in _LOADED.items():
            if key[1] == recorded and loaded[0].__name__ == cls_name:
                return loaded
        if not _TRUSTED:
            raise _refusal(name, shown_file, where)
        hashes = {t: _sha256(_file_of(t)) for t in _TRUSTED}
        match = next((t for t, h in hashes.items() if h == recorded), None)
        if match is None:
            given = ", ".join(f"{_file_of(t)} has {h[:12]}…" for t, h in hashes.items())
            raise JetlabError(f"{where + ': ' if where else ''}this run's model {name} was trained with a file of "
                              f"SHA-256 {recorded[:12]}…; {given}: pass --model-code with the file it was trained "
                              "with (or retrain)")
        return _load(name, match, cls_name)
    for key, loaded in _LOADED.items():
        if key[0] == name:
            return loaded
    if _location(location) not in _TRUSTED:
        raise _refusal(name, shown_file, where)
    return _load(name, _location(location), cls_name)


def _load(name: str, location: str, cls_name: str) -> tuple[type, dict]:
    """Import ``location`` (a trusted file or module) and check its class ``cls_name``."""
    path = _file_of(location)
    if not path.is_file():
        raise InputError(path, "no such file (the model's code, named by --model or --model-code)")
    digest = _sha256(path)
    module_name = f"jetlab_user_model_{digest[:16]}"
    try:
        if _names_file(location):
            module = sys.modules.get(module_name)
            if module is None:
                spec = importlib.util.spec_from_file_location(module_name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module  # dataclasses and pickling look the module up
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[module_name]
                    raise
        else:
            module = importlib.import_module(location)
    except Exception as exc:  # the user's code: report its failure in one line
        raise InputError(path, f"running it failed: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise InputError(path, f"defines no {cls_name}")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise InputError(path, f"{cls_name} is not a torch.nn.Module subclass")
    task = getattr(cls, "task", "classify")
    if task not in SHAPE_KEYWORDS:
        raise InputError(path, f"{cls_name}.task must be 'classify' or 'generate', got {task!r}")
    missing = [k for k in SHAPE_KEYWORDS[task] if not takes_keyword(cls, k)]
    if missing:
        raise InputError(path, f"{cls_name}'s constructor must take keyword argument(s) {', '.join(missing)} "
                               f"(jetlab passes {', '.join(SHAPE_KEYWORDS[task])}; every other argument needs a "
                               "default)")
    required = [p.name for p in parameters(cls) if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in SHAPE_KEYWORDS[task]]
    if required:
        raise InputError(path, f"{cls_name}'s constructor argument(s) {', '.join(required)} need a default "
                               "(jetlab passes only the data's shape and the --hp values)")
    code = {"spec": name, "file": str(path), "class": cls_name, "sha256": digest, "task": task}
    _LOADED[(name, digest)] = (cls, code)
    return cls, code


def parameters(cls) -> list[inspect.Parameter]:
    return list(inspect.signature(cls.__init__).parameters.values())[1:]


def takes_any_keyword(cls) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in parameters(cls))


def takes_keyword(cls, name: str) -> bool:
    return takes_any_keyword(cls) or any(p.name == name and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                                          for p in parameters(cls))


def keyword_defaults(cls, shape: tuple[str, ...]) -> dict[str, Any]:
    return {p.name: p.default for p in parameters(cls)
            if p.default is not inspect.Parameter.empty and p.name not in shape
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
