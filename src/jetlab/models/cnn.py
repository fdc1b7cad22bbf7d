"""Convolutional tagger on jet images (the JEDI-net paper's CNN baseline).

Input: ``image (B, 1, H, W)`` pT images (100 × 100 pixels of 0.016 × 0.016 in (η, φ)),
normalised to unit sum, so most pixels are tiny. ``pixels="log"`` feeds
``log(1 + x / 10⁻³)`` instead (10⁻³ of the jet pT is about one soft particle), which spreads
the soft radiation over the same range as the hard cores; ``"linear"`` feeds x as it is.
``len(channels)`` blocks of ``Conv2d(k × k, same padding) -> activation -> MaxPool2d(2)``
shrink the image to ``(C_last, H/2^L, W/2^L)``; it is flattened and fed to
``Linear -> activation -> Linear`` giving logits ``(B, n_classes)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from jetlab.errors import JetlabError
from jetlab.models._mlp import MLP, Tagger, activation_function, init_tagger

__all__ = ["CNNTagger", "LOG_PIXEL_SCALE", "PIXEL_SCALES"]

PIXEL_SCALES = ("linear", "log")
#: pixel value (a fraction of the jet pT) that ``pixels="log"`` maps to log 2
LOG_PIXEL_SCALE = 1e-3


class CNNTagger(Tagger):
    """Convolutional tagger on jet images (the CNN baseline of JEDI-net, Moreno et al.,
    arXiv:1908.05318; module docstring).

    Args:
        n_particles: particles per jet of the data set (kept in ``hparams``; the CNN reads
            the image only).
        n_features: particle features of the data set (kept in ``hparams``).
        n_classes: output classes.
        channels: output channels of each convolution block (one ``MaxPool2d(2)`` each).
        kernel_size: side k of the k × k convolution kernels.
        dense: width of the hidden layer of the head.
        activation: activation after every convolution and in the head.
        image_size: side of the square input images in pixels.
        pixels: ``"linear"`` (the image as it is) or ``"log"`` (``log(1 + x / 10⁻³)``).
    """

    name = "cnn"
    input_keys = ("image",)

    def __init__(self, n_particles: int, n_features: int, n_classes: int = 5, *,
                 channels: Sequence[int] = (8, 16, 32), kernel_size: int = 3, dense: int = 64,
                 activation: str = "relu", image_size: int = 100, pixels: str = "linear"):
        super().__init__()
        hp = init_tagger(self, n_particles, n_features, n_classes, channels=channels, kernel_size=kernel_size,
                         dense=dense, activation=activation, image_size=image_size, pixels=pixels)
        hp["channels"] = self.hparams["channels"] = [int(c) for c in hp["channels"]]
        self._act = activation_function(hp["activation"])
        k = int(hp["kernel_size"])
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, k, padding=k // 2) for c_in, c_out in zip([1, *hp["channels"]], hp["channels"])
        )
        self.pool = nn.MaxPool2d(2)
        if hp["pixels"] not in PIXEL_SCALES:
            raise JetlabError(f"cnn: pixels must be one of {', '.join(PIXEL_SCALES)}, got {hp['pixels']!r}")
        self.log_pixels = hp["pixels"] == "log"
        self.image_size = int(hp["image_size"])
        side = self.image_size
        for _ in hp["channels"]:
            side //= 2
        if side < 1:
            raise JetlabError(f"cnn: {len(hp['channels'])} pooling layers shrink a {self.image_size}-pixel image to nothing")
        self.head = MLP([hp["channels"][-1] * side * side, int(hp["dense"]), self.n_classes], hp["activation"])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Class logits of a batch of jet images.

        Args:
            image: pT images in (η, φ), normalised to unit sum.

        Returns:
            Logits (not probabilities).

        Shapes:
            - image: ``(batch, 1, image_size, image_size)``
            - returns: ``(batch, n_classes)``
        """
        if image.dim() != 4 or image.shape[1:] != (1, self.image_size, self.image_size):
            raise ValueError(f"cnn: image must be (B, 1, {self.image_size}, {self.image_size}), got {tuple(image.shape)}")
        h = torch.log1p(image / LOG_PIXEL_SCALE) if self.log_pixels else image
        for conv in self.convs:
            h = self.pool(self._act(conv(h), True))
        return self.head(h.flatten(1))
