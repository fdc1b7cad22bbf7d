"""Small building blocks shared by the taggers: named activations and a plain MLP.

:class:`MLP` is a stack of ``nn.Linear`` layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``
with one activation between the layers (and, optionally, after the last one). Its
parameters are ``layers.<i>.weight`` / ``layers.<i>.bias``, so two models that build the
same MLPs have interchangeable ``state_dict`` s. :meth:`MLP.forward_after_first_layer`
continues from the pre-activation of the first layer, which is what the fast JEDI-net
interaction needs (it computes the first layer per particle, not per edge).
:class:`MaskedBatchNorm` is batch normalisation whose statistics skip padded entries.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from jetlab.errors import JetlabError

__all__ = ["ACTIVATIONS", "MLP", "MaskedBatchNorm", "activation_function", "check_constructor_keywords",
           "Tagger", "check_hyperparameters", "init_tagger", "is_width_list", "keyword_defaults"]

#: activation name -> ``f(x, inplace)``; in-place is only used on fresh temporaries
ACTIVATIONS: dict[str, Callable[[torch.Tensor, bool], torch.Tensor]] = {
    "relu": lambda x, inplace=False: F.relu(x, inplace=inplace),
    "elu": lambda x, inplace=False: F.elu(x, inplace=inplace),
    "selu": lambda x, inplace=False: F.selu(x, inplace=inplace),
    "tanh": lambda x, inplace=False: x.tanh_() if inplace else torch.tanh(x),
    "sigmoid": lambda x, inplace=False: x.sigmoid_() if inplace else torch.sigmoid(x),
    "leaky_relu": lambda x, inplace=False: F.leaky_relu(x, 0.01, inplace=inplace),
    "gelu": lambda x, inplace=False: F.gelu(x),
    "identity": lambda x, inplace=False: x,
}


def activation_function(name: str) -> Callable[[torch.Tensor, bool], torch.Tensor]:
    """The activation called ``name``; :class:`JetlabError` listing the known ones otherwise."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise JetlabError(f"unknown activation {name!r}; known: {', '.join(sorted(ACTIVATIONS))}") from None


def check_hyperparameters(model_name: str, given: dict, known: dict) -> None:
    """Raise :class:`JetlabError` naming a hyperparameter of ``given`` not in ``known`` (name ->
    default), or one whose value is not of its default's kind (a number for a number, a
    string for a string, ...), e.g. ``--hp hidden=abc``."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise JetlabError(
            f"{model_name}: unknown hyperparameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    for name, value in given.items():
        default = known[name]
        if default is None or value is None:
            continue
        if isinstance(default, bool) or isinstance(value, bool):
            ok = isinstance(value, bool) == isinstance(default, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and (isinstance(value, int) or not isinstance(default, int))
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise JetlabError(f"{model_name}: hyperparameter {name} must be a {type(default).__name__} "
                              f"like its default {default!r}, got {value!r}")


def is_width_list(value) -> bool:
    """Whether ``value`` is a non-empty list of positive integer layer widths (``[64, 64, 64]``)."""
    return isinstance(value, list) and bool(value) and all(isinstance(w, int) and w > 0 for w in value)


def _as_lists(value: Any) -> Any:
    """Tuples (also nested) as lists: the form of a setting in JSON, ``--hp`` and ``hparams``."""
    return [_as_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def keyword_defaults(cls: type) -> dict[str, Any]:
    """The keyword-only parameters of ``cls``'s constructor and their defaults, tuples as
    lists: a tagger's hyperparameters are exactly these (``None``: a default that depends on
    the particle count, filled in by the class's ``default_hyperparameters``)."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {p.name: _as_lists(p.default) for p in parameters if p.kind is p.KEYWORD_ONLY}


class Tagger(nn.Module):
    """Base of jetlab's taggers: a tagger's hyperparameters are its constructor's keyword-only
    arguments (:func:`keyword_defaults`); a class whose defaults depend on the particle count
    (JEDI-net: the paper's table) overrides :meth:`default_hyperparameters`."""

    @classmethod
    def default_hyperparameters(cls, n_particles: int) -> dict[str, Any]:
        """The constructor's keyword arguments and their defaults (any ``n_particles``)."""
        return keyword_defaults(cls)


def check_constructor_keywords(model_name: str, cls: type, given: dict) -> None:
    """Raise :class:`JetlabError` naming the model and every key of ``given`` that ``cls``'s
    constructor does not take (listing the ones it takes), instead of Python's TypeError
    from deep inside a build: ``--hp hiden=10`` or an edited run's ``hparams``."""
    parameters = inspect.signature(cls).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return
    named = [p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(given) - set(named))
    if unknown:
        known = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY] or named
        raise JetlabError(
            f"{model_name}: unknown hyperparameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )


def init_tagger(model: nn.Module, n_particles: int, n_features: int, n_classes: int, **settings: Any) -> dict:
    """Common set-up of every tagger, called by its constructor with its keyword arguments:
    ``None`` settings take ``model.default_hyperparameters(n_particles)``, tuples become
    lists, each value is checked against its default's kind, and ``n_particles``,
    ``n_features``, ``n_classes`` and ``hparams`` (what ``build_tagger(model.name,
    **model.hparams)`` needs) are set. Returns the settings."""
    defaults = model.default_hyperparameters(n_particles)
    hp = {name: defaults[name] if value is None else _as_lists(value) for name, value in settings.items()}
    check_hyperparameters(model.name, hp, defaults)
    model.n_particles, model.n_features, model.n_classes = int(n_particles), int(n_features), int(n_classes)
    model.hparams = {"n_particles": model.n_particles, "n_features": model.n_features, "n_classes": model.n_classes, **hp}
    return hp


class MLP(nn.Module):
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]``.

    Input ``(..., sizes[0])``, output ``(..., sizes[-1])``. ``activation`` is applied after
    every hidden layer, and after the output layer too when ``output_activation``.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", *, output_activation: bool = False):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError("an MLP needs at least an input and an output size")
        self.sizes = tuple(int(s) for s in sizes)
        self.activation = activation
        self._act = activation_function(activation)
        self.output_activation = output_activation
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_after_first_layer(self.layers[0](x))

    def forward_after_first_layer(self, pre: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
        """Continue from ``pre = layers[0](x)``; ``inplace`` may overwrite ``pre``."""
        h = pre
        fresh = inplace  # may the current tensor be overwritten?
        for layer in self.layers[1:]:
            h = layer(self._act(h, fresh))
            fresh = True  # a Linear's output is a temporary its backward does not need
        if self.output_activation:
            h = self._act(h, fresh)
        return h

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}, output_activation={self.output_activation}"


class MaskedBatchNorm(nn.Module):
    """Batch normalisation over the last axis whose batch statistics count real entries only.

    ``x (..., C)``, ``mask (...)`` bool. Training: ``μ = Σ m x / Σ m``, ``σ² = Σ m (x - μ)² / Σ m``
    over every leading position with ``m`` true, running averages updated (momentum 0.1,
    unbiased variance, as ``nn.BatchNorm1d``); evaluation: the running averages.
    ``y = γ (x - μ) / sqrt(σ² + ε) + β`` everywhere (padded entries are the caller's to zero),
    so padding never changes the statistics and the output of real entries.
    """

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.training:
            weights = mask.to(x.dtype).reshape(-1, 1)
            flat = x.reshape(-1, x.shape[-1])
            count = weights.sum().clamp(min=1)
            mean = (flat * weights).sum(dim=0) / count
            var = ((flat - mean).square() * weights).sum(dim=0) / count
            with torch.no_grad():
                unbiased = var * (count / (count - 1).clamp(min=1))
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(unbiased.detach(), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}, momentum={self.momentum}"
