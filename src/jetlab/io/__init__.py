"""Reading and writing data: the hls4ml and JetNet jet layouts, MNIST IDX and point-set files,
torch views of jet files, and the one split every task uses.

Typical use::

    from jetlab.io import open_dataset, open_jets
    jets = open_jets("jets30", n_particles=30)     # a directory of jet files (jetlab data generate)
    train, val, test = jets.split(inputs=("particles", "mask", "label"))
    sample = train[0]       # {"particles": (30, 16) float32, "mask": (30,) bool, "label": int64}
    digits = open_dataset("mnist/mnist_superpixels.h5")   # any layout, recognised by its keys

See :mod:`jetlab.io.layout` for the on-disk layouts and feature names; the cached default jet
set is :func:`jetlab.data.resolve_jets`'s (choosing data is not file reading).
"""

from jetlab.io.datasets import LAYOUTS, detect_layout, open_dataset
from jetlab.io.jet_files import JetFile, open_jet_file, write_hls4ml_file, write_jetnet_file
from jetlab.io.jets import JetFiles, JetSplit, constant_features, frozen_particle_features, open_jets
from jetlab.io.layout import CLASS_NAMES, HLF_FEATURES, JET_FEATURES, PARTICLE_FEATURES
from jetlab.io.mnist_files import MnistImages, MnistPoints, read_idx, read_mnist_points, write_idx, write_mnist_points
from jetlab.io.split import split_indices

__all__ = [
    "CLASS_NAMES",
    "HLF_FEATURES",
    "JET_FEATURES",
    "JetFile",
    "JetFiles",
    "JetSplit",
    "LAYOUTS",
    "MnistImages",
    "MnistPoints",
    "PARTICLE_FEATURES",
    "constant_features",
    "detect_layout",
    "frozen_particle_features",
    "open_dataset",
    "open_jet_file",
    "open_jets",
    "read_idx",
    "read_mnist_points",
    "split_indices",
    "write_hls4ml_file",
    "write_idx",
    "write_jetnet_file",
    "write_mnist_points",
]
