"""Training losses, the only home of the losses training calls: the nearest-neighbour-distance
loss for sets (:mod:`.nnd`), the set-VAE loss (:mod:`.vae`), the GAN losses (:mod:`.gan`) and the
conditional flow-matching loss (:mod:`.flow_matching`).
Classification uses ``torch.nn.functional.cross_entropy`` directly."""

from jetlab.losses.flow_matching import flow_matching_loss, ot_path
from jetlab.losses.gan import GAN_LOSSES, discriminator_loss, generator_loss, r1_penalty
from jetlab.losses.nnd import NNDLoss, nnd_loss
from jetlab.losses.vae import kl_divergence, vae_loss

__all__ = [
    "GAN_LOSSES",
    "NNDLoss",
    "discriminator_loss",
    "flow_matching_loss",
    "generator_loss",
    "kl_divergence",
    "nnd_loss",
    "ot_path",
    "r1_penalty",
    "vae_loss",
]
