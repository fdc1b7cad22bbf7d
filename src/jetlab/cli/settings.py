"""One CLI scheme for every training command: flags made from the config dataclass, a YAML
``--config``, ``--hp KEY=VALUE`` model options, and ``--resume``.

Precedence: the dataclass defaults, then ``--config FILE.yaml`` (with ``--resume``: the run's
own ``RUN/config.yaml``), then the flags given. A resumed run keeps its settings: a flag that
changes a setting not marked resumable (the data, the split, the model, the learning rate,
...) is a one-line error, so a run never silently continues on other data or another split.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from jetlab.errors import InputError, JetlabError
from jetlab.utils.config import load_config

__all__ = ["add_model_code_flag", "add_settings_flags", "build_config", "parse_hyperparameters", "positive_int"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _typed(kind, flag: str):
    """argparse ``type=``: parse, and say which flag a bad value belongs to."""
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} expects {kind.__name__}, got {text!r}") from None
    parse.__name__ = kind.__name__
    return parse


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts and sizes: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_settings_flags(parser: argparse.ArgumentParser, cls) -> None:
    """One ``--flag`` per field of dataclass ``cls`` declared with a help text
    (:func:`jetlab.training.settings.setting`); flags default to None (= not given)."""
    for field in dataclasses.fields(cls):
        meta = field.metadata
        if not meta.get("help"):
            continue
        default = field.default if field.default is not dataclasses.MISSING else None
        kind = meta.get("type") or type(default)
        shown = "unset" if default is None else default
        # a help text that explains its own default is not followed by a second one
        text = meta["help"] if "default" in meta["help"] else f"{meta['help']} (default: {shown})"
        kwargs: dict[str, Any] = {"dest": field.name, "default": None, "help": text}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _typed(kind, _flag(field.name))
            if meta.get("choices"):
                kwargs["choices"] = meta["choices"]
            if meta.get("metavar"):
                kwargs["metavar"] = meta["metavar"]
        parser.add_argument(_flag(field.name), **kwargs)


def add_model_code_flag(parser) -> None:
    """``--model-code FILE``: the file (or ``package.module``) defining the user's model of the
    run(s) this command loads. A run only records which file its model came from; jetlab
    imports it only when it is named again here, and only with the recorded SHA-256."""
    parser.add_argument("--model-code", action="append", default=[], metavar="FILE", dest="named_model_code",
                        help="the .py file (or package.module) defining the run's own model (`--model FILE:Class` "
                             "when trained); it runs that file's code; repeatable")


def parse_hyperparameters(items: list[str]) -> dict:
    """``["hidden=30", "activation=elu"]`` -> ``{"hidden": 30, "activation": "elu"}`` (YAML values)."""
    import yaml

    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise JetlabError(f"--hp {item!r}: expected KEY=VALUE")
        try:
            values[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise JetlabError(f"--hp {item!r}: value is not valid YAML") from None
    return values


def build_config(cls, args: argparse.Namespace, *, out, resume: bool, overrides: dict | None = None):
    """The run's config (module docstring). ``overrides`` are further settings the caller
    derived from its own options (e.g. ``hparams`` from ``--hp``)."""
    from jetlab.training.run_dir import CONFIG_NAME  # lazy: start-up (torch)

    fields = {f.name: f for f in dataclasses.fields(cls)}
    given = {name: getattr(args, name) for name in fields if getattr(args, name, None) is not None}
    given.update(overrides or {})
    if resume:
        if getattr(args, "config", None):
            raise JetlabError("--config and --resume: a resumed run keeps the settings in its own config.yaml")
        if not Path(out).is_dir():
            raise InputError(out, "no such run directory to resume")
        saved = Path(out) / CONFIG_NAME
        if not saved.is_file():
            raise InputError(out, f"holds no training run to resume (no {CONFIG_NAME}); drop --resume to start one")
        config = load_config(cls, saved)
        for name, value in given.items():
            if value == getattr(config, name):
                continue
            if not fields[name].metadata.get("resumable"):
                changeable = ", ".join(_flag(n) for n, f in fields.items() if f.metadata.get("resumable"))
                option = _flag(name) if fields[name].metadata.get("help") else "--hp"
                raise JetlabError(f"{out}: was trained with {name}={getattr(config, name)!r}; --resume continues it "
                                  f"with its own settings (only {changeable} may change): drop {option} or "
                                  "use a new --out")
            setattr(config, name, value)
        source = str(saved)
    else:
        config = load_config(cls, args.config) if getattr(args, "config", None) else cls()
        config = dataclasses.replace(config, **given)
        source = getattr(args, "config", None) or "options"
    config.validate(source)
    return config
