"""Losses for set generation: the nearest-neighbour-distance (NND) loss (see
:mod:`jetlab.losses.nnd` for the formula and shapes)."""

from jetlab.losses.nnd import NNDLoss, nnd_loss

__all__ = ["nnd_loss", "NNDLoss"]
