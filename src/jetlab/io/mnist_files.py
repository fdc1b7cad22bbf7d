"""Sparse-MNIST files: the IDX format of the MNIST images and jetlab's HDF5 point-set files.

IDX (``train-images-idx3-ubyte[.gz]`` ...): a 4-byte magic ``0x00 0x00 <type> <ndim>``, the
big-endian uint32 dimensions, then the data, big-endian, row-major (:func:`read_idx`,
:func:`write_idx`, :func:`load_idx_mnist`).

Point-set files (written by ``jetlab data mnist``, one HDF5 file, written atomically):

=========== ============== ===========================================
key         shape          content
=========== ============== ===========================================
points      (N, P, 3) f4   (x, y, intensity); padded rows are 0
mask        (N, P) bool    True = real point
labels      (N,) int64     digit 0-9 (-1 for generated sets)
=========== ============== ===========================================

with attributes ``kind``, ``source``, ``features`` and (superpixels) ``n_segments``,
``compactness``. How the point sets are made from images: :mod:`jetlab.data.mnist`.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jetlab.errors import InputError, JetlabError
from jetlab.utils.atomic import atomic_h5, atomic_path

__all__ = [
    "FEATURES",
    "KINDS",
    "MnistImages",
    "MnistPoints",
    "load_idx_mnist",
    "read_idx",
    "read_mnist_points",
    "write_idx",
    "write_mnist_points",
]

KINDS = ("sparse", "superpixels")
FEATURES = ("x", "y", "intensity")

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension

# IDX type code -> big-endian numpy dtype
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}


class MnistPoints(NamedTuple):
    """Point-set digits as tensors: ``points`` (N, P, 3) float32 (x, y, intensity),
    ``mask`` (N, P) bool, ``labels`` (N,) int64."""

    points: torch.Tensor  # noqa: F821
    mask: torch.Tensor  # noqa: F821
    labels: torch.Tensor  # noqa: F821



class MnistImages(NamedTuple):
    """MNIST digits as images: ``images`` (N, 28, 28) uint8, ``labels`` (N,) int64, ``source``."""

    images: np.ndarray
    labels: np.ndarray
    source: str


# --------------------------------------------------------------------------- IDX files


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise InputError(path, "no such file")
    if not path.name.endswith(".gz"):
        try:
            return path.read_bytes()
        except OSError as exc:
            raise InputError(path, f"cannot read ({exc.strerror or exc})") from None
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(path, f"not a readable gzip file ({exc})") from None


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (the MNIST format; gzip-compressed when the name ends in ``.gz``).

    Layout: a 4-byte magic ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32
    dimensions, then the data in big-endian row-major order. Returns an array in native
    byte order with the shape of the dimensions.

    Raises :class:`InputError` for a wrong or unexpected magic number, a truncated file or
    trailing bytes.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise InputError(path, f"not an IDX file: {len(raw)} bytes, too short for the 4-byte magic number")
    magic = int.from_bytes(raw[:4], "big")
    type_code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise InputError(path, f"not an IDX file: bad magic number {magic} (0x{magic:08x})")
    if expected_magic is not None and magic != expected_magic:
        raise InputError(path, f"IDX magic number {magic}, expected {expected_magic}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InputError(path, f"truncated IDX header: {len(raw)} bytes, need {header} for {ndim} dimensions")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise InputError(path, f"truncated IDX file: dimensions {dims} need {expected} data bytes, found {found}")
    if found > expected:
        raise InputError(path, f"IDX file has {found - expected} trailing bytes after the {dims} data")
    data = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return data.reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` (uint8, int8, int16, int32, float32 or float64) as an IDX file,
    gzip-compressed when ``path`` ends in ``.gz``; atomically."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _IDX_CODES or array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"cannot write a {array.dtype} array of {array.ndim} dimensions as IDX")
    code = _IDX_CODES[native]
    payload = bytes([0, 0, code, array.ndim])
    payload += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload += np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.name.endswith(".gz"):
            with gzip.open(tmp, "wb") as fh:
                fh.write(payload)
        else:
            tmp.write_bytes(payload)
    return path


def _find_idx(directory: Path, prefix: str, what: str, ndim_tag: str) -> Path | None:
    # standard names (train-images-idx3-ubyte) and the common variant (train-images.idx3-ubyte)
    for stem in (f"{prefix}-{what}-{ndim_tag}-ubyte", f"{prefix}-{what}.{ndim_tag}-ubyte"):
        for name in (stem, stem + ".gz"):
            if (directory / name).is_file():
                return directory / name
    return None


def load_idx_mnist(directory: str | os.PathLike, split: str = "all") -> tuple[np.ndarray, np.ndarray, str]:
    """MNIST images and labels from the standard IDX files in ``directory``.

    ``split``: ``"train"`` (60k), ``"test"`` (the 10k ``t10k`` files) or ``"all"`` (train
    then test; the test files are optional). Returns ``(images (N, 28, 28) uint8,
    labels (N,) int64, source description)``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, "no such directory (expected the MNIST IDX files)")
    if split not in ("train", "test", "all"):
        raise JetlabError(f"MNIST split must be train, test or all, got {split!r}")
    prefixes = {"train": ["train"], "test": ["t10k"], "all": ["train", "t10k"]}[split]
    images, labels, used = [], [], []
    for prefix in prefixes:
        image_file = _find_idx(directory, prefix, "images", "idx3")
        label_file = _find_idx(directory, prefix, "labels", "idx1")
        if image_file is None or label_file is None:
            if split == "all" and prefix == "t10k" and image_file is None and label_file is None:
                continue
            missing = f"{prefix}-images-idx3-ubyte[.gz]" if image_file is None else f"{prefix}-labels-idx1-ubyte[.gz]"
            raise InputError(directory, f"missing MNIST IDX file {missing}")
        prefix_images = read_idx(image_file, IMAGES_MAGIC)
        prefix_labels = read_idx(label_file, LABELS_MAGIC)
        if prefix_images.shape[1:] != (28, 28):
            raise InputError(image_file, f"images are {prefix_images.shape[1:]}, expected 28 x 28")
        if len(prefix_images) != len(prefix_labels):
            raise InputError(label_file, f"{len(prefix_labels)} labels for {len(prefix_images)} images in {image_file.name}")
        if prefix_labels.size and int(prefix_labels.max()) > 9:
            raise InputError(label_file, f"label {int(prefix_labels.max())} is not a digit 0-9")
        images.append(prefix_images)
        labels.append(prefix_labels.astype(np.int64))
        used.append(f"{prefix} ({len(prefix_images)})")
    source = f"idx:{directory.resolve()} [{', '.join(used)}]"
    return np.concatenate(images), np.concatenate(labels), source

# --------------------------------------------------------------------------- point-set files


def write_mnist_points(path: str | os.PathLike, points: np.ndarray, mask: np.ndarray, labels: np.ndarray,
                       *, kind: str, source: str, **attrs) -> Path:
    """Write point-set digits to one HDF5 file, atomically (layout in the module docstring)."""
    path = Path(path)
    with atomic_h5(path) as fh:
        fh.create_dataset("points", data=np.asarray(points, dtype=np.float32), compression="gzip")
        fh.create_dataset("mask", data=np.asarray(mask, dtype=bool), compression="gzip")
        fh.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
        fh.attrs["kind"] = kind
        fh.attrs["source"] = source
        fh.attrs["features"] = ",".join(FEATURES)
        fh.attrs["coordinates"] = "x, y in [-1, 1] (y up); intensity in [0, 1]"
        for key, value in attrs.items():
            fh.attrs[key] = value
    return path


def _resolve_file(path: Path) -> Path:
    if path.is_dir():
        candidates = sorted(path.glob("mnist_*.h5"))
        if len(candidates) != 1:
            found = ", ".join(c.name for c in candidates) or "none"
            raise InputError(path, f"expected exactly one mnist_<kind>.h5 file in the directory, found {found}")
        return candidates[0]
    if not path.is_file():
        raise InputError(path, f"no such file (nor one of the default kinds {', '.join(KINDS)})")
    return path


def read_mnist_points(path: str | os.PathLike, *, digits: Sequence[int] | None = None,
                      limit: int | None = None) -> MnistPoints:
    """Point-set digits as tensors.

    ``path``: an HDF5 file written by :func:`write_mnist_points`, or a directory holding
    one ``mnist_<kind>.h5``.
    ``digits`` keeps only those labels; ``limit`` the first N digits (after ``digits``).
    """
    import h5py
    import torch

    path = _resolve_file(Path(path))
    try:
        with h5py.File(path, "r") as fh:
            for key in ("points", "mask", "labels"):
                if key not in fh:
                    raise InputError(path, f"missing key {key!r} (not a jetlab MNIST point-set file)")
            points, mask, labels = fh["points"][()], fh["mask"][()], fh["labels"][()]
    except OSError as exc:
        raise InputError(path, f"not a readable HDF5 file ({exc})") from None
    if points.ndim != 3 or points.shape[2] != 3 or mask.shape != points.shape[:2] or labels.shape != points.shape[:1]:
        raise InputError(path, f"inconsistent shapes: points {points.shape}, mask {mask.shape}, labels {labels.shape}")
    if digits is not None:
        keep = np.isin(labels, np.asarray(list(digits)))
        points, mask, labels = points[keep], mask[keep], labels[keep]
    if limit is not None:
        points, mask, labels = points[:limit], mask[:limit], labels[:limit]
    return MnistPoints(torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)),
                       torch.from_numpy(np.ascontiguousarray(mask, dtype=bool)),
                       torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)))
