"""Training tasks: what the engine trains (:mod:`.base` describes the protocol).

* :class:`~.classify.ClassifyTask` — a tagger, cross-entropy;
* :class:`~.vae.VAETask` — the set VAE, NND + KL (+ jet terms);
* :class:`~.gan.GANTask` — the message-passing GAN, two networks, alternating steps;
* :class:`~.flow.FlowTask` — the flow-matching point-set generator, one velocity network.
"""

from jetlab.training.tasks.base import Task
from jetlab.training.tasks.classify import ClassifyTask
from jetlab.training.tasks.flow import FlowTask
from jetlab.training.tasks.gan import GANTask
from jetlab.training.tasks.vae import VAETask

__all__ = ["ClassifyTask", "FlowTask", "GANTask", "Task", "VAETask"]
