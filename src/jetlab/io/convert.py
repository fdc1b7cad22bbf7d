"""hls4ml-layout jets → single-class JetNet files (``g30.hdf5``, ``t150.hdf5``, …).

JetNet (Kansal et al., arXiv:2106.11535) stores one class per file: ``particle_features``
(N, P, 4) = (η_rel, φ_rel, pT_rel, mask) of the P leading particles and ``jet_features``
(N, 4) = (pT, η, mass, n_particles). The generative-model literature (MPGAN, EPiC, flow
matching) trains and scores on these files, so :func:`write_jetnet_files` turns a directory
written by ``jetlab data generate`` (or the published hls4ml files) into them: the particles are
already pT-ordered, so the P leading ones of a 150-particle set are exactly the 30-particle
set of the same jets. ``n_particles`` counts the real particles among the P kept (what the
mask says), as in JetNet's files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jetlab.errors import InputError
from jetlab.io.jet_files import write_jetnet_file
from jetlab.io.jets import open_jets
from jetlab.io.layout import CLASS_NAMES

__all__ = ["jetnet_file_name", "write_jetnet_files"]

_PARTICLES = ("etarel", "phirel", "ptrel")
_JET = ("j_pt", "j_eta", "j_mass")


def jetnet_file_name(jet_class: str, n_particles: int) -> str:
    """The published naming: ``g30.hdf5``, ``t150.hdf5``."""
    return f"{jet_class}{n_particles}.hdf5"


def write_jetnet_files(source, out, *, n_particles: int | None = None,
                       classes: Sequence[str] | None = None) -> list[Path]:
    """Write ``out/<class><P>.hdf5`` for each class present in the hls4ml-layout ``source``.

    Args:
        source: an hls4ml-layout file or directory (``jetlab data generate`` output).
        out: directory for the JetNet files (created).
        n_particles: P, the leading particles kept (default: all the source has); at most the
            source's count.
        classes: the classes to write (default: every class the source holds).

    Returns:
        The written paths, in class order. Each file is written atomically.
    """
    jets = open_jets(source)
    if jets.layout != "hls4ml":
        raise InputError(jets.path, "is already in the JetNet layout")
    keep = jets.n_particles if n_particles is None else int(n_particles)
    if not 0 < keep <= jets.n_particles:
        raise InputError(jets.path, f"holds {jets.n_particles} particles per jet; cannot write {keep}")
    present = jets.class_counts()
    wanted = list(present) if classes is None else list(classes)
    for name in wanted:
        if name not in present:
            raise InputError(jets.path, f"no jets of class {name!r} (it holds {', '.join(present)})")
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in wanted}
    for file in jets.files:
        labels = file.labels()
        particles, mask = file.particles(features=_PARTICLES)
        summary = file.jet_features(names=_JET)
        for name in wanted:
            rows = labels == CLASS_NAMES.index(name)
            if rows.any():
                parts[name].append(_jetnet_rows(particles[rows, :keep], mask[rows, :keep], summary[rows]))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in wanted:
        particle_features = np.concatenate([p for p, _ in parts[name]])
        jet_features = np.concatenate([j for _, j in parts[name]])
        written.append(write_jetnet_file(out / jetnet_file_name(name, keep), particle_features, jet_features,
                                         jet_class=name))
    return written


def _jetnet_rows(particles: np.ndarray, mask: np.ndarray, summary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, P, 4) particle features with the mask column and (N, 4) jet features (padded particles
    are already exactly 0: the mask is "any feature non-zero")."""
    features = np.concatenate([particles, mask[..., None]], axis=-1).astype(np.float32)
    jet = np.concatenate([summary, mask.sum(axis=1, keepdims=True)], axis=1).astype(np.float32)
    return features, jet
