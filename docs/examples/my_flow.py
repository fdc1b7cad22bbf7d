"""A generator of your own, trained by jetlab: ``jetlab fastsim train --model docs/examples/my_flow.py:MyVelocity``.

jetlab's user generators are flow-matching velocity networks (Lipman et al.,
arXiv:2210.02747): jetlab draws the time t and the noise, trains the network on the
flow-matching loss and samples by integrating dx/dt = v(x, t) from noise (its ``flow`` recipe:
multiplicities, jet conditions, ODE solver and steps are jetlab's ``--ode-solver``,
``--ode-steps``, ``--flow-condition``, ``--sigma-min``).

This one is a small Deep Sets network: each particle sees its own features, the set's mean
embedding, the time and the set's condition. Shapes: ``x (B, P, F)`` standardised particle
features at time t, ``t (B,)`` in [0, 1], ``mask (B, P)`` bool, ``cond (B, n_cond)`` or None
-> velocity ``(B, P, F)``.

The contract: ``task = "generate"``; the constructor takes the keywords ``n_points``,
``n_features`` and ``n_cond`` (jetlab's: particles per set, features per particle, condition
values per set, 0 for none) and hyperparameters with defaults (``--hp flow.hidden=64``).
"""

import torch
from torch import nn


class MyVelocity(nn.Module):
    task = "generate"

    def __init__(self, *, n_points: int, n_features: int, n_cond: int, hidden: int = 32):
        super().__init__()
        self.n_cond = n_cond
        self.embed = nn.Sequential(nn.Linear(n_features + 1, hidden), nn.ReLU())
        self.out = nn.Sequential(nn.Linear(2 * hidden + 1 + n_cond, hidden), nn.ReLU(), nn.Linear(hidden, n_features))

    def forward(self, x, t, mask, cond=None):
        time = t[:, None, None].expand(-1, x.shape[1], 1)  # (B, P, 1)
        h = self.embed(torch.cat([x, time], -1))  # (B, P, hidden)
        weight = mask.unsqueeze(-1).to(x.dtype)
        mean = (h * weight).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp_min(1.0)
        parts = [h, mean.expand_as(h), time]
        if self.n_cond:
            parts.append(cond[:, None, :].expand(-1, x.shape[1], -1).to(x.dtype))
        return self.out(torch.cat(parts, -1))
