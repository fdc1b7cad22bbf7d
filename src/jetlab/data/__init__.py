"""Jet and sparse-event data: generation with Pythia 8 + FastJet, the hls4ml and JetNet
layouts, and torch ``Dataset`` views of them.

Typical use::

    from jetlab.data import resolve_jets
    jets = resolve_jets(None, n_particles=30)      # the cached default set (generated once)
    train, val, test = jets.split(inputs=("particles", "mask", "label"))
    sample = train[0]       # {"particles": (30, 16) float32, "mask": (30,) bool, "label": int64}

See :mod:`jetlab.data.layout` for the on-disk layouts and feature names.
"""

from jetlab.data.layout import (
    CLASS_NAMES,
    HLF_FEATURES,
    JET_FEATURES,
    PARTICLE_FEATURES,
)
from jetlab.data.dataset import JetFiles, JetSplit, open_jets, resolve_jets
from jetlab.data.hls4ml import write_hls4ml_file, write_jetnet_file

__all__ = [
    "CLASS_NAMES",
    "HLF_FEATURES",
    "JET_FEATURES",
    "JetFiles",
    "JetSplit",
    "PARTICLE_FEATURES",
    "open_jets",
    "resolve_jets",
    "write_hls4ml_file",
    "write_jetnet_file",
]
