"""The named choices of jetlab's settings, each list written once.

The modules that implement a choice (the GAN losses in :mod:`jetlab.losses.gan`, the ODE
solvers in :mod:`jetlab.models.flow`, ...) and the config dataclasses that the ``jetlab``
command builds its flags from (:mod:`jetlab.training.tagger_config`,
:mod:`jetlab.training.generator_config`, :mod:`jetlab.pruning.config`) both import the names
from here. This module imports nothing, so building a command's parser (``jetlab fastsim
train --help``) loads no torch.
"""

from __future__ import annotations

__all__ = ["ASYNC_STRATEGIES", "DEFAULT_JET_DATA", "FLOW_NETWORKS", "FLOW_PAIRINGS", "GAN_LOSSES", "ODE_SOLVERS", "PRUNING_SCOPES",
           "SYNC_STRATEGIES", "VAE_SAMPLING"]

#: GAN losses (:mod:`jetlab.losses.gan`): non-saturating, least squares
GAN_LOSSES = ("ns", "ls")
#: velocity networks of the flow-matching generator (:class:`jetlab.models.flow.FlowGenerator`)
FLOW_NETWORKS = ("epic", "transformer")
#: how flow matching pairs noise with a training set (:mod:`jetlab.losses.flow_matching`)
FLOW_PAIRINGS = ("independent", "ot")
#: ODE solvers of the flow-matching sampler (:func:`jetlab.models.flow.integrate`)
ODE_SOLVERS = ("euler", "midpoint", "heun")
#: where the VAE draws its generation latent (:mod:`jetlab.training.tasks.vae`)
VAE_SAMPLING = ("gaussian", "prior")
#: update strategies of one process or a torch.distributed group (:mod:`jetlab.training.strategies`)
SYNC_STRATEGIES = ("local", "allreduce")
#: the asynchronous master/worker algorithms over MPI (:mod:`jetlab.training.strategies.asynchronous`)
ASYNC_STRATEGIES = ("downpour", "easgd", "gem")
#: magnitude-pruning scopes (:mod:`jetlab.pruning.masks`): all weight matrices together, or each alone
PRUNING_SCOPES = ("global", "layer")
#: ``--data`` of a generator meaning jetlab's default generated jets (:mod:`jetlab.training.point_sets`)
DEFAULT_JET_DATA = "jets"
