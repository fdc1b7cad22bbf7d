"""Optimal-transport pairing of noise and data particles inside each set
(jetlab.losses.flow_matching.ot_pair_particles, ``pairing="ot"``).

Oracles: a brute-force minimum over all permutations of a 4-particle set; the independent
pairing (the identity permutation), which the OT pairing can never do worse than; the padded
rows, which must come back unchanged and take no part in the matching.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from jetlab.losses.flow_matching import flow_matching_loss, ot_pair_particles


def _cost(x0, x1, mask):
    """(B,) Σ over real particles of ‖x0 − x1‖²."""
    return ((x0 - x1).pow(2).sum(-1) * mask).sum(-1)


def _sets(batch=64, particles=12, features=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch, particles, features, generator=g, dtype=torch.float64)
    x1 = 2.0 + 0.5 * torch.randn(batch, particles, features, generator=g, dtype=torch.float64)
    counts = torch.randint(1, particles + 1, (batch,), generator=g)
    mask = torch.arange(particles) < counts.unsqueeze(1)
    return x0, x1, mask


def test_ot_pairing_is_the_brute_force_minimum_on_four_particle_sets():
    x0, x1, _ = _sets(batch=20, particles=4)
    paired = ot_pair_particles(x0, x1)
    for k in range(len(x0)):
        best = min(float((x0[k, list(p)] - x1[k]).pow(2).sum()) for p in itertools.permutations(range(4)))
        assert float((paired[k] - x1[k]).pow(2).sum()) == pytest.approx(best, rel=1e-12)


def test_ot_pairing_never_costs_more_than_the_independent_one_and_permutes_only_real_particles():
    x0, x1, mask = _sets()
    # an attractive padded data particle at a noise particle's place must not change the matching
    x1_padded = torch.where(mask.unsqueeze(-1), x1, x0.flip(1))
    paired = ot_pair_particles(x0, x1_padded, mask)
    assert torch.equal(paired, ot_pair_particles(x0, x1, mask))
    independent, ot = _cost(x0, x1, mask), _cost(paired, x1, mask)
    assert (ot <= independent + 1e-12).all() and (ot < independent - 1e-6).float().mean() > 0.5
    assert torch.equal(paired[~mask], x0[~mask])   # padded rows untouched
    for k in range(len(x0)):                      # the real rows: the same noise, re-ordered
        real = mask[k]
        assert torch.equal(paired[k][real].sort(0).values, x0[k][real].sort(0).values)


def test_real_particles_anywhere_in_the_set_are_matched_as_when_they_come_first():
    x0, x1, mask = _sets(batch=16, particles=8, seed=2)
    shuffle = torch.randperm(8, generator=torch.Generator().manual_seed(3))
    paired = ot_pair_particles(x0[:, shuffle], x1[:, shuffle], mask[:, shuffle])
    assert torch.equal(paired, ot_pair_particles(x0, x1, mask)[:, shuffle])


def test_the_loss_trains_on_the_paired_noise():
    x0, x1, mask = _sets(batch=8, particles=6, seed=1)
    t = torch.rand(8, dtype=torch.float64)
    field = torch.nn.Linear(3, 3).double()

    def velocity(x, time, m):
        return field(x) * time.view(-1, 1, 1)

    with torch.no_grad():
        ot = flow_matching_loss(velocity, x1, mask, t=t, x0=x0, pairing="ot")
        explicit = flow_matching_loss(velocity, x1, mask, t=t, x0=ot_pair_particles(x0, x1, mask))
        independent = flow_matching_loss(velocity, x1, mask, t=t, x0=x0)
    assert float(ot) == float(explicit) != float(independent)
    with pytest.raises(ValueError, match="unknown pairing"):
        flow_matching_loss(velocity, x1, mask, t=t, x0=x0, pairing="sinkhorn")
