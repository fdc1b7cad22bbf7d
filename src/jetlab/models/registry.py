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
``--model-code`` elsewhere); a run records the file's SHA-256 (:func:`model_code_record`) and
a file whose hash differs is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Iterable

from torch import nn

from jetlab.errors import InputError, JetlabError
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
from jetlab.models.vae import SetVAE

__all__ = ["ENTRY_POINT_GROUP", "MODELS", "TAGGERS", "ModelEntry", "check_model_name", "is_user_model",
           "model_code_record", "resolve_model", "short_name", "trusting"]

ENTRY_POINT_GROUP = "jetlab.models"
#: what every tagger supports (a user's tagger too); hls4ml export is the dnn's and cnn's alone
TAGGER_FEATURES = ("train", "strategies", "hpo", "evaluate", "compare", "export-onnx", "prune")
GENERATOR_FEATURES = ("train", "strategies", "hpo", "sample", "evaluate")
#: the constructor keywords jetlab passes, by task
SHAPE_KEYWORDS = {"classify": ("n_particles", "n_features", "n_classes"),
                  "generate": ("n_points", "n_features", "n_cond")}


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
        return _keyword_defaults(self.cls, SHAPE_KEYWORDS[self.task])

    def build(self, **arguments: Any) -> nn.Module:
        """The network, built from the shape keywords of its task and its hyperparameters.
        A user's model gets ``name``, ``input_keys``, ``hparams`` (the arguments, defaults
        included: what rebuilds it), and for taggers ``n_particles``, ``n_features`` and
        ``n_classes`` set on it."""
        if self.code is None:
            return self.cls(**arguments)
        from jetlab.models._mlp import check_hyperparameters

        shape = SHAPE_KEYWORDS[self.task]
        given = {k: v for k, v in arguments.items() if k not in shape}
        if not _takes_any_keyword(self.cls):
            check_hyperparameters(self.name, given, _keyword_defaults(self.cls, shape))
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
                         **_keyword_defaults(self.cls, shape), **given}
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
    _split_spec(name, word, task)


def short_name(name: str) -> str:
    """A label for file names and titles: the registry name, or a user model's class name."""
    return name if name in MODELS or ":" not in name else name.rpartition(":")[2]


def known_models(task: str | None = None) -> str:
    names = [n for n, e in MODELS.items() if task in (None, e.task)]
    return f"{', '.join(names)}, or FILE.py:Class / package.module:Class"


# --- what the user named on this command line ----------------------------------------------

_TRUSTED: list[str] = []  # files (resolved paths) and module names named on the command line
_LOADED: dict[tuple[str, str], ModelEntry] = {}  # (spec, sha256) -> entry, for this command


@contextlib.contextmanager
def trusting(locations: Iterable[str]):
    """Within the block, user models may be loaded from ``locations``: files (``FILE`` or
    ``FILE:Class``) and modules (``module:Class``) the user named on the command line."""
    before = list(_TRUSTED)
    _TRUSTED[:] = [_trusted_location(spec) for spec in locations if spec and spec not in MODELS]
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


def _split_spec(name: str, word: str = "model", task: str | None = None) -> tuple[str, str]:
    """``FILE.py:Class`` / ``module:Class`` -> (location, class name); an entry point's name
    is looked up first."""
    if ":" not in name:
        from importlib.metadata import entry_points

        found = entry_points(group=ENTRY_POINT_GROUP, name=name)
        if not found:
            raise JetlabError(f"unknown {word} {name!r}; known: {known_models(task)}")
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


def model_code_record(entry: ModelEntry) -> dict:
    """What a run keeps of a user's model: ``{"spec", "file", "class", "sha256", "task"}``
    (empty for a built-in model)."""
    return dict(entry.code) if entry.code else {}


def _refusal(spec: str, file: str, where: str | None) -> JetlabError:
    run = f"{where}: " if where else ""
    return JetlabError(f"{run}this run's model is defined in {spec}; pass --model-code {file} to load it — it runs "
                       "that file's code")


def resolve_model(name: str, code: dict | None = None, *, task: str | None = None,
                  where: str | None = None) -> ModelEntry:
    """The :class:`ModelEntry` of ``name``: a built-in model, or a user's model loaded from a
    file or module named on this command line (:func:`trusting`). ``code``: what a run
    recorded of it (:func:`model_code_record`): the file given now must have that SHA-256.
    ``task``: the task the caller trains (a model of the other task is refused); ``where``:
    the run, study or config that names the model, for the messages."""
    if name in MODELS:
        entry = MODELS[name]
    else:
        entry = _user_entry(name, code or {}, where, "tagger" if task == "classify" else "model", task)
    if task is not None and entry.task != task:
        command = "jetlab tagger train" if entry.task == "classify" else "jetlab fastsim train"
        raise JetlabError(f"{name} is a {'tagger' if entry.task == 'classify' else 'generator'}: train it with "
                          f"`{command}`; known here: {known_models(task)}")
    return entry


def _user_entry(name: str, code: dict, where: str | None, word: str, task: str | None) -> ModelEntry:
    location, cls_name = _split_spec(name, word, task)
    recorded = code.get("sha256")
    shown_file = code.get("file") or location
    if recorded:  # a recorded model: whichever named file has its hash
        for key, entry in _LOADED.items():
            if key[1] == recorded and entry.cls.__name__ == cls_name:
                return entry
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
    for key, entry in _LOADED.items():
        if key[0] == name:
            return entry
    if _location(location) not in _TRUSTED:
        raise _refusal(name, shown_file, where)
    return _load(name, _location(location), cls_name)


def _load(name: str, location: str, cls_name: str) -> ModelEntry:
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
    missing = [k for k in SHAPE_KEYWORDS[task] if not _takes_keyword(cls, k)]
    if missing:
        raise InputError(path, f"{cls_name}'s constructor must take keyword argument(s) {', '.join(missing)} "
                               f"(jetlab passes {', '.join(SHAPE_KEYWORDS[task])}; every other argument needs a "
                               "default)")
    required = [p.name for p in _parameters(cls) if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in SHAPE_KEYWORDS[task]]
    if required:
        raise InputError(path, f"{cls_name}'s constructor argument(s) {', '.join(required)} need a default "
                               "(jetlab passes only the data's shape and the --hp values)")
    features = TAGGER_FEATURES if task == "classify" else GENERATOR_FEATURES
    code = {"spec": name, "file": str(path), "class": cls_name, "sha256": digest, "task": task}
    entry = ModelEntry(name, task, cls, features, family="flow" if task == "generate" else None, code=code)
    _LOADED[(name, digest)] = entry
    return entry


def _parameters(cls) -> list[inspect.Parameter]:
    return list(inspect.signature(cls.__init__).parameters.values())[1:]


def _takes_any_keyword(cls) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in _parameters(cls))


def _takes_keyword(cls, name: str) -> bool:
    return _takes_any_keyword(cls) or any(p.name == name and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                                          for p in _parameters(cls))


def _keyword_defaults(cls, shape: tuple[str, ...]) -> dict[str, Any]:
    return {p.name: p.default for p in _parameters(cls)
            if p.default is not inspect.Parameter.empty and p.name not in shape
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
