"""Traceable forms of the taggers for graph exporters (``torch.export`` / ONNX).

Each form computes the tagger's class probabilities ``softmax(logits)`` from the same
inputs with the same weights, using only operations a
graph exporter can record for any batch size:

* DNN, CNN, GarNet: the model itself.
* JEDI-net (both variants): the fast path's hand-differentiated edge sum and its
  data-dependent trimming of padding cannot be traced; :class:`~jetlab.models.DenseJEDINet`
  (the paper's one-hot ``R_r``, ``R_s`` matmuls) computes the same function with the same
  ``state_dict`` and traces fine (its ``R`` matrices become constants of the graph).
* GRU: ``pack_padded_sequence`` cannot be exported. :class:`TraceableGRU` runs the GRU over
  all ``N`` steps of the padded, real-particles-first sequence and reads the top layer's
  output at step ``n_b - 1``; a GRU is causal, so that is exactly the packed run's last
  hidden state ``h_{n_b}``.
"""

from __future__ import annotations

import torch
from torch import nn

from jetlab.models import DenseJEDINet, DenseJEDINetSumO, GRUTagger, JEDINet, JEDINetSumO

__all__ = ["Probabilities", "TraceableGRU", "traceable_form"]


class TraceableGRU(nn.Module):
    """:class:`~jetlab.models.GRUTagger` without packing: ``particles (B, N, F)``, ``mask (B, N)`` -> logits."""

    def __init__(self, tagger: GRUTagger):
        super().__init__()
        self.gru, self.head = tagger.gru, tagger.head

    def forward(self, particles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, N, _ = particles.shape
        # real particles first, in their given order: sort keys are all distinct, so no stable sort is needed
        positions = torch.arange(N, dtype=particles.dtype, device=particles.device)
        order = ((~mask).to(particles.dtype) * N + positions).argsort(dim=1)
        x = torch.gather(particles, 1, order.unsqueeze(-1).expand_as(particles))
        x = torch.where(mask.any(dim=1)[:, None, None], x, 0.0)  # an empty jet is one zero particle
        last = mask.sum(dim=1).clamp(min=1) - 1  # (B,) step of the last real particle
        outputs, _ = self.gru(x)  # (B, N, hidden): top layer's hidden state after every step
        h_last = torch.gather(outputs, 1, last[:, None, None].expand(B, 1, outputs.shape[-1])).squeeze(1)
        return self.head(h_last)


class Probabilities(nn.Module):
    """``softmax(module(*inputs), dim=1)``: class probabilities (B, C)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.module(*inputs), dim=1)


def _dense_jedinet(model: JEDINet) -> nn.Module:
    dense_cls = DenseJEDINetSumO if isinstance(model, JEDINetSumO) else DenseJEDINet
    dense = dense_cls(**model.hparams)
    dense.load_state_dict(model.state_dict())
    return dense


def traceable_form(model: nn.Module) -> tuple[Probabilities, str]:
    """``(module computing the model's probabilities, what it is)`` in eval mode."""
    if isinstance(model, (DenseJEDINet, DenseJEDINetSumO)):
        form, note = model, "the model itself"
    elif isinstance(model, JEDINet):
        form, note = _dense_jedinet(model), f"Dense{type(model).__name__}, the paper's one-hot R_r, R_s matrix form (same weights)"
    elif isinstance(model, GRUTagger):
        form, note = TraceableGRU(model), "GRU over all padded steps, read at each jet's last particle"
    else:
        form, note = model, "the model itself"
    return Probabilities(form).eval(), note
