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

__all__ = ["RENAMED", "add_deprecated_alias", "add_deprecated_aliases", "add_model_code_flag", "add_settings_flags",
           "build_config", "given_flags", "parse_hyperparameters", "positive_int", "refuse_unused"]


def _flag(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


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


def add_settings_flags(parser: argparse.ArgumentParser, cls, *, names=None, shown=None) -> None:
    """One ``--flag`` per field of dataclass ``cls`` declared with a help text
    (:func:`jetlab.training.settings.setting`); flags default to None (= not given). ``names``:
    only these fields; ``shown(field)``: the default to print, where not the field's."""
    for field in dataclasses.fields(cls):
        meta = field.metadata
        if not meta.get("help") or (names is not None and field.name not in names):
            continue
        default = field.default if field.default is not dataclasses.MISSING else None
        kind = meta.get("type") or type(default)
        value = shown(field) if shown else None
        value = value if value is not None else "unset" if default is None else default
        # a help text that explains its own default is not followed by a second one
        text = meta["help"] if "default:" in meta["help"] else f"{meta['help']} (default: {value})"
        if meta.get("flag"):  # where the flag is not the setting's name, say the name --config files use
            text += f"; in a config file: {field.name}"
        kwargs: dict[str, Any] = {"dest": field.name, "default": None, "help": text}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _typed(kind, _flag(field))
            if meta.get("choices"):
                kwargs["choices"] = meta["choices"]
            if meta.get("metavar"):
                kwargs["metavar"] = meta["metavar"]
        parser.add_argument(_flag(field), **kwargs)


#: former spellings of flags that every command with the new flag still accepts (hidden)
RENAMED = {"--stop-after-epoch": "--stop-after", "--num-workers": "--workers", "--max-train": "--limit",
           "--timeout-min": "--study-time-limit-min"}


def add_deprecated_aliases(parser, renamed: dict[str, str] | None = None) -> None:
    """:func:`add_deprecated_alias` for each pair of :data:`RENAMED` and ``renamed`` whose new
    flag ``parser`` has."""
    for old, new in {**RENAMED, **(renamed or {})}.items():
        if new in parser._option_string_actions and old not in parser._option_string_actions:
            add_deprecated_alias(parser, old, new)


def add_deprecated_alias(parser, old: str, new: str) -> None:
    """Accept ``old``, the former spelling of flag ``new`` (already added to ``parser``), for
    the scripts that use it: hidden from ``--help``, it prints one line naming ``new`` and then
    does what ``new`` does."""
    target = parser._option_string_actions[new]

    class Deprecated(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            import sys

            print(f"jetlab: note: {old} is deprecated, use {new} (same meaning)", file=sys.stderr)
            target(parser, namespace, values, new)

    parser.add_argument(old, dest=target.dest, nargs=target.nargs, const=target.const, type=target.type,
                        choices=target.choices, metavar=target.metavar, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS, action=Deprecated)


def refuse_unused(config, args: argparse.Namespace, why=None) -> None:
    """A flag given that ``config`` would not use (``why(name)``, default its ``ignores``:
    another model's setting, --momentum under Adam, ...) is a one-line error naming the flag,
    what it applies to and what to use instead; defaults and settings from a --config file
    are never refused."""
    why = why or config.ignores
    for name, flag in given_flags(type(config), args).items():
        reason = why(name)
        if reason:
            raise JetlabError(f"{flag} {reason}; drop it")


def given_flags(cls, args: argparse.Namespace) -> dict[str, str]:
    """{setting name: its flag} of the fields of ``cls`` given on the command line (not None)."""
    return {f.name: _flag(f) for f in dataclasses.fields(cls)
            if f.metadata.get("help") and getattr(args, f.name, None) is not None}


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
                changeable = ", ".join(_flag(f) for f in fields.values() if f.metadata.get("resumable"))
                option = _flag(fields[name]) if fields[name].metadata.get("help") else "--hp"
                raise JetlabError(f"{out}: was trained with {name}={getattr(config, name)!r}; --resume continues it "
                                  f"with its own settings (only {changeable} may change): drop {option} or "
                                  "use a new --out")
            setattr(config, name, value)
        source = str(saved)
    else:
        config = load_config(cls, args.config) if getattr(args, "config", None) else cls()
        config = dataclasses.replace(config, **given)
        source = getattr(args, "config", None) or "options"
    if hasattr(config, "ignores"):
        refuse_unused(config, args)
    config.validate(source)
    return config
