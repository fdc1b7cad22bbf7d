"""The test split of a trained tagger run, rebuilt to check an exported model against PyTorch.

A run directory RUN (``jetlab tagger train``) records the jet files (``config.data``,
None = the cached default set), the split (``fractions``, ``split_seed``) and, in
RUN/model.pt, the training-split standardisation. :func:`load_run_test_set` reproduces the
test jets exactly as training evaluated them (same permutation, same statistics), so the
PyTorch probabilities it yields equal RUN/predictions.npz.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from jetlab.data.default import resolve_jets
from jetlab.errors import InputError
from jetlab.io import open_jets, split_indices
from jetlab.io.jets import JetSplit
from jetlab.models.registry import short_name
from jetlab.training.tagger import load_tagger
from jetlab.utils.progress import progress

__all__ = ["RunTestSet", "batched_probabilities", "load_run_test_set", "torch_probabilities"]


@dataclasses.dataclass
class RunTestSet:
    """A trained tagger and its test jets.

    ``inputs`` maps each of the model's ``input_keys`` to a tensor with the jets on the
    first axis (``hlf (N, 16)``, ``image (N, 1, H, W)``, ``particles (N, P, F)`` and
    ``mask (N, P)``); ``labels`` is (N,) int64.
    """

    run: Path
    model: torch.nn.Module
    info: dict
    inputs: dict[str, torch.Tensor]
    labels: np.ndarray
    data: str

    @property
    def input_keys(self) -> tuple[str, ...]:
        return tuple(self.info["input_keys"])

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    @property
    def model_name(self) -> str:
        """The registry name, or a user model's class name (a file name, not its FILE:Class spec)."""
        return short_name(str(self.info["model_name"]))

    def __len__(self) -> int:
        return len(self.labels)


def load_run_test_set(run: str | os.PathLike, *, max_jets: int | None = None) -> RunTestSet:
    """RUN's model (eval mode) and its first ``max_jets`` test jets (all when None).

    Raises :class:`~jetlab.errors.InputError` when RUN holds no model.pt or its jet
    files are gone.
    """
    run = Path(run)
    model, info = load_tagger(run)
    config = info.get("config") or {}
    n_particles = int(info["n_particles"])
    jets = open_jets(config["data"], n_particles) if config.get("data") else resolve_jets(None, n_particles)
    fractions = tuple(config.get("fractions") or (0.7, 0.15, 0.15))
    test_index = split_indices(jets.n_jets, fractions, int(config.get("split_seed", 0)))[2]
    if max_jets is not None:
        test_index = test_index[: max(0, int(max_jets))]
    stats = {k: np.asarray(v, dtype=np.float32) for k, v in (info.get("stats") or {}).items()}
    input_keys = tuple(info["input_keys"])
    test = JetSplit(jets, test_index, (*input_keys, "label"), tuple(info["particle_features"]),
                    stats=stats, standardize=bool(stats))
    tensors = test.tensors()
    if not tensors:
        raise InputError(jets.path, "the run's test split is empty: nothing to check the export on")
    labels = tensors.pop("label").numpy().astype(np.int64)
    return RunTestSet(run, model, info, {k: tensors[k] for k in input_keys}, labels, str(jets.path))


def batched_probabilities(predict: Callable[..., np.ndarray], inputs: dict, keys: Sequence[str], *,
                          batch_size: int = 500, progress_desc: str | None = None) -> np.ndarray:
    """``predict(*[batch[k] for k in keys]) -> (b, C)`` over ``inputs`` in batches: (N, C) float64."""
    n = len(next(iter(inputs.values())))
    starts = range(0, n, batch_size)
    if progress_desc is not None:
        starts = progress(starts, total=len(starts), desc=progress_desc, unit="batch")
    parts = [np.asarray(predict(*[inputs[k][i:i + batch_size] for k in keys]), dtype=np.float64) for i in starts]
    return np.concatenate(parts).reshape(n, -1)


@torch.no_grad()
def torch_probabilities(model: torch.nn.Module, test: RunTestSet, batch_size: int = 500) -> np.ndarray:
    """Softmax of the PyTorch model's logits on every test jet (float64, as in predictions.npz)."""
    return batched_probabilities(lambda *x: torch.softmax(model(*x).double(), dim=1).numpy(),
                                 test.inputs, test.input_keys, batch_size=batch_size)
