"""Classification: a tagger trained with cross-entropy on its softmax logits.

For a batch of B items with labels y (B,) and logits z = model(*inputs) (B, C)::

    loss = −1/B Σ_b log softmax(z_b)[y_b]          accuracy = 1/B Σ_b [argmax z_b = y_b]

With ``l1 = λ > 0`` the network is trained on ``loss + λ Σ_l Σ_ij |W_l,ij|`` over its weight
matrices (:func:`jetlab.models.weights.weight_l1_norm`; biases excluded), the L1
regularisation the hls4ml jet tagger was trained with before pruning (arXiv:1804.06913);
``loss`` stays the cross-entropy alone, the penalty is logged as ``l1_penalty``.

The model's ``input_keys`` name the batch entries it takes, in order (``("particles",
"mask")``, ``("hlf",)``, ``("image",)``); the label is ``batch["label"]``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jetlab.models.weights import weight_l1_norm
from jetlab.training.tasks.base import Task, Update

__all__ = ["ClassifyTask"]


class ClassifyTask(Task):
    """One network ``"model"``, cross-entropy, monitored by the validation loss."""

    name = "classify"

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, device="cpu", name: str | None = None,
                 l1: float = 0.0):
        super().__init__({"model": model}, {"model": optimizer}, device)
        self.input_keys = tuple(model.input_keys)
        self.l1 = float(l1)
        if name:
            self.name = name

    @property
    def model(self) -> nn.Module:
        return self.modules["model"]

    def _logits(self, batch):
        return self.model(*[batch[key] for key in self.input_keys])

    def train_step(self, batch, update: Update) -> dict[str, float]:
        batch = self.to_device(batch)
        logits = self._logits(batch)
        loss = F.cross_entropy(logits, batch["label"])
        numbers = {}
        if self.l1:
            penalty = self.l1 * weight_l1_norm(self.model)
            update("model", loss + penalty)
            numbers["l1_penalty"] = penalty.item()
        else:
            update("model", loss)
        with torch.no_grad():
            accuracy = (logits.argmax(dim=1) == batch["label"]).double().mean()
        return {"loss": loss.item(), "accuracy": accuracy.item(), **numbers}

    def validate_step(self, batch) -> dict[str, float]:
        batch = self.to_device(batch)
        logits = self._logits(batch).double()
        return {"loss": F.cross_entropy(logits, batch["label"]).item(),
                "accuracy": (logits.argmax(dim=1) == batch["label"]).double().mean().item()}

    @torch.no_grad()
    def predict(self, batches) -> tuple[np.ndarray, np.ndarray]:
        """``(labels (N,), softmax probabilities (N, C))`` for every item of ``batches``."""
        self.model.eval()
        labels, probs = [], []
        for batch, _, _ in batches:
            batch = self.to_device(batch)
            labels.append(batch["label"].cpu().numpy())
            probs.append(torch.softmax(self._logits(batch).double(), dim=1).cpu().numpy())
        if not labels:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0))
        return np.concatenate(labels), np.concatenate(probs)
