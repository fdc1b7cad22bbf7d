"""One entry point for every data layout jetlab reads, and the one train/validation/test split.

:func:`open_dataset` looks at a path and opens it with the reader of its layout:

================== =============================================== =========================
layout             what is at the path                             returned
================== =============================================== =========================
``hls4ml``         HDF5 file(s) with ``jetConstituentList``,       :class:`~jetlab.io.jets.JetFiles`
                   ``jets`` (a directory or one file)
``jetnet``         HDF5 file(s) with ``particle_features``,        :class:`~jetlab.io.jets.JetFiles`
                   ``jet_features``
``mnist-points``   a jetlab point-set file (``points``, ``mask``,  :class:`~jetlab.io.mnist_files.MnistPoints`
                   ``labels``) or a directory with one
``mnist-idx``      a directory of MNIST IDX files                  :class:`~jetlab.io.mnist_files.MnistImages`
================== =============================================== =========================

The split every task uses is :func:`jetlab.io.split.split_indices`.
"""

from __future__ import annotations

import os
from pathlib import Path

from jetlab.errors import InputError
from jetlab.io.jet_files import HLS4ML_KEYS, JETNET_KEYS
from jetlab.io.jets import open_jets
from jetlab.io.manifest import check_complete
from jetlab.io.mnist_files import MnistImages, load_idx_mnist, read_mnist_points

__all__ = ["LAYOUTS", "detect_layout", "open_dataset"]

LAYOUTS = ("hls4ml", "jetnet", "mnist-points", "mnist-idx")


def _h5_keys(path: Path) -> set[str]:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return set(fh.keys())
    except OSError as exc:
        raise InputError(path, f"not a readable HDF5 file ({str(exc).splitlines()[0]})") from None


def detect_layout(path: str | os.PathLike) -> str:
    """Which of :data:`LAYOUTS` ``path`` holds (a file or a directory); InputError if none."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(path, "no such file or directory")
    if path.is_dir():
        if any(path.glob("*-images*idx3-ubyte*")):
            return "mnist-idx"
        files = sorted(p for p in path.iterdir() if p.suffix in (".h5", ".hdf5") and not p.name.startswith("."))
        if not files:
            check_complete(path, {})  # an interrupted jet generation says so
            raise InputError(path, "no .h5/.hdf5 files and no MNIST IDX files in this directory")
        path = files[0]
    keys = _h5_keys(path)
    if set(HLS4ML_KEYS) <= keys:
        return "hls4ml"
    if set(JETNET_KEYS) <= keys:
        return "jetnet"
    if {"points", "mask", "labels"} <= keys:
        return "mnist-points"
    raise InputError(path, f"not a layout jetlab reads (keys {', '.join(sorted(keys)) or 'none'}; expected "
                           "hls4ml jetConstituentList+jets, JetNet particle_features+jet_features, or points+mask+labels)")


def open_dataset(path: str | os.PathLike, **options):
    """Open ``path`` with the reader of its layout (module docstring); ``options`` go to that reader."""
    layout = detect_layout(path)
    if layout in ("hls4ml", "jetnet"):
        return open_jets(path, **options)
    if layout == "mnist-points":
        return read_mnist_points(path, **options)

    return MnistImages(*load_idx_mnist(path, **options))
