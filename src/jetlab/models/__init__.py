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

Usage::

    model = build_tagger("jedinet", n_particles=30, n_features=16)
    logits = model(*[batch[key] for key in model.input_keys])
"""

from __future__ import annotations

from typing import Any

from torch import nn

from jetlab.errors import JetlabError
from jetlab.models._mlp import check_constructor_keywords
from jetlab.models.cnn import CNNTagger
from jetlab.models.dnn import DNNTagger
from jetlab.models.garnet import GarNetLayer, GarNetTagger
from jetlab.models.gru import GRUTagger
from jetlab.models.jedinet import DenseJEDINet, DenseJEDINetSumO, JEDINet, JEDINetSumO
from jetlab.models.jedinet_linear import JEDINetLinear
from jetlab.models.mpgan import MPDiscriminator, MPGenerator
from jetlab.models.part import ParticleTransformer, ParticleTransformerSmall
from jetlab.models.particlenet import ParticleNet, ParticleNetLite
from jetlab.models.vae import SetVAE

__all__ = [
    "TAGGERS",
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
]

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


def build_tagger(name: str, *, n_particles: int, n_features: int, n_classes: int = 5, **hyperparameters: Any) -> nn.Module:
    """Build tagger ``name`` with its defaults for ``n_particles`` updated by ``hyperparameters``.

    Raises :class:`JetlabError` for an unknown name or hyperparameter (the message lists the
    known ones).
    """
    try:
        cls = TAGGERS[name]
    except (KeyError, TypeError):
        raise JetlabError(f"unknown tagger {name!r}; known: {', '.join(TAGGERS)}") from None
    check_constructor_keywords(name, cls, hyperparameters)
    return cls(n_particles, n_features, n_classes, **hyperparameters)
