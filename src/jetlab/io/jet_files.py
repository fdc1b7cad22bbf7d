"""Reading and writing jet files in the hls4ml and JetNet layouts (see :mod:`jetlab.io.layout`).

:func:`open_jet_file` validates a file once (it is HDF5, has the keys, the shapes agree)
and returns a :class:`JetFile` that reads rows lazily, so a 2.7 GB directory costs
nothing to open. Problems become :class:`~jetlab.errors.InputError` naming the file.
Writers go through :func:`jetlab.utils.atomic.atomic_h5`: a file is built in memory and
exists under its final name only once it is complete; a full disk or an unwritable place
is a one-line error naming the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jetlab.errors import InputError
from jetlab.io.layout import (
    CLASS_NAMES,
    IMAGE_PIXELS,
    JET_FEATURES,
    JETNET_JET_FEATURES,
    JETNET_PARTICLE_FEATURES,
    LABEL_COLUMNS,
    PARTICLE_FEATURES,
    feature_index,
)
from jetlab.utils.atomic import atomic_h5

__all__ = [
    "HLS4ML_KEYS",
    "JetFile",
    "jetnet_class_from_name",
    "open_jet_file",
    "write_hls4ml_file",
    "write_jetnet_file",
]

#: keys every hls4ml-layout file must have
HLS4ML_KEYS = ("jetConstituentList", "jets")
JETNET_KEYS = ("particle_features", "jet_features")
_COMPRESSION = dict(compression="gzip", compression_opts=1, shuffle=True)
#: images are ~99 % zeros: byte shuffling makes them larger and twice as slow to write
_IMAGE_COMPRESSION = dict(compression="gzip", compression_opts=1)


def write_hls4ml_file(path, constituents: np.ndarray, jets: np.ndarray, images: np.ndarray | None = None, *, attrs: dict | None = None) -> Path:
    """Write one hls4ml-layout file atomically.

    constituents (N, P, 16), jets (N, 59), images (N, 100, 100) or None.
    """

    constituents = np.asarray(constituents, dtype=np.float32)
    jets = np.asarray(jets, dtype=np.float32)
    n = len(jets)
    if constituents.ndim != 3 or constituents.shape[0] != n or constituents.shape[2] != len(PARTICLE_FEATURES):
        raise ValueError(f"constituents must be (N={n}, P, {len(PARTICLE_FEATURES)}), got {constituents.shape}")
    if jets.shape != (n, len(JET_FEATURES)):
        raise ValueError(f"jets must be (N, {len(JET_FEATURES)}), got {jets.shape}")
    path = Path(path)
    with atomic_h5(path) as f:
        chunk = (min(n, 256), constituents.shape[1], constituents.shape[2]) if n else None
        f.create_dataset("jetConstituentList", data=constituents, chunks=chunk, **_COMPRESSION)
        f.create_dataset("jets", data=jets, **_COMPRESSION)
        if images is not None:
            images = np.asarray(images, dtype=np.float32)
            if images.shape != (n, IMAGE_PIXELS, IMAGE_PIXELS):
                raise ValueError(f"images must be (N, {IMAGE_PIXELS}, {IMAGE_PIXELS}), got {images.shape}")
            f.create_dataset("jetImage", data=images, chunks=(min(max(n, 1), 64), IMAGE_PIXELS, IMAGE_PIXELS), **_IMAGE_COMPRESSION)
        f.create_dataset("jetFeatureNames", data=np.array(JET_FEATURES, dtype="S"))
        f.create_dataset("particleFeatureNames", data=np.array(["j1_" + n for n in PARTICLE_FEATURES], dtype="S"))
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    return path


def write_jetnet_file(path, particle_features: np.ndarray, jet_features: np.ndarray, *, jet_class: str | None = None) -> Path:
    """Write one JetNet-layout file atomically.

    particle_features (N, P, 4) = (eta_rel, phi_rel, pT_rel, mask); jet_features (N, 4) =
    (pT, eta, mass, n_particles). ``jet_class`` (one of g, q, w, z, t) is stored as an
    attribute so the file carries its label.
    """

    particle_features = np.asarray(particle_features, dtype=np.float32)
    jet_features = np.asarray(jet_features, dtype=np.float32)
    if particle_features.ndim != 3 or particle_features.shape[2] != 4:
        raise ValueError(f"particle_features must be (N, P, 4), got {particle_features.shape}")
    if jet_features.shape != (len(particle_features), 4):
        raise ValueError(f"jet_features must be (N, 4), got {jet_features.shape}")
    path = Path(path)
    with atomic_h5(path) as f:
        f.create_dataset("particle_features", data=particle_features, **_COMPRESSION)
        f.create_dataset("jet_features", data=jet_features, **_COMPRESSION)
        if jet_class is not None:
            f.attrs["jet_class"] = jet_class
    return path


@dataclass
class JetFile:
    """One validated jet file, read lazily.

    Attributes:
        path: the file.
        layout: ``"hls4ml"`` or ``"jetnet"``.
        n_jets: jets in the file.
        n_particles: particle rows per jet.
        particle_feature_names: names of the particle features in the file, in order.
        jet_feature_names: names of the jet-level features in the file, in order.
        has_images: whether the file holds jet images.
        jet_class: the class of every jet for a single-class file (JetNet), else None.
    """

    path: Path
    layout: str
    n_jets: int
    n_particles: int
    particle_feature_names: tuple[str, ...]
    jet_feature_names: tuple[str, ...]
    has_images: bool
    jet_class: str | None = None
    _handle: object = field(default=None, repr=False, compare=False)
    _pid: int = field(default=-1, repr=False, compare=False)

    # -- low-level access --------------------------------------------------------
    def h5(self):
        """The open h5py file (reopened after a fork, e.g. in DataLoader workers)."""
        import h5py

        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._handle

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    def read(self, key: str, rows=None) -> np.ndarray:
        """Rows of dataset ``key`` (all when ``rows`` is None); ``rows`` must be increasing."""
        ds = self.h5()[key]
        try:
            data = ds[()] if rows is None else ds[np.asarray(rows)]
        except OSError as exc:
            raise InputError(self.path, f"cannot read '{key}' ({exc}); the file is truncated or corrupt") from None
        data = np.asarray(data)
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            bad = np.argwhere(~np.isfinite(data))[0]
            row = int(bad[0]) if rows is None else int(np.asarray(rows)[bad[0]])
            raise InputError(self.path, f"non-finite value in '{key}' at jet {row}")
        return data

    # -- typed views ---------------------------------------------------------------
    def particles(self, rows=None, features=None) -> tuple[np.ndarray, np.ndarray]:
        """(particles (n, P, F) float32, mask (n, P) bool) for the named ``features``."""
        if self.layout == "jetnet":
            raw = self.read("particle_features", rows)
            mask = raw[..., 3] > 0
        else:
            raw = self.read("jetConstituentList", rows)
            mask = np.abs(raw).sum(axis=-1) > 0
        names = features or self.particle_feature_names
        columns = []
        for name in names:
            column = raw[..., self.particle_column(name)]
            if _is_log_feature(name):  # ln x of real particles (x > 0), 0 for padding: no log(0)
                real = mask & (column > 0)
                column = np.where(real, np.log(np.where(real, column, 1.0)), 0.0)
            columns.append(column)
        return np.stack(columns, axis=-1).astype(np.float32, copy=False), mask

    def particle_column(self, name: str) -> int:
        """Column of particle feature ``name`` in the file; ``log_<x>`` (derived: ln x) reads ``x``'s."""
        try:
            return feature_index(self.particle_feature_names, name[4:] if _is_log_feature(name) else name)
        except KeyError:
            raise InputError(
                self.path, f"no particle feature '{name}' (the file has {', '.join(self.particle_feature_names)})"
            ) from None

    def jet_features(self, rows=None, names=None) -> np.ndarray:
        """Jet-level features (n, len(names)) float32."""
        key = "jet_features" if self.layout == "jetnet" else "jets"
        raw = self.read(key, rows)
        if names is None:
            return raw.astype(np.float32, copy=False)
        try:
            cols = [feature_index(self.jet_feature_names, n) for n in names]
        except KeyError as exc:
            raise InputError(self.path, f"no jet feature {exc} (the file has: {', '.join(self.jet_feature_names)})") from None
        return raw[:, cols].astype(np.float32, copy=False)

    def labels(self) -> np.ndarray:
        """(N,) int64 class index into :data:`CLASS_NAMES`."""
        if self.jet_class is not None:
            return np.full(self.n_jets, CLASS_NAMES.index(self.jet_class), dtype=np.int64)
        if self.layout == "jetnet":
            raise InputError(self.path, "JetNet file without a class: name it as published (g150.hdf5, t30.hdf5, ...) or g/q/t/w/z.h5, or set attribute 'jet_class'")
        onehot = self.read("jets")[:, LABEL_COLUMNS]
        if not np.allclose(onehot.sum(axis=1), 1.0):
            raise InputError(self.path, "label columns -6:-1 of 'jets' are not one-hot")
        return onehot.argmax(axis=1).astype(np.int64)

    def images(self, rows=None) -> np.ndarray:
        if not self.has_images:
            raise InputError(self.path, "no 'jetImage' in this file; choose particle or high-level inputs")
        return self.read("jetImage", rows).astype(np.float32, copy=False)


def _is_log_feature(name) -> bool:
    """``log_pt``, ``log_e``, ...: the natural log of a stored feature (a derived column)."""
    return isinstance(name, str) and name.lower().startswith("log_") and len(name) > 4


def open_jet_file(path) -> JetFile:
    """Open and validate one hls4ml- or JetNet-layout file (no bulk data is read)."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or directory")
    if not path.is_file():
        raise InputError(path, "not a file")
    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise InputError(path, "not a readable HDF5 file (truncated or corrupt)") from None
    try:
        keys = set(handle.keys())
        if "particle_features" in keys:
            return _validate_jetnet(path, handle)
        missing = [k for k in HLS4ML_KEYS if k not in keys]
        if missing:
            raise InputError(
                path, f"missing key '{missing[0]}': not an hls4ml or JetNet jet file (has: {', '.join(sorted(keys)) or 'nothing'})"
            )
        return _validate_hls4ml(path, handle)
    except InputError:
        handle.close()
        raise
    except (OSError, KeyError, ValueError) as exc:
        handle.close()
        raise InputError(path, f"corrupt HDF5 structure ({exc})") from None


def _check_values(path: Path, dataset, key: str) -> None:
    """Jet arrays hold real numbers and at least one jet."""
    if dataset.dtype.kind not in "biuf":
        raise InputError(path, f"'{key}' has dtype {dataset.dtype}; jet arrays must hold real numbers")
    if dataset.shape[0] == 0:
        raise InputError(path, f"holds no jets ('{key}' has 0 rows)")


def jetnet_class_from_name(path) -> str | None:
    """Class of a JetNet file named as published (``g150.hdf5``, ``t30.hdf5``) or ``t.h5``; else None."""
    match = re.fullmatch(r"([a-z])(30|150)?", Path(path).stem.lower())
    return match.group(1) if match and match.group(1) in CLASS_NAMES else None


def _names(handle, key, default):
    if key not in handle:
        return tuple(default)
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in handle[key][()])


def _validate_hls4ml(path: Path, handle) -> JetFile:
    cons, jets = handle["jetConstituentList"], handle["jets"]
    if cons.ndim != 3:
        raise InputError(path, f"'jetConstituentList' must be (N, particles, features), got shape {cons.shape}")
    if jets.ndim != 2 or jets.shape[1] < 6:
        raise InputError(path, f"'jets' must be (N, features) with the one-hot label in columns -6:-1, got shape {jets.shape}")
    if cons.shape[0] != jets.shape[0]:
        raise InputError(path, f"'jetConstituentList' has {cons.shape[0]} jets but 'jets' has {jets.shape[0]}")
    _check_values(path, cons, "jetConstituentList")
    _check_values(path, jets, "jets")
    pnames = _names(handle, "particleFeatureNames", PARTICLE_FEATURES)
    if len(pnames) != cons.shape[2]:
        raise InputError(path, f"'particleFeatureNames' names {len(pnames)} features but 'jetConstituentList' has {cons.shape[2]}")
    jnames = _names(handle, "jetFeatureNames", JET_FEATURES)
    if len(jnames) != jets.shape[1]:
        raise InputError(path, f"'jetFeatureNames' names {len(jnames)} features but 'jets' has {jets.shape[1]}")
    has_images = "jetImage" in handle
    if has_images and handle["jetImage"].shape != (cons.shape[0], IMAGE_PIXELS, IMAGE_PIXELS):
        raise InputError(path, f"'jetImage' must be (N, {IMAGE_PIXELS}, {IMAGE_PIXELS}), got shape {handle['jetImage'].shape}")
    return JetFile(path, "hls4ml", int(cons.shape[0]), int(cons.shape[1]), pnames, jnames, has_images, None, handle, os.getpid())


def _validate_jetnet(path: Path, handle) -> JetFile:
    pf = handle["particle_features"]
    if pf.ndim != 3 or pf.shape[2] != 4:
        raise InputError(path, f"'particle_features' must be (N, particles, 4), got shape {pf.shape}")
    if "jet_features" in handle and handle["jet_features"].shape[0] != pf.shape[0]:
        raise InputError(path, f"'jet_features' has {handle['jet_features'].shape[0]} jets but 'particle_features' has {pf.shape[0]}")
    _check_values(path, pf, "particle_features")
    if "jet_features" in handle:
        _check_values(path, handle["jet_features"], "jet_features")
    jet_class = handle.attrs.get("jet_class")
    if isinstance(jet_class, bytes):
        jet_class = jet_class.decode()
    if jet_class is None:
        jet_class = jetnet_class_from_name(path)
    if jet_class is not None and jet_class not in CLASS_NAMES:
        raise InputError(path, f"unknown jet_class '{jet_class}' (known: {', '.join(CLASS_NAMES)})")
    return JetFile(
        path, "jetnet", int(pf.shape[0]), int(pf.shape[1]), JETNET_PARTICLE_FEATURES[:3], JETNET_JET_FEATURES,
        False, jet_class, handle, os.getpid(),
    )
