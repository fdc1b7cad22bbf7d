"""Helpers shared by the JEDI-net tests (torch path and Triton kernels)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def prune_edge_networks():
    """``prune(fast, dense)``: the same magnitude pruning of half of each f_R weight in both
    models, then a step on the underlying ``weight_orig`` (as an optimiser would make)."""
    from torch.nn.utils import prune

    def prune_both(fast, dense):
        for model in (fast, dense):
            for layer in model.f_R.layers:
                prune.l1_unstructured(layer, "weight", amount=0.5)
        dense.load_state_dict(fast.state_dict())
        with torch.no_grad():
            for model in (fast, dense):
                for layer in model.f_R.layers:
                    layer.weight_orig.add_(0.25)

    return prune_both
