"""Models: the jet taggers (JEDI-net flattened and ΣO, JEDI-linear, GarNet, ParticleNet(-Lite), the Particle
Transformer (ParT, ParT-small), DNN / CNN / GRU baselines)
and the generative models of sparse events (:mod:`jetlab.models.vae`,
:mod:`jetlab.models.mpgan`).

Every tagger class has

* ``name`` — its registry name, ``input_keys`` — the batch keys ``forward`` takes, in order
  (``("particles", "mask")``, ``("hlf",)``, ``("image",)``; ParticleNet adds the raw
  ``"points"``, ParT the raw ``"momenta"``: see :mod:`jetlab.io.jets`),
* optionally ``particle_features`` — the particle feature names it wants as ``particles``
  (default: every feature of the files),
* a constructor ``cls(n_particles, n_features, n_classes=5, *, ...)`` whose keyword-only
  arguments are its tunable settings (hyperparameters), each with its type and default,
* ``default_hyperparameters(n_particles) -> dict`` — those settings and their defaults for
  ``n_particles`` (a default written ``None`` in the signature depends on the count),
* ``hparams`` — the settings it was built with, ``n_particles``, ``n_features`` and
  ``n_classes`` included, so ``build_tagger(model.name, **model.hparams)`` rebuilds it,
* ``forward(*[batch[k] for k in input_keys]) -> logits (B, n_classes)``.

Every model, built-in or from a user's file (``--model FILE.py:Class``), is an entry of
one registry, :data:`jetlab.models.registry.MODELS` / :func:`resolve_model`: its task
(classify / generate), how to build it and the jetlab features it supports.

Usage::

    model = build_tagger("jedinet", n_particles=30, n_features=16)
    logits = model(*[batch[key] for key in model.input_keys])
"""

from __future__ import annotations

from typing import Any

from torch import nn

from jetlab.errors import JetlabError
from jetlab.models.cnn import CNNTagger
from jetlab.models.dnn import DNNTagger
from jetlab.models.garnet import GarNetLayer, GarNetTagger
from jetlab.models.gru import GRUTagger
from jetlab.models.jedinet import DenseJEDINet, DenseJEDINetSumO, JEDINet, JEDINetSumO
from jetlab.models.jedinet_linear import JEDINetLinear
from jetlab.models.mpgan import MPDiscriminator, MPGenerator
from jetlab.models.part import ParticleTransformer, ParticleTransformerSmall
from jetlab.models.particlenet import ParticleNet, ParticleNetLite
from jetlab.models.registry import MODELS, TAGGERS, ModelEntry, resolve_model
from jetlab.models.vae import SetVAE

__all__ = [
    "MODELS",
    "TAGGERS",
    "ModelEntry",
    "CNNTagger",
    "DNNTagger",
    "DenseJEDINet",
    "DenseJEDINetSumO",
    "GRUTagger",
    "GarNetLayer",
    "GarNetTagger",
    "JEDINet",
    "JEDINetLinear",
    "JEDINetSumO",
    "MPDiscriminator",
    "MPGenerator",
    "ParticleNet",
    "ParticleNetLite",
    "ParticleTransformer",
    "ParticleTransformerSmall",
    "SetVAE",
    "build_tagger",
    "resolve_model",
]


def build_tagger(name: str, *, n_particles: int, n_features: int, n_classes: int = 5, **hyperparameters: Any) -> nn.Module:
    """Build tagger ``name`` (a registry name, or a user's ``FILE.py:Class`` named on the command
    line: :mod:`jetlab.models.registry`) with its defaults for ``n_particles`` updated by
    ``hyperparameters``.

    Raises :class:`JetlabError` for an unknown name or hyperparameter (the message lists the
    known ones).
    """
    if not isinstance(name, str):
        raise JetlabError(f"unknown tagger {name!r}; known: {', '.join(TAGGERS)}")
    entry = resolve_model(name, task="classify")
    return entry.build(n_particles=n_particles, n_features=n_features, n_classes=n_classes, **hyperparameters)
