"""Torch ``Dataset`` views of a directory of jet files.

:class:`JetFiles` is a validated set of hls4ml- or JetNet-layout files (a directory,
one file, or the cached default set); :meth:`JetFiles.split` cuts it reproducibly into
train/validation/test :class:`JetSplit` datasets that share standardisation
statistics computed on the training split only.

Reading is lazy: opening touches only shapes and labels; ``split[i]`` reads one row,
``split.__getitems__`` (used by ``DataLoader`` for whole batches) one sorted slice per
file, and :meth:`JetSplit.tensors` reads the split whole when it fits in memory.

A sample is a dict of tensors, with the keys asked for in ``inputs``:

============ ============== ==============================================================
key          shape, dtype   content
============ ============== ==============================================================
particles    (P, F) float32 chosen particle features, standardised; padded rows exactly 0
mask         (P,) bool      True for real particles
image        (1, 100, 100)  jet pT image normalised to unit sum
hlf          (16,) float32  :data:`~jetlab.io.layout.HLF_FEATURES`, standardised
label        () int64       index into :data:`~jetlab.io.layout.CLASS_NAMES`
jet          (4,) float32   raw (pT, eta, mass, multiplicity)
points       (P, 2) float32 raw (eta_rel, phi_rel), padded rows 0 (ParticleNet's coordinates)
momenta      (P, 4) float32 raw (px, py, pz, E) in GeV, padded rows 0 (ParT's pair features)
============ ============== ==============================================================

Particle feature names are the files' (:data:`~jetlab.io.layout.PARTICLE_FEATURES`) plus
derived ``log_<name>`` columns, e.g. ``log_pt``: ``ln x`` for real particles, 0 for padding.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jetlab.errors import InputError
from jetlab.io.jet_files import JetFile, open_jet_file
from jetlab.io.layout import CLASS_NAMES, HLF_FEATURES
from jetlab.io.manifest import check_complete
from jetlab.io.split import split_indices

__all__ = ["INPUT_KEYS", "RAW_PARTICLE_KEYS", "JetFiles", "JetSplit", "constant_features", "frozen_particle_features", "open_jets"]

log = logging.getLogger(__name__)

#: unstandardised particle columns some taggers take besides ``particles``: key -> feature names
RAW_PARTICLE_KEYS: dict[str, tuple[str, ...]] = {"points": ("etarel", "phirel"), "momenta": ("px", "py", "pz", "e")}
INPUT_KEYS = ("particles", "mask", "image", "hlf", "label", "jet", *RAW_PARTICLE_KEYS)
#: at most this many training jets are read to compute the standardisation statistics
STATS_SAMPLE = 20_000
_JET_SUMMARY = ("j_pt", "j_eta", "j_mass", "j_multiplicity")


def open_jets(path, n_particles: int | None = None) -> JetFiles:
    """Open a directory of jet files (``*.h5``, ``*.hdf5``) or a single file.

    ``n_particles``, when given, must match the files: a 30-particle model cannot be
    fed 100-particle files by accident. A directory written by ``jetlab data generate``
    must hold every file its ``generation.json`` promises (InputError "incomplete" if not).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(path, "no such file or directory")
    if path.is_dir():
        names = sorted(p for p in path.iterdir() if p.suffix in (".h5", ".hdf5") and not p.name.startswith("."))
        if not names:
            check_complete(path, {})  # an interrupted generation says so
            raise InputError(path, "no .h5/.hdf5 jet files in this directory")
    else:
        names = [path]
    files = [open_jet_file(p) for p in names]
    if path.is_dir():
        check_complete(path, {f.path.name: f.n_jets for f in files})
    counts = {f.n_particles for f in files}
    if len(counts) > 1:
        detail = ", ".join(f"{f.path.name}: {f.n_particles}" for f in files[:4])
        raise InputError(path, f"files disagree on particles per jet ({detail})")
    layouts = {f.layout for f in files}
    if len(layouts) > 1:
        raise InputError(path, "mixes hls4ml and JetNet layout files")
    found = counts.pop()
    if n_particles is not None and n_particles != found:
        raise InputError(path, f"has {found} particles per jet but {n_particles} were asked for (use --particles {found})")
    return JetFiles(path, files)


class JetFiles:
    """A validated collection of jet files with a global jet index."""

    def __init__(self, path: Path, files: list[JetFile]):
        self.path = Path(path)
        self.files = files
        self.offsets = np.cumsum([0] + [f.n_jets for f in files])
        self._labels: np.ndarray | None = None

    @property
    def n_jets(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_particles(self) -> int:
        return self.files[0].n_particles

    @property
    def layout(self) -> str:
        return self.files[0].layout

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES

    @property
    def particle_feature_names(self) -> tuple[str, ...]:
        return tuple(self.files[0].particle_feature_names)

    @property
    def has_images(self) -> bool:
        return all(f.has_images for f in self.files)

    def class_counts(self) -> dict[str, int]:
        """Jets per class, for the classes present: {"g": 1000, "t": 1000, ...} (label order)."""
        counts = np.bincount(self.labels(), minlength=len(CLASS_NAMES))
        return {name: int(n) for name, n in zip(CLASS_NAMES, counts) if n > 0}

    def labels(self) -> np.ndarray:
        if self._labels is None:
            self._labels = np.concatenate([f.labels() for f in self.files])
        return self._labels

    def locate(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global jet indices -> (file number, row in file)."""
        index = np.asarray(index, dtype=np.int64)
        file_no = np.searchsorted(self.offsets, index, side="right") - 1
        return file_no, index - self.offsets[file_no]

    def split(
        self,
        fractions: Sequence[float] = (0.7, 0.15, 0.15),
        seed: int = 0,
        *,
        inputs: Sequence[str] = ("particles", "mask", "label"),
        particle_features: Sequence[str] | None = None,
        standardize: bool = True,
        classes: Sequence[str] | None = None,
    ) -> tuple[JetSplit, JetSplit, JetSplit]:
        """Reproducible train/validation/test split (a seeded permutation of all jets).

        The split of a jet depends only on ``seed`` and the set of files, not on
        ``inputs`` or ``classes``; ``classes`` then drops the other classes from each part.
        """
        unknown = [k for k in inputs if k not in INPUT_KEYS]
        if unknown:
            raise ValueError(f"unknown input(s) {unknown}; known: {INPUT_KEYS}")
        if "image" in inputs and not self.has_images:
            raise InputError(self.path, "has no jet images ('jetImage'); the CNN needs them")
        if "hlf" in inputs and self.layout == "jetnet":
            raise InputError(self.path, "JetNet files have no high-level features; the DNN needs hls4ml-layout files")
        features = tuple(particle_features or self.particle_feature_names)
        for name in features:
            self.files[0].particle_column(name)  # fails early on an unknown feature name

        parts = list(split_indices(self.n_jets, fractions, seed))
        if classes is not None:
            bad = [c for c in classes if c not in CLASS_NAMES]
            if bad:
                raise InputError(self.path, f"unknown jet class {bad[0]!r} (known: {', '.join(CLASS_NAMES)})")
            wanted = np.isin(self.labels(), [CLASS_NAMES.index(c) for c in classes])
            parts = [p[wanted[p]] for p in parts]
            if len(parts[0]) == 0:
                raise InputError(self.path, f"no jets of class {', '.join(classes)}")
        train = JetSplit(self, parts[0], tuple(inputs), features, stats=None, standardize=standardize)
        val = JetSplit(self, parts[1], tuple(inputs), features, stats=train.stats, standardize=standardize)
        test = JetSplit(self, parts[2], tuple(inputs), features, stats=train.stats, standardize=standardize)
        return train, val, test

    def read(self, index: np.ndarray, key: str, particle_features: Sequence[str] | None = None):
        """Raw (unstandardised) arrays for global ``index``, in that order.

        ``key``: "particles" returns (particles, mask); "image", "hlf", "label", "jet" one array.
        """
        index = np.asarray(index, dtype=np.int64)
        file_no, rows = self.locate(index)
        outputs: list = []
        positions: list = []
        for f in np.unique(file_no):
            sel = np.nonzero(file_no == f)[0]
            order = np.argsort(rows[sel], kind="stable")
            sel = sel[order]
            uniq, inverse = np.unique(rows[sel], return_inverse=True)
            outputs.append(_take(_read_one(self.files[f], key, uniq, particle_features), inverse))
            positions.append(sel)
        where = np.empty(len(index), dtype=np.int64)
        where[np.concatenate(positions)] = np.arange(len(index))
        if isinstance(outputs[0], tuple):
            return tuple(np.concatenate([o[i] for o in outputs])[where] for i in range(len(outputs[0])))
        return np.concatenate(outputs)[where]


def _take(value, index):
    if isinstance(value, tuple):
        return tuple(v[index] for v in value)
    return value[index]


def _read_one(file: JetFile, key: str, rows: np.ndarray, particle_features):
    if key == "particles":
        return file.particles(rows, particle_features)
    if key in RAW_PARTICLE_KEYS:
        return file.particles(rows, RAW_PARTICLE_KEYS[key])[0]
    if key == "image":
        return file.images(rows)
    if key == "hlf":
        return file.jet_features(rows, HLF_FEATURES)
    if key == "label":
        return file.labels()[rows]
    if key == "jet":
        if file.layout == "jetnet":
            return file.jet_features(rows)
        return file.jet_features(rows, _JET_SUMMARY)
    raise ValueError(key)


class JetSplit:
    """One part of a split: a map-style torch ``Dataset`` of jet samples (see module doc)."""

    def __init__(self, source: JetFiles, index: np.ndarray, inputs: tuple[str, ...], particle_features: tuple[str, ...], *, stats: dict | None, standardize: bool):
        self.source = source
        self.index = np.asarray(index, dtype=np.int64)
        self.inputs = inputs
        self.particle_features = particle_features
        self.standardize = standardize
        self.stats = stats if stats is not None else (self._compute_stats() if standardize else {})

    def __len__(self) -> int:
        return len(self.index)

    def labels(self) -> np.ndarray:
        return self.source.labels()[self.index]

    def _compute_stats(self) -> dict:
        """Mean and std of particle features (real particles only) and HLFs on this split."""
        sample = self.index[: STATS_SAMPLE]
        stats: dict = {}
        if "particles" in self.inputs and len(sample):
            parts, mask = self.source.read(sample, "particles", self.particle_features)
            real = parts[mask]
            stats["particles_mean"] = real.mean(axis=0).astype(np.float32)
            stats["particles_std"] = _safe_std(real.std(axis=0))
        if "hlf" in self.inputs and len(sample):
            hlf = self.source.read(sample, "hlf")
            stats["hlf_mean"] = hlf.mean(axis=0).astype(np.float32)
            stats["hlf_std"] = _safe_std(hlf.std(axis=0))
        return stats

    def arrays(self, positions) -> dict[str, np.ndarray]:
        """Batched numpy arrays for positions (0 <= p < len(self)) of this split."""
        index = self.index[np.asarray(positions, dtype=np.int64)]
        out: dict[str, np.ndarray] = {}
        for key in self.inputs:
            if key == "mask":
                continue
            if key == "particles":
                parts, mask = self.source.read(index, "particles", self.particle_features)
                if self.standardize and "particles_mean" in self.stats:
                    parts = (parts - self.stats["particles_mean"]) / self.stats["particles_std"]
                    parts = np.where(mask[..., None], parts, 0.0).astype(np.float32)
                out["particles"] = parts
                if "mask" in self.inputs:
                    out["mask"] = mask
            elif key == "hlf":
                hlf = self.source.read(index, "hlf")
                if self.standardize and "hlf_mean" in self.stats:
                    hlf = (hlf - self.stats["hlf_mean"]) / self.stats["hlf_std"]
                out["hlf"] = hlf.astype(np.float32)
            elif key == "image":
                image = self.source.read(index, "image")
                total = image.sum(axis=(1, 2), keepdims=True)
                out["image"] = (image / np.where(total > 0, total, 1.0))[:, None].astype(np.float32)
            else:
                out[key] = self.source.read(index, key)
        if "mask" in self.inputs and "mask" not in out:
            out["mask"] = self.source.read(index, "particles", self.particle_features)[1]
        return out

    def __getitem__(self, i: int) -> dict:
        import torch

        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return {k: torch.from_numpy(np.asarray(v[0])) for k, v in self.arrays([i % len(self)]).items()}

    def __getitems__(self, positions: list[int]) -> list[dict]:
        import torch

        batch = self.arrays(positions)
        return [{k: torch.from_numpy(np.asarray(v[j])) for k, v in batch.items()} for j in range(len(positions))]

    def tensors(self) -> dict:
        """The whole split as stacked tensors (reads everything into memory)."""
        import torch

        if len(self) == 0:
            return {}
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.arrays(np.arange(len(self))).items()}


def _safe_std(std: np.ndarray) -> np.ndarray:
    return np.where(std > 1e-8, std, 1.0).astype(np.float32)


def _varies(values: np.ndarray) -> np.ndarray:
    """(F,) bool: column f of ``values`` (n, F) takes more than one value (0 rows: False)."""
    if len(values) == 0:
        return np.zeros(values.shape[-1], dtype=bool)
    return (values != values[:1]).any(axis=0)


def constant_features(particles: np.ndarray, mask: np.ndarray | None, names, reference_varies=None) -> list[str]:
    """Names of particle features that are constant over the real particles of ``particles``.

    particles (N, P, F), mask (N, P) bool (None: every row is real), names (F,).
    ``reference_varies`` (F,) bool, e.g. the training split's ``stats["particles_varies"]``:
    only features that *did* vary there are reported (a column that was always constant,
    like a JetNet mask, is no news). Names lose the files' ``j1_`` prefix. A feature zeroed
    or frozen in a test file while the model learnt from it silently ruins the scores:
    callers warn with these names.
    """
    particles = np.asarray(particles)
    real = particles.reshape(-1, particles.shape[-1]) if mask is None else particles[np.asarray(mask, dtype=bool)]
    flat = ~_varies(real)
    if reference_varies is not None:
        flat &= np.asarray(reference_varies, dtype=bool)
    return [str(name).removeprefix("j1_") for name, is_flat in zip(names, flat) if is_flat]


def frozen_particle_features(split: JetSplit, reference) -> list[str]:
    """:func:`constant_features` of ``split``'s particles (its first :data:`STATS_SAMPLE` jets,
    raw values) that vary in ``reference``: the training :class:`JetSplit`, or its ``stats``
    (e.g. from a model file; a feature that was constant there has the clamped std 1.0
    exactly, see :func:`_safe_std`). [] when ``split`` has no particle inputs."""
    if "particles" not in split.inputs or len(split) == 0:
        return []
    if isinstance(reference, JetSplit):
        varies = _varies(_real_particles(reference))
    elif "particles_std" in reference:
        varies = np.asarray(reference["particles_std"]) != 1.0
    else:
        return []
    return constant_features(_real_particles(split)[None], None, split.particle_features, varies)


def _real_particles(split: JetSplit) -> np.ndarray:
    """(n_real, F) raw particle features of the real particles of ``split``'s first jets."""
    parts, mask = split.source.read(split.index[:STATS_SAMPLE], "particles", split.particle_features)
    return parts[mask]
