"""One registry of every model jetlab trains: the built-in taggers and generators, and models
defined in a user's file (``--model path/to/file.py:ClassName``), an importable module
(``--model package.module:ClassName``) or an installed package's entry point (group
``jetlab.models``, ``--model NAME``).

Each :class:`ModelEntry` says the model's task (``"classify"``: a tagger, trained by
``jetlab tagger train``; ``"generate"``: a generator, trained by ``jetlab fastsim train``),
how to build it from its hyperparameters and the data's shape (:meth:`ModelEntry.build`), and
which jetlab features it supports (``features``).

The contract a user's class meets (docs/models.md, "Your own model"):

* a tagger: an ``nn.Module`` whose constructor takes keyword arguments ``n_particles``,
  ``n_features`` and ``n_classes`` (given by jetlab from the data) and its own
  hyperparameters, each with a default (``--hp KEY=VALUE``, an HPO space's ``hparams``);
  ``forward(particles (B, P, F), mask (B, P) bool) -> logits (B, n_classes)``. A class
  attribute ``input_keys`` may ask for other inputs (``("hlf",)``: (B, 16) high-level
  features; ``("image",)``; see :mod:`jetlab.io.jets`).
* a generator (class attribute ``task = "generate"``): the velocity network of a
  flow-matching generator, trained and sampled as jetlab's ``flow`` (its loss, ODE sampler,
  multiplicities and jet conditions): constructor keywords ``n_points``, ``n_features``,
  ``n_cond`` and its hyperparameters (``--hp flow.KEY=VALUE``);
  ``forward(x (B, P, F), t (B,), mask (B, P) bool, cond (B, n_cond) or None) -> (B, P, F)``.

Security: a run directory, a study database or a config file may *name* a user's model, but
loading it runs that file's code. So a user model is loaded only from a file or module the
user named on this command line (:func:`trusting`: ``--model`` of a training command,
``--model-code`` elsewhere; :mod:`jetlab.models.user_code`); a run records the file's SHA-256
(:func:`model_code_record`) and a file whose hash differs is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from torch import nn

from jetlab.errors import JetlabError
from jetlab.models._mlp import check_constructor_keywords, check_hyperparameters
from jetlab.models.cnn import CNNTagger
from jetlab.models.dnn import DNNTagger
from jetlab.models.flow import FlowGenerator
from jetlab.models.garnet import GarNetTagger
from jetlab.models.gru import GRUTagger
from jetlab.models.jedinet import JEDINet, JEDINetSumO
from jetlab.models.jedinet_linear import JEDINetLinear
from jetlab.models.mpgan import MPGenerator
from jetlab.models.part import ParticleTransformer, ParticleTransformerSmall
from jetlab.models.particlenet import ParticleNet, ParticleNetLite
from jetlab.models.user_code import SHAPE_KEYWORDS, keyword_defaults, load_user_class, split_spec, takes_any_keyword
from jetlab.models.user_code import trusting as _trusting
from jetlab.models.vae import SetVAE

__all__ = ["MODELS", "TAGGERS", "ModelEntry", "model_code_record", "resolve_model", "trusting"]

#: what every tagger supports (a user's tagger too); hls4ml export is the dnn's and cnn's alone
TAGGER_FEATURES = ("train", "strategies", "hpo", "evaluate", "compare", "export-onnx", "prune")
GENERATOR_FEATURES = ("train", "strategies", "hpo", "sample", "evaluate")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A model jetlab can train: ``name`` (registry name, or the user's ``FILE:Class``),
    ``task`` (classify / generate), ``cls`` (the network class), ``family`` (the training
    recipe of a generator: vae, gan or flow), ``features`` and, for a user's model, ``code``
    (:func:`model_code_record`)."""

    name: str
    task: str
    cls: type
    features: tuple[str, ...]
    family: str | None = None
    code: dict | None = None

    @property
    def input_keys(self) -> tuple[str, ...]:
        return tuple(getattr(self.cls, "input_keys", ("particles", "mask")))

    @property
    def particle_features(self):
        return getattr(self.cls, "particle_features", None)

    def default_hyperparameters(self, n_particles: int) -> dict[str, Any]:
        """Every tunable setting and its default (a user's class: its constructor's keywords)."""
        if self.code is None and hasattr(self.cls, "default_hyperparameters"):
            return self.cls.default_hyperparameters(n_particles)
        return keyword_defaults(self.cls, SHAPE_KEYWORDS[self.task])

    def build(self, **arguments: Any) -> nn.Module:
        """The network, built from the shape keywords of its task and its hyperparameters.
        A user's model gets ``name``, ``input_keys``, ``hparams`` (the arguments, defaults
        included: what rebuilds it), and for taggers ``n_particles``, ``n_features`` and
        ``n_classes`` set on it."""
        shape = SHAPE_KEYWORDS[self.task]
        given = {k: v for k, v in arguments.items() if k not in shape}
        if self.code is None:
            if self.task == "classify":
                check_constructor_keywords(self.name, self.cls, given)
            return self.cls(**arguments)
        if not takes_any_keyword(self.cls):
            check_hyperparameters(self.name, given, keyword_defaults(self.cls, shape))
        try:
            model = self.cls(**arguments)
        except Exception as exc:  # the user's code: any failure is theirs to see, in one line
            raise JetlabError(f"{self.code['file']}: {self.cls.__name__}(...) failed: {type(exc).__name__}: {exc}"
                              ) from None
        if not isinstance(model, nn.Module):
            raise JetlabError(f"{self.code['file']}: {self.cls.__name__}(...) did not return an nn.Module")
        model.name = self.name
        model.input_keys = self.input_keys
        model.hparams = {**{k: arguments[k] for k in shape if k in arguments},
                         **keyword_defaults(self.cls, shape), **given}
        if self.task == "classify":
            model.n_particles, model.n_features, model.n_classes = (int(arguments[k]) for k in shape)
        return model


#: registry name -> tagger class
TAGGERS: dict[str, type[nn.Module]] = {
    "jedinet": JEDINet,
    "jedinet-sumo": JEDINetSumO,
    "garnet": GarNetTagger,
    "dnn": DNNTagger,
    "cnn": CNNTagger,
    "gru": GRUTagger,
    "particlenet": ParticleNet,
    "particlenet-lite": ParticleNetLite,
    "part": ParticleTransformer,
    "part-small": ParticleTransformerSmall,
    "jedinet-linear": JEDINetLinear,
}

#: registry name -> :class:`ModelEntry` of every built-in model, taggers and generators
MODELS: dict[str, ModelEntry] = {
    **{name: ModelEntry(name, "classify", cls, TAGGER_FEATURES + (("export-hls4ml",) if name in ("dnn", "cnn") else ()))
       for name, cls in TAGGERS.items()},
    **{name: ModelEntry(name, "generate", cls, GENERATOR_FEATURES, family=name)
       for name, cls in (("vae", SetVAE), ("gan", MPGenerator), ("flow", FlowGenerator))},
}


def is_user_model(name: str) -> bool:
    """Whether ``name`` names a model outside jetlab (a ``FILE:Class`` / ``module:Class`` spec,
    or an entry point's name)."""
    return isinstance(name, str) and name not in MODELS


def check_model_name(name: str, code: dict | None, task: str) -> None:
    """A one-line error unless ``name`` could be a model of ``task``: a built-in one of that
    task or a user's spec (``FILE.py:Class``, ``module:Class``, an entry point's name). Imports
    nothing: whether the user's class exists is checked when it is loaded."""
    word = "tagger" if task == "classify" else "model"
    if not isinstance(name, str) or not name:
        raise JetlabError(f"unknown {word} {name!r}; known: {known_models(task)}")
    if name in MODELS:
        if MODELS[name].task != task:
            raise JetlabError(f"unknown {word} {name!r}; known: {known_models(task)}")
        return
    if code and code.get("task") not in (None, task):
        raise JetlabError(f"{name} is not a {word}; known: {known_models(task)}")
    split_spec(name, f"unknown {word} {name!r}; known: {known_models(task)}")


def short_name(name: str) -> str:
    """A label for file names and titles: the registry name, or a user model's class name."""
    return name if name in MODELS or ":" not in name else name.rpartition(":")[2]


def known_models(task: str | None = None) -> str:
    names = [n for n, e in MODELS.items() if task in (None, e.task)]
    return f"{', '.join(names)}, or FILE.py:Class / package.module:Class"


def model_code_record(entry: ModelEntry) -> dict:
    """What a run keeps of a user's model.

    Args:
        entry: the model's registry entry.

    Returns:
        ``{"spec", "file", "class", "sha256", "task"}``; empty for a built-in model.
    """
    return dict(entry.code) if entry.code else {}


def resolve_model(name: str, code: dict | None = None, *, task: str | None = None,
                  where: str | None = None) -> ModelEntry:
    """The registry entry of a built-in model, or of a user's model loaded from a file or
    module named on this command line (:func:`trusting`).

    Args:
        name: a registry name, ``FILE.py:Class``, ``module:Class`` or an entry point's name.
        code: what a run recorded of a user's model (:func:`model_code_record`): the file
            named now must have its SHA-256.
        task: the task the caller trains (``"classify"`` or ``"generate"``); a model of the
            other task is refused.
        where: the run, study or config that names the model, for the messages.

    Returns:
        The :class:`ModelEntry`.
    """
    if name in MODELS:
        entry = MODELS[name]
    else:
        word = "tagger" if task == "classify" else "model"
        cls, record = load_user_class(name, code or {}, where, f"unknown {word} {name!r}; known: {known_models(task)}")
        features = TAGGER_FEATURES if record["task"] == "classify" else GENERATOR_FEATURES
        entry = ModelEntry(name, record["task"], cls, features, family="flow" if record["task"] == "generate" else None,
                           code=record)
    if task is not None and entry.task != task:
        command = "jetlab tagger train" if entry.task == "classify" else "jetlab fastsim train"
        raise JetlabError(f"{name} is a {'tagger' if entry.task == 'classify' else 'generator'}: train it with "
                          f"`{command}`; known here: {known_models(task)}")
    return entry




def trusting(locations: Iterable[str]):
    """Within the block, user models may be loaded from ``locations`` (built-in names are
    skipped).

    Args:
        locations: the files (``FILE`` or ``FILE:Class``), modules (``module:Class``) and
            entry points the user named on the command line.

    Returns:
        A context manager (:func:`jetlab.models.user_code.trusting`).
    """
    return _trusting(spec for spec in locations if spec and spec not in MODELS)
