"""Training settings shared by every recipe (taggers and generators), written once.

A recipe's config dataclass (e.g. :class:`jetlab.training.tagger_config.TaggerTrainConfig`) derives
from :class:`TrainSettings` and adds its own fields. Each field is declared with
:func:`setting`, which stores the help text, the flag type and whether ``--resume`` may
change it; the CLI (``jetlab.cli.settings``) builds one ``--flag`` per field from that,
so every default is written exactly once, here or in the recipe's dataclass.

The optimizers and learning-rate schedules these settings name are built in
:mod:`jetlab.training.optimizers`. This module loads no torch: the ``jetlab`` command builds
its parsers from the config dataclasses without it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jetlab.choices import ASYNC_STRATEGIES, SYNC_STRATEGIES
from jetlab.errors import JetlabError

__all__ = ["ASYNC_NAMES", "GEM_LR", "OPTIMIZERS", "SCHEDULES", "STRATEGY_NAMES", "TrainSettings", "flag_of", "setting",
           "strategy_settings", "validate_settings"]

SCHEDULES = ("plateau", "cosine", "none")
OPTIMIZERS = ("adam", "adadelta", "sgd")
STRATEGY_NAMES = ("auto", *SYNC_STRATEGIES, *ASYNC_STRATEGIES)
ASYNC_NAMES = ASYNC_STRATEGIES
#: GEM's step size η: 0.05 as in the paper's experiments (NNLO's default is 0.01); the 3-rank
#: DNN check in docs/scale.md learns at both, and does not at Adam's 1e-3
GEM_LR = 0.05
#: settings that only some strategies use: (setting, the strategies that use it)
STRATEGY_ONLY = (("sync_every", ("downpour", "easgd")), ("elastic_alpha", ("easgd",)),
                 ("gem_kappa", ("gem",)), ("gem_lr", ("gem",)), ("masters", ASYNC_NAMES),
                 ("worker_timeout", ASYNC_NAMES))
#: settings gem ignores (its step is --gem-lr's plain SGD step, rescaled; no optimizer steps)
GEM_IGNORES = ("lr", "lr_g", "lr_d", "optimizer")


def setting(default: Any = None, help: str | None = None, *, type: Any = None, choices=None,  # noqa: A002
            resumable: bool = False, metavar: str | None = None, factory=None, flag: str | None = None):
    """A dataclass field with its CLI help (None: no flag), flag type, choices, whether
    ``--resume`` may change it, and its flag where that is not ``--<name>`` (the CLI names one
    idea one way in every command: e.g. ``schedule`` is ``--lr-schedule``)."""
    metadata = {"help": help, "type": type, "choices": choices, "resumable": resumable, "metavar": metavar,
                "flag": flag}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class TrainSettings:
    """What every training run has: loop length, batches, optimisation, seeds, processes."""

    epochs: int = setting(20, "maximum epochs, counted across resumes", resumable=True, metavar="E")
    batch_size: int = setting(100, "items per step per process (the global batch under K processes is K times this)",
                              metavar="B")
    lr: float = setting(1e-3, "learning rate")
    optimizer: str = setting("adam", "optimizer: Adam, AdaDelta (Zeiler 2012, lr scales its step) or SGD with momentum",
                             choices=OPTIMIZERS)
    momentum: float = setting(0.9, "SGD momentum")
    schedule: str = setting("plateau", "learning-rate schedule", choices=SCHEDULES, flag="--lr-schedule")
    lr_factor: float = setting(0.5, "plateau: multiply the lr by this")
    lr_patience: int = setting(2, "plateau: epochs without improvement before the lr drops")
    patience: int = setting(10, "early stopping: stop after this many epochs without a better validation "
                                "number (0: never)", resumable=True)
    grad_clip: float | None = setting(None, "clip the gradient norm to this (default: off)", type=float)
    seed: int = setting(0, "seed of the weights, the batch order and the noise")
    split_seed: int = setting(0, "seed of the train/validation/test split (keep it fixed to compare runs)")
    fractions: list = setting(help=None, factory=lambda: [0.7, 0.15, 0.15])
    strategy: str = setting("auto", "update strategy: auto (allreduce under torchrun/mpiexec, else local), local, "
                                    "allreduce, or under mpiexec the asynchronous master/worker algorithms downpour, "
                                    "easgd, gem (rank 0 is the master)", choices=STRATEGY_NAMES)
    sync_every: int = setting(1, "downpour, easgd: exchange with the master after every τ updates of a network "
                                 "(gem exchanges every update; downpour's workers take τ-1 plain SGD steps of --lr "
                                 "in between, easgd's their own --optimizer steps)", metavar="TAU")
    masters: int = setting(1, "asynchronous: M >= 2 puts the workers under M sub-masters (ranks 1..M) that talk to "
                              "the master, bounding the messages any rank receives; 1: one master", resumable=True,
                           metavar="M")
    elastic_alpha: float | None = setting(None, "easgd: elastic rate alpha (default: 0.9/p, p the workers of a master)",
                                          type=float)
    gem_kappa: float = setting(2.0, "gem: proxy amplification kappa (its momentum mu is --momentum)")
    gem_lr: float = setting(GEM_LR, "gem: the step size eta of the plain SGD step each worker rescales (gem's "
                                    "learning rate; --lr and --optimizer do not apply to gem)", metavar="ETA")
    worker_timeout: float = setting(60.0, "asynchronous: a worker silent this many seconds is taken as dead and "
                                          "dropped (raise it above the time of sync-every steps)", resumable=True,
                                    metavar="S")
    device: str = setting("cpu", "cpu or cuda", choices=("cpu", "cuda"), resumable=True)
    threads: int | None = setting(None, "torch CPU threads per process (default: torch's, or cores/K under K "
                                        "processes)", type=int, resumable=True)
    time_limit_min: float = setting(0.0, "stop after the epoch that passes this many minutes (0: no limit; "
                                         "--resume continues)", resumable=True, metavar="MIN")

    def ignores(self, name: str) -> str | None:
        """Why a run with these settings would not use setting ``name`` (None: it would): the
        CLI refuses such a flag when it is given (``jetlab.cli.settings.refuse_unused``)."""
        if name == "momentum" and self.optimizer != "sgd" and self.strategy != "gem":
            return f"applies to --optimizer sgd (and --strategy gem) only, not --optimizer {self.optimizer}"
        if name in ("lr_factor", "lr_patience") and self.schedule != "plateau":
            return f"applies to --lr-schedule plateau only, not {self.schedule}"
        return None


def validate_settings(config: TrainSettings, source: str = "options") -> None:
    """Reject impossible values of the shared settings with one line naming the setting."""
    for name in ("epochs", "batch_size", "lr_patience"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "lr_patience" else 1):
            raise JetlabError(f"{source}: {name.replace('_', '-')} must be a positive integer, got {value!r}")
    for name in ("patience", "seed", "split_seed"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise JetlabError(f"{source}: {name.replace('_', '-')} must be a non-negative integer, got {value!r}")
    if not config.lr > 0:
        raise JetlabError(f"{source}: lr must be positive, got {config.lr}")
    if not 0 < config.lr_factor < 1:
        raise JetlabError(f"{source}: lr-factor must be in (0, 1), got {config.lr_factor}")
    if config.optimizer not in OPTIMIZERS:
        raise JetlabError(f"{source}: unknown optimizer {config.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    if not 0 <= config.momentum < 1:
        raise JetlabError(f"{source}: momentum must be in [0, 1), got {config.momentum}")
    if config.schedule not in SCHEDULES:
        raise JetlabError(f"{source}: unknown schedule {config.schedule!r}; known: {', '.join(SCHEDULES)}")
    if config.grad_clip is not None and not config.grad_clip > 0:
        raise JetlabError(f"{source}: grad-clip must be positive, got {config.grad_clip}")
    if config.threads is not None and (not isinstance(config.threads, int) or config.threads < 1):
        raise JetlabError(f"{source}: threads must be at least 1, got {config.threads!r}")
    if config.strategy not in STRATEGY_NAMES:
        raise JetlabError(f"{source}: unknown strategy {config.strategy!r}; known: {', '.join(STRATEGY_NAMES)}")
    for name in ("sync_every", "masters"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise JetlabError(f"{source}: {name.replace('_', '-')} must be a positive integer, got {value!r}")
    if config.elastic_alpha is not None and not 0 < config.elastic_alpha < 1:
        raise JetlabError(f"{source}: elastic-alpha must be in (0, 1), got {config.elastic_alpha}")
    if not config.gem_kappa > 0 or not config.gem_lr > 0 or not config.worker_timeout > 0:
        raise JetlabError(f"{source}: gem-kappa, gem-lr and worker-timeout must be positive")
    _refuse_unused(config, source)
    if config.time_limit_min < 0:
        raise JetlabError(f"{source}: time-limit-min must be >= 0, got {config.time_limit_min}")
    fractions = config.fractions
    if (not isinstance(fractions, (list, tuple)) or len(fractions) != 3 or min(fractions) < 0
            or abs(sum(fractions) - 1) > 1e-6):
        raise JetlabError(f"{source}: fractions must be three non-negative numbers summing to 1, got {fractions!r}")
    if config.device not in ("cpu", "cuda") and not str(config.device).startswith("cuda:"):
        raise JetlabError(f"{source}: device must be cpu or cuda, got {config.device!r}")


def _refuse_unused(config: TrainSettings, source: str) -> None:
    """A setting changed from its default that the chosen strategy ignores is an error, not a no-op."""
    defaults = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
    changed = [name for name, default in defaults.items() if getattr(config, name) != default]
    strategy = config.strategy
    for name in changed:
        users = dict(STRATEGY_ONLY).get(name)
        if users is not None and strategy not in users:
            raise JetlabError(f"{source}: {_flag(name)} applies to --strategy {'/'.join(users)} only, not "
                              f"{strategy}; drop it")
        if strategy == "gem" and name in GEM_IGNORES:
            raise JetlabError(f"{source}: --strategy gem does not use {_flag(name)} (its step size is --gem-lr, "
                              f"default {GEM_LR}); drop it")


def _flag(name: str) -> str:
    return flag_of(TrainSettings, name)


def flag_of(cls, name: str) -> str:
    """The ``jetlab`` flag of setting ``name`` of config dataclass ``cls``: ``--<name>`` with
    dashes, unless the field names another (:func:`setting`'s ``flag``)."""
    field = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    return (field.metadata.get("flag") if field else None) or "--" + name.replace("_", "-")


def strategy_settings(config: TrainSettings) -> dict[str, Any]:
    """The settings an update strategy takes (:func:`jetlab.training.strategies.make_strategy`)."""
    return {name: getattr(config, name) for name in ("sync_every", "masters", "elastic_alpha", "gem_kappa",
                                                     "momentum", "worker_timeout")}
