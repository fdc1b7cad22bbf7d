"""The data of the set generators: fixed-size point sets, split, standardised.

:func:`load_point_sets` reads what ``--data`` names and splits it with
:func:`jetlab.io.split_indices` (the split the taggers use):

* ``jets`` (jetlab's default generated jets) or any hls4ml / JetNet path: the
  (η_rel, φ_rel, pT_rel) of the P leading particles of one class;
* ``mnist-superpixels`` / ``mnist-sparse`` (the cached default point sets) or a point-set
  file or directory written by ``jetlab data mnist``: (x, y, intensity).

:class:`Normalisation` is the per-feature standardisation over real points of the training
split (optionally of log pT_rel), and the multiplicity distribution the GAN draws set sizes
from; :func:`postprocess_jets` turns generated relative sets into physical jets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from jetlab.choices import DEFAULT_JET_DATA
from jetlab.data.default import resolve_jets
from jetlab.data.mnist import mnist_points
from jetlab.errors import InputError, JetlabError
from jetlab.io import detect_layout, open_dataset, split_indices

__all__ = ["DEFAULT_JET_DATA", "JET_FEATURES", "MNIST_DATASETS", "Normalisation", "PointSets", "load_point_sets",
           "postprocess_jets", "with_mask_column"]

MNIST_DATASETS = ("mnist-superpixels", "mnist-sparse")
JET_FEATURES = ("etarel", "phirel", "ptrel")
_LOG_FLOOR = 1e-8


@dataclasses.dataclass
class PointSets:
    """Raw (unnormalised) point sets split into train / val / test: ``train`` etc. (N, P, F)
    float32, ``train_mask`` etc. (N, P) bool."""

    kind: str                                  # "jets" | "mnist"
    name: str                                  # e.g. "jets:g" or "mnist-superpixels"
    feature_names: tuple[str, ...]
    n_coords: int                              # leading features that are coordinates
    train: np.ndarray
    train_mask: np.ndarray
    val: np.ndarray
    val_mask: np.ndarray
    test: np.ndarray
    test_mask: np.ndarray

    @property
    def n_points(self) -> int:
        return int(self.train.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.train.shape[2])


def load_point_sets(data: str, *, jet_class: str = "g", particles: int = 30, split_seed: int = 0,
                    fractions: Sequence[float] = (0.7, 0.15, 0.15), max_train: int = 0) -> PointSets:
    """The train/val/test point sets ``data`` names (module docstring)."""
    if data in MNIST_DATASETS:
        return _mnist_sets(mnist_points(data.removeprefix("mnist-")), data, split_seed, fractions, max_train)
    if data == DEFAULT_JET_DATA:
        return _jet_sets(resolve_jets(None, particles), jet_class, split_seed, fractions, max_train)

    path = Path(data)
    if not path.exists():
        raise InputError(path, f"no such file or directory (give a directory of hls4ml files, a JetNet file, a "
                               f"point-set file of `jetlab data mnist`, '{DEFAULT_JET_DATA}' or one of "
                               f"{', '.join(MNIST_DATASETS)})")
    layout = detect_layout(path)
    if layout == "mnist-points":
        return _mnist_sets(open_dataset(path), f"mnist:{path}", split_seed, fractions, max_train)
    if layout == "mnist-idx":
        raise InputError(path, "holds MNIST images; turn them into point sets first with "
                               f"`jetlab data mnist --idx {path} --out DIR` and train on DIR")
    return _jet_sets(open_dataset(path, n_particles=particles), jet_class, split_seed, fractions, max_train)


def _mnist_sets(sets, name: str, split_seed: int, fractions, max_train: int) -> PointSets:
    points = sets.points.numpy().astype(np.float32)
    mask = sets.mask.numpy().astype(bool)
    train_idx, val_idx, test_idx = split_indices(len(points), fractions, split_seed)
    if max_train:
        train_idx = train_idx[:max_train]
    return PointSets(kind="mnist", name=name, feature_names=("x", "y", "intensity"), n_coords=2,
                     train=points[train_idx], train_mask=mask[train_idx], val=points[val_idx],
                     val_mask=mask[val_idx], test=points[test_idx], test_mask=mask[test_idx])


def _jet_sets(jets, jet_class: str, split_seed: int, fractions, max_train: int) -> PointSets:
    if jet_class not in jets.class_names:
        raise JetlabError(f"{jets.path}: no jet class {jet_class!r}; it holds {', '.join(jets.class_names)}")
    splits = jets.split(tuple(fractions), seed=split_seed, inputs=("particles", "mask"),
                        particle_features=JET_FEATURES, standardize=False, classes=[jet_class])
    arrays = []
    for split in splits:
        tensors = split.tensors()
        if not tensors:
            arrays.append((np.zeros((0, jets.n_particles, 3), np.float32), np.zeros((0, jets.n_particles), bool)))
        else:
            arrays.append((tensors["particles"].numpy().astype(np.float32), tensors["mask"].numpy().astype(bool)))
    (train, train_mask), (val, val_mask), (test, test_mask) = arrays
    if max_train:
        train, train_mask = train[:max_train], train_mask[:max_train]
    return PointSets(kind="jets", name=f"jets:{jet_class}", feature_names=JET_FEATURES, n_coords=2,
                     train=train, train_mask=train_mask, val=val, val_mask=val_mask, test=test, test_mask=test_mask)


class Normalisation:
    """Per-feature standardisation over real points, ``x_norm = (f(x) − mean) / std``, and the
    multiplicity distribution of the training sets.

    ``f`` is the identity, or ``log`` for the columns in ``log_columns`` (jets with
    ``log_pt``: pT_rel is learned as log pT_rel, so generated pT_rel = exp(...) > 0).
    :meth:`encode` maps raw sets (B, P, F) + mask (B, P) to the model tensor (B, P, F)
    (padded rows 0); :meth:`decode` inverts it. ``count_probs`` (P + 1,) is the fraction of
    training sets with k real points; :meth:`sample_counts` draws generated multiplicities
    from it (the first k points real), as MPGAN does.
    """

    def __init__(self, mean, std, count_probs, log_columns=()):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.count_probs = np.asarray(count_probs, dtype=np.float64)
        self.log_columns = tuple(int(c) for c in log_columns)

    @classmethod
    def fit(cls, points: np.ndarray, mask: np.ndarray, log_columns=()) -> Normalisation:
        real = points[mask].astype(np.float64)
        for c in log_columns:
            real[:, c] = np.log(np.clip(real[:, c], _LOG_FLOOR, None))
        std = real.std(0)
        counts = np.bincount(mask.sum(1), minlength=mask.shape[1] + 1)
        return cls(real.mean(0), np.where(std > 0, std, 1.0), counts / counts.sum(), log_columns)

    def state_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "count_probs": self.count_probs.tolist(),
                "log_columns": list(self.log_columns)}

    @classmethod
    def from_state_dict(cls, state: dict) -> Normalisation:
        return cls(state["mean"], state["std"], state["count_probs"], state.get("log_columns", ()))

    @property
    def n_features(self) -> int:
        return len(self.mean)

    @property
    def always_full(self) -> bool:
        """Every training set had all P points real."""
        return bool(self.count_probs[-1] == 1.0)

    def sample_counts(self, n: int, device) -> torch.Tensor | None:
        """(n,) multiplicities drawn from the training sets (global torch RNG); None when every
        training set was full."""
        if self.always_full:
            return None
        probs = torch.as_tensor(self.count_probs, dtype=torch.float64)
        return torch.multinomial(probs, n, replacement=True).to(device)

    def _columns(self, x: torch.Tensor, fn) -> torch.Tensor:
        if not self.log_columns:
            return x
        columns = list(x.unbind(-1))
        for c in self.log_columns:
            columns[c] = fn(columns[c])
        return torch.stack(columns, dim=-1)

    def encode(self, points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.mean, device=points.device)
        std = torch.as_tensor(self.std, device=points.device)
        transformed = self._columns(points, lambda v: torch.log(v.clamp_min(_LOG_FLOOR)))
        return torch.where(mask.unsqueeze(-1), (transformed - mean) / std, torch.zeros_like(points))

    def decode_differentiable(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features (B, P, F) of a model tensor, keeping the graph."""
        raw = x * torch.as_tensor(self.std, device=x.device) + torch.as_tensor(self.mean, device=x.device)
        return self._columns(raw, lambda v: torch.exp(v.clamp_max(10.0)))

    def decode(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        points = self.decode_differentiable(x.detach()).cpu().numpy().astype(np.float32)
        mask = mask.cpu().numpy().astype(bool)
        return np.where(mask[..., None], points, 0.0).astype(np.float32), mask


def postprocess_jets(points: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Physical jets from generated relative sets: particles with pT_rel <= 0 are dropped,
    the rest sorted by decreasing pT_rel (real first) and padded rows set to 0."""
    mask = mask & (points[..., 2] > 0)
    key = np.where(mask, points[..., 2], -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")
    points = np.take_along_axis(points, order[..., None], axis=1)
    mask = np.take_along_axis(mask, order, axis=1)
    return np.where(mask[..., None], points, 0.0).astype(np.float32), mask


def with_mask_column(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, P, F) points and (N, P) mask -> (N, P, F + 1) with the mask as the last column."""
    return np.concatenate([points, mask[..., None].astype(points.dtype)], axis=-1)
