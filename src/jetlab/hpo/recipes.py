"""What a study needs to know of the two training recipes it runs trials of.

* **taggers** (``jetlab tagger train``, :func:`jetlab.training.tagger.train_tagger`):
  :class:`~jetlab.training.tagger_config.TaggerTrainConfig`; model hyperparameters are
  ``config.hparams`` (``--hp KEY=VALUE``); the pruner sees ``val_accuracy`` per epoch.
* **generators** (``jetlab fastsim train``, :func:`jetlab.training.generator.train_generator`):
  :class:`~jetlab.training.generator_config.GeneratorConfig`; network options are
  ``config.<net>_options`` (``--hp NET.KEY=VALUE``, NET one of vae, generator,
  discriminator, flow); the pruner sees ``val_w1m`` (W1 of the jet mass against validation jets).

:func:`apply_params` turns a trial's chosen values into the run's config;
:func:`train_command` writes the ``jetlab ... train`` command line that rebuilds a config.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

from jetlab.errors import JetlabError
from jetlab.training.generator_config import GeneratorConfig
from jetlab.training.settings import flag_of
from jetlab.training.tagger_config import TaggerTrainConfig

__all__ = ["GENERATOR_NETWORKS", "Recipe", "apply_params", "check_space", "recipe_for", "train_command"]

GENERATOR_NETWORKS = ("vae", "generator", "discriminator", "flow")


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str  # "tagger" or "generator"
    command: str  # the CLI command that trains one run
    intermediate: str  # the per-epoch validation number reported to the pruner
    intermediate_direction: str

    @property
    def config_class(self):
        return TaggerTrainConfig if self.name == "tagger" else GeneratorConfig

    def train(self, config, out, *, resume: bool = False, on_epoch=None):
        """Run the recipe (every rank of the trial's group calls this); rank 0 gets its result."""
        if self.name == "tagger":
            from jetlab.training.tagger import train_tagger  # lazy: start-up (torch)

            return train_tagger(config, out, resume=resume, on_epoch=on_epoch)
        from jetlab.training.generator import train_generator  # lazy: start-up (torch)

        return train_generator(config, out, resume=resume, on_epoch=on_epoch)


TAGGER = Recipe("tagger", "jetlab tagger train", "val_accuracy", "maximize")
GENERATOR = Recipe("generator", "jetlab fastsim train", "val_w1m", "minimize")


def recipe_for(model: str, code: dict | None = None) -> Recipe:
    """The recipe that trains ``model``: a tagger or a generator of the registry, or a user's
    model (its task from ``code``, what a run or study recorded of it, else from its class,
    which must then be named on the command line)."""
    from jetlab.models.registry import MODELS, resolve_model  # lazy: start-up (torch)

    if model in MODELS:
        task = MODELS[model].task
    elif code and code.get("task"):
        task = code["task"]
    else:
        task = resolve_model(model).task
    return TAGGER if task == "classify" else GENERATOR


def _hparam_field(recipe: Recipe, key: str) -> tuple[str, str]:
    """``key`` of a space's hparams -> (config field, key inside it)."""
    if recipe.name == "tagger":
        return "hparams", key
    network, dot, name = key.partition(".")
    if not dot or network not in GENERATOR_NETWORKS or not name:
        raise JetlabError(f"hparams.{key}: a generator's network option is NET.KEY with NET one of "
                          f"{', '.join(GENERATOR_NETWORKS)}")
    return f"{network}_options", name


def check_space(space, recipe: Recipe, model: str, particles: int, code: dict | None = None) -> None:
    """Refuse a space that names settings the recipe lacks or hyperparameters the model lacks."""
    fields = {f.name for f in dataclasses.fields(recipe.config_class)}
    for p in space.section("settings"):
        if p.key in ("model", "hparams") or p.key.endswith("_options") or p.key not in fields:
            known = sorted(f for f in fields if f not in ("model", "hparams") and not f.endswith("_options"))
            raise JetlabError(f"{space.source}: settings.{p.key} is not a {recipe.name} setting that can be tuned; "
                              f"known: {', '.join(known)}")
        if recipe.name == "generator" and model == "gan" and p.key == "lr":
            raise JetlabError(f"{space.source}: settings.lr: a GAN trains with lr_g and lr_d; tune those instead")
    for p in space.section("hparams"):
        _hparam_field(recipe, p.key)
        if recipe.name == "tagger":
            from jetlab.models.registry import resolve_model  # lazy: start-up (torch)

            defaults = resolve_model(model, code, task="classify").default_hyperparameters(particles)
            if p.key not in defaults:
                raise JetlabError(f"{space.source}: hparams.{p.key} is not a {model} hyperparameter; "
                                  f"known: {', '.join(defaults)}")


def apply_params(config, recipe: Recipe, chosen: dict[str, dict[str, Any]]):
    """A copy of ``config`` with a trial's ``{"settings": ..., "hparams": ...}`` applied, validated.

    Under ``--strategy gem`` a searched ``lr`` is GEM's step size (``gem_lr``): GEM ignores ``lr``."""
    settings = dict(chosen.get("settings", {}))
    if getattr(config, "strategy", None) == "gem" and "lr" in settings and "gem_lr" not in settings:
        settings["gem_lr"] = settings.pop("lr")
    config = dataclasses.replace(config, **settings)
    for key, value in chosen.get("hparams", {}).items():
        field, name = _hparam_field(recipe, key)
        setattr(config, field, {**getattr(config, field), name: value})
    if recipe.name == "generator" and config.model == "gan" and "lr" in chosen.get("settings", {}):
        raise JetlabError("a GAN trains with lr_g and lr_d: tune those instead of lr")
    config.validate("trial")
    return config


def train_command(config, recipe: Recipe, out: str) -> str:
    """The ``jetlab ... train`` command line that trains ``config`` into ``out``: a flag for
    every setting that differs from the recipe's default (``--hp`` for model options)."""
    default = recipe.config_class()
    words = recipe.command.split() + ["--out", out]
    first = ("model", "data")
    for field in sorted(dataclasses.fields(config), key=lambda f: f.name not in first):
        value, base = getattr(config, field.name), getattr(default, field.name)
        if (value == base and field.name != "model") or field.name == "model_code":  # the model is always named
            continue
        if field.name == "hparams" or field.name.endswith("_options"):
            prefix = "" if field.name == "hparams" else field.name.removesuffix("_options") + "."
            words += [w for key, v in value.items() if base.get(key) != v for w in ("--hp", f"{prefix}{key}={_yaml(v)}")]
        elif field.metadata.get("help"):
            flag = flag_of(type(config), field.name)
            if isinstance(value, bool):
                words.append(flag if value else "--no-" + flag.removeprefix("--"))
            else:
                words += [flag, str(value)]
        else:
            raise JetlabError(f"{field.name}={value!r} has no flag; train with --config instead")
    return shlex.join(words)


def _yaml(value: Any) -> str:
    """A value as ``--hp`` reads it back (YAML, flow style)."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
