"""The flow-matching generator's networks (jetlab.models.epic, jetlab.models.flow) and its
sampler on real network outputs (the ODE solvers against the Gaussian oracle are tested in
tests/losses/test_flow_matching.py). Oracles: permuted, re-padded and perturbed inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jetlab.models import flow as flow_module
from jetlab.models.flow import ODE_SOLVERS, FlowGenerator


def _sets(batch=4, n_points=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n_points, 3, generator=generator)
    counts = torch.tensor([7, 3, 5, 1])[:batch]
    mask = torch.arange(n_points)[None] < counts[:, None]
    t = torch.rand(batch, generator=generator)
    return x, t, mask


@pytest.fixture(params=["epic", "transformer"])
def network(request):
    torch.manual_seed(0)
    return FlowGenerator(7, 3, net=request.param, hidden=16, global_dim=8, n_layers=2, time_dim=8, heads=2).eval()


def test_networks_are_permutation_equivariant(network):
    x, t, mask = _sets()
    out = network(x, t, mask)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(5))
    permuted = network(x[:, perm], t, mask[:, perm])
    torch.testing.assert_close(permuted, out[:, perm], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[0, 0], out[0, 1])  # particles do get different velocities


def test_padded_particles_never_influence_real_ones(network):
    x, t, mask = _sets()
    x.requires_grad_(True)
    out = network(x, t, mask)
    (out * mask[..., None]).sum().backward()
    assert (x.grad[~mask] == 0).all()      # no path from a padded input to a real output
    assert (x.grad[mask] != 0).any()
    assert (out[~mask] == 0).all()
    garbage = torch.where(mask[..., None], x.detach(), torch.full_like(x, 50.0))
    torch.testing.assert_close(network(garbage, t, mask), out.detach())
    # more padding (3 extra padded rows) changes no real output: padded rows neither enter the
    # pools nor are attended to, whatever the network made of them
    longer = torch.cat([x.detach(), torch.randn(4, 3, 3)], 1)
    longer_mask = torch.cat([mask, torch.zeros(4, 3, dtype=torch.bool)], 1)
    torch.testing.assert_close(network(longer, t, longer_mask)[:, :7], out.detach(), atol=1e-6, rtol=1e-5)
    # one set alone gives what it gives inside a batch (no leakage between sets)
    torch.testing.assert_close(network(x[1:2].detach(), t[1:2], mask[1:2]), out[1:2].detach(), atol=1e-6, rtol=1e-5)


def test_real_particles_interact(network):
    """The global vector (EPiC) / attention (transformer) carries information between particles."""
    x, t, mask = _sets()
    out = network(x, t, mask)
    moved = x.clone()
    moved[0, 3] += 1.0
    changed = network(moved, t, mask)
    assert not torch.allclose(changed[0, 0], out[0, 0])
    torch.testing.assert_close(changed[1:], out[1:])


@pytest.mark.parametrize("solver", ODE_SOLVERS)
def test_sample_respects_the_multiplicities(solver):
    torch.manual_seed(1)
    flow = FlowGenerator(6, 3, hidden=8, global_dim=4, n_layers=1, time_dim=4)
    counts = torch.tensor([6, 2, 4, 1, 3])
    points, mask = flow.sample(5, counts=counts, steps=3, solver=solver)
    assert points.shape == (5, 6, 3) and mask.shape == (5, 6)
    assert mask.sum(1).tolist() == counts.tolist() and mask[:, 0].all()
    assert (points[~mask] == 0).all() and torch.isfinite(points).all() and (points[mask] != 0).all()
    full, full_mask = flow.sample(2, steps=2, solver=solver)
    assert full_mask.all() and np.isfinite(full.numpy()).all()


def test_sampling_in_blocks_gives_the_sets_of_one_batch(network, monkeypatch):
    counts = torch.tensor([7, 3, 5, 1, 6, 2, 7])
    cond_network = FlowGenerator(7, 3, n_cond=2, hidden=16, global_dim=8, n_layers=2, time_dim=8).eval()
    cond = torch.randn(7, 2)
    for net, kwargs in ((network, {}), (cond_network, {"cond": cond})):
        results = []
        for block in (3, 1000):  # 3: blocks of 3, 3 and 1 sets; 1000: one batch
            monkeypatch.setattr(flow_module, "CPU_SAMPLE_BLOCK", block)
            torch.manual_seed(5)
            results.append(net.sample(7, counts=counts, steps=2, **kwargs))
        torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)
        assert results[0][1].sum(1).tolist() == counts.tolist()


def test_bad_network_settings():
    with pytest.raises(ValueError, match="unknown flow network"):
        FlowGenerator(5, 3, net="mlp")
    with pytest.raises(ValueError, match="multiple of heads"):
        FlowGenerator(5, 3, net="transformer", hidden=10, heads=4)
