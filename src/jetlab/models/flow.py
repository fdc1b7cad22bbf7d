"""Flow-matching generator of point sets: a velocity network v_θ(x_t, t, c) and the ODE
sampler that integrates it (Lipman et al., arXiv:2210.02747; EPiC-FM, Birk et al.,
arXiv:2310.00049, for the point-cloud set-up). The loss is :mod:`jetlab.losses.flow_matching`.

Velocity: ``FlowGenerator(x_t (B, P, F), t (B,), mask (B, P), cond (B, K) or None) -> (B, P, F)``.
Every set gets one condition vector ``c = [fourier(t); n / P; cond]``: the time through a
fixed sinusoidal embedding of ``time_dim`` values (sin/cos of 2π f t for f log-spaced in
[1, 64]), the multiplicity n of the set (its real particles) over P, and any extra condition.
Two networks map (x_t, c) to the velocity (``net``):

* ``"epic"`` (default): :class:`jetlab.models.epic.EPiCNetwork`, O(P) per set, the choice on
  a CPU and at 150 particles;
* ``"transformer"``: pre-norm blocks of masked multi-head self-attention (padded particles
  are never keys) and a feed-forward layer, c added to every particle in every block;
  O(P²) per set.

Both are permutation-equivariant and padded particles cannot influence real ones.

Sampling (:meth:`FlowSampler.sample`): x₀ ~ N(0, I) on the real particles (the first n of
each set, n drawn by the caller from the training multiplicities), then
:func:`integrate` dx/dt = v_θ(x, t) from t = 0 to 1 in ``steps`` equal steps:

* ``euler``: x ← x + Δt v(x, t) (1 evaluation a step, error O(Δt));
* ``midpoint``: x ← x + Δt v(x + Δt/2 v(x, t), t + Δt/2) (2 evaluations, O(Δt²));
* ``heun``: k₁ = v(x, t), k₂ = v(x + Δt k₁, t + Δt), x ← x + Δt (k₁ + k₂)/2 (2, O(Δt²)).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetlab.choices import FLOW_NETWORKS, ODE_SOLVERS
from jetlab.errors import JetlabError
from jetlab.models.epic import EPiCNetwork
from jetlab.models.mpgan import _zero_padding

__all__ = ["FLOW_NETWORKS", "ODE_SOLVERS", "FlowGenerator", "FlowSampler", "UserFlow", "fourier_time_embedding",
           "integrate", "solver_times"]

#: network evaluations per ODE step
SOLVER_EVALUATIONS = {"euler": 1, "midpoint": 2, "heun": 2}
#: sets integrated together when sampling on a CPU
CPU_SAMPLE_BLOCK = 128


def fourier_time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of the flow time: sin and cos of 2π f t, f log-spaced in [1, 64]
    (zero-padded to ``dim``).

    Args:
        t: times in [0, 1].
        dim: size of the embedding.

    Returns:
        The embedding.

    Shapes:
        - t: ``(batch,)``
        - returns: ``(batch, dim)``
    """
    half = dim // 2
    freqs = 2 * math.pi * torch.logspace(0, math.log10(64.0), half, device=t.device, dtype=t.dtype)
    angles = t.unsqueeze(-1) * freqs
    out = torch.cat([angles.sin(), angles.cos()], -1)
    return F.pad(out, (0, dim - 2 * half))


def integrate(velocity: Callable[[Tensor, float], Tensor], x0: Tensor, steps: int, solver: str = "midpoint") -> Tensor:
    """x(1) of dx/dt = velocity(x, t) from x(0) = x0 in ``steps`` equal steps (module docstring).

    Args:
        velocity: ``velocity(x, t)``, the same shape as ``x``.
        x0: the state at t = 0.
        steps: equal time steps (≥ 1).
        solver: ``"euler"``, ``"midpoint"`` or ``"heun"``.

    Returns:
        The state at t = 1.

    Shapes:
        - x0, returns: ``(batch, particles, features)`` (any shape the velocity takes)
    """
    if solver not in ODE_SOLVERS:
        raise ValueError(f"unknown ODE solver {solver!r}; known: {', '.join(ODE_SOLVERS)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    dt = 1.0 / steps
    x = x0
    for k in range(steps):
        t = k * dt
        if solver == "euler":
            x = x + dt * velocity(x, t)
        elif solver == "midpoint":
            x = x + dt * velocity(x + 0.5 * dt * velocity(x, t), t + 0.5 * dt)
        else:
            k1 = velocity(x, t)
            x = x + 0.5 * dt * (k1 + velocity(x + dt * k1, t + dt))
    return x


def solver_times(steps: int, solver: str = "midpoint") -> tuple[float, ...]:
    """The times at which :func:`integrate` evaluates the velocity, sorted:
    ``euler`` k/K; ``midpoint`` k/K and (k + ½)/K; ``heun`` k/K and (k + 1)/K (k = 0 … K − 1).
    A network trained at these times only is what a distilled few-step sampler needs
    (:mod:`jetlab.training.distil`).

    Args:
        steps: K, equal time steps (≥ 1).
        solver: ``"euler"``, ``"midpoint"`` or ``"heun"``.

    Returns:
        The distinct times in [0, 1], ascending.

    Shapes:
        - returns: a tuple of at most 2K floats
    """
    if solver not in ODE_SOLVERS:
        raise ValueError(f"unknown ODE solver {solver!r}; known: {', '.join(ODE_SOLVERS)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    offsets = {"euler": (0.0,), "midpoint": (0.0, 0.5), "heun": (0.0, 1.0)}[solver]
    return tuple(sorted({(k + o) / steps for k in range(steps) for o in offsets}))


class _AttentionBlock(nn.Module):
    """Pre-norm masked self-attention + feed-forward, condition added first: (B, P, H) -> (B, P, H)."""

    def __init__(self, hidden: int, cond_dim: int, heads: int):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.cond = nn.Linear(cond_dim, hidden)
        self.norm1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.ff = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, hidden))

    def forward(self, h: Tensor, c: Tensor, keys: Tensor | None) -> Tensor:
        batch, n, hidden = h.shape
        h = h + self.cond(c).unsqueeze(1)
        q, k, v = self.qkv(self.norm1(h)).view(batch, n, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)
        h = h + self.proj(attended.transpose(1, 2).reshape(batch, n, hidden))
        return h + self.ff(self.norm2(h))


class _TransformerNetwork(nn.Module):
    """(B, P, F) + condition (B, C) -> (B, P, F_out) through masked self-attention blocks."""

    def __init__(self, in_features: int, out_features: int, cond_dim: int, *, hidden: int, n_layers: int, heads: int):
        super().__init__()
        self.embed = nn.Linear(in_features, hidden)
        self.blocks = nn.ModuleList(_AttentionBlock(hidden, cond_dim, heads) for _ in range(n_layers))
        self.head = nn.Linear(hidden, out_features)

    def forward(self, x: Tensor, cond: Tensor, mask: Tensor | None = None) -> Tensor:
        keys = None
        if mask is not None:  # (B, 1, 1, P): which particles may be attended to; an empty set attends to all
            keys = (mask | ~mask.any(1, keepdim=True))[:, None, None, :]
        h = self.embed(x)
        for block in self.blocks:
            h = _zero_padding(block(h, cond, keys), mask)
        return _zero_padding(self.head(h), mask)


class FlowSampler(nn.Module):
    """The ODE sampler shared by every velocity network v(x_t (B, P, F), t (B,), mask (B, P),
    cond (B, K) or None) -> (B, P, F) with attributes ``n_points`` and ``n_features``."""

    n_points: int
    n_features: int

    @torch.no_grad()
    def sample(self, n: int, *, counts: Tensor | None = None, cond: Tensor | None = None, steps: int = 2,
               solver: str = "midpoint") -> tuple[Tensor, Tensor]:
        """``n`` sets (n, P, F) in the model's (standardised) units and their mask (n, P):
        the first ``counts[k]`` particles of set k are real (all when None). Global torch RNG."""
        device = next(self.parameters()).device
        mask = torch.ones((n, self.n_points), dtype=torch.bool, device=device)
        if counts is not None:
            mask = torch.arange(self.n_points, device=device).unsqueeze(0) < counts.to(device).unsqueeze(1)
        x0 = _zero_padding(torch.randn((n, self.n_points, self.n_features), device=device), mask)
        return self.solve(x0, mask, cond, steps=steps, solver=solver), mask

    @torch.no_grad()
    def solve(self, x0: Tensor, mask: Tensor, cond: Tensor | None = None, *, steps: int = 2,
              solver: str = "midpoint") -> Tensor:
        """x(1) of the learned ODE from given noise ``x0`` (n, P, F) with mask (n, P) and
        condition (n, K) or None; padded rows 0. Every set is solved on its own, so the blocks
        give the same sets: on a CPU blocks of ``CPU_SAMPLE_BLOCK`` sets, which stay in cache,
        are faster than one large batch (BENCHMARKS.md); on a GPU one batch is."""
        block = CPU_SAMPLE_BLOCK if x0.device.type == "cpu" else max(len(x0), 1)
        x1 = [self._solve_block(x0[i:i + block], mask[i:i + block], None if cond is None else cond[i:i + block],
                                steps, solver) for i in range(0, len(x0), block)]
        return _zero_padding(torch.cat(x1) if x1 else x0, mask)

    def _solve_block(self, x0: Tensor, mask: Tensor, cond: Tensor | None, steps: int, solver: str) -> Tensor:
        def velocity(x: Tensor, t: float) -> Tensor:
            return self(x, x.new_full((len(x),), t), mask, cond)

        return integrate(velocity, x0, steps, solver)


class UserFlow(FlowSampler):
    """A user's velocity network (``--model FILE.py:Class`` with ``task = "generate"``) trained
    and sampled as the flow (Lipman et al., arXiv:2210.02747); padded particles are zeroed on
    the way in and out.

    Args:
        net: the user's network, ``net(x, t, mask, cond)`` -> velocity of the shape of ``x``.
        n_points: P, particles per set.
        n_features: F, features per particle.
    """

    def __init__(self, net: nn.Module, n_points: int, n_features: int):
        super().__init__()
        self.net, self.n_points, self.n_features = net, n_points, n_features

    def forward(self, x: Tensor, t: Tensor, mask: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        """The user network's velocity, checked for its shape.

        Args:
            x: the sets at time t (standardised units).
            t: the time of every set, in [0, 1].
            mask: which particles are real (``None``: all).
            cond: condition values per set, or ``None``.

        Returns:
            The velocity, padded rows 0.

        Shapes:
            - x: ``(batch, n_points, n_features)``
            - t: ``(batch,)``
            - mask: ``(batch, n_points)`` bool
            - cond: ``(batch, n_cond)``
            - returns: ``(batch, n_points, n_features)``
        """
        out = self.net(_zero_padding(x, mask), t, mask, cond)
        if out.shape != x.shape:
            raise JetlabError(f"{type(self.net).__name__}.forward returned shape {tuple(out.shape)}; the velocity "
                             f"must have the shape of x, {tuple(x.shape)}")
        return _zero_padding(out, mask)


class FlowGenerator(FlowSampler):
    """The velocity network of a flow-matching point-set generator, and its sampler
    (Lipman et al., arXiv:2210.02747; Birk et al., arXiv:2310.00049; module docstring).

    Args:
        n_points: P, particles per set.
        n_features: F, features per particle.
        n_cond: extra condition values per set (0: none).
        net: the velocity network, ``"epic"`` or ``"transformer"``.
        hidden: particle width of the network.
        global_dim: width of the EPiC global vector (``"epic"`` only).
        n_layers: EPiC layers or attention blocks.
        time_dim: size of the Fourier embedding of t.
        heads: attention heads (``"transformer"`` only; must divide ``hidden``).

    Sizes: the defaults (particle width 16, global width 64, 3 layers) are chosen for speed
    on one CPU core: the cost is per particle (O(P hidden²)), the global vector is paid once
    per set, so the width goes where it is cheap. With 2 midpoint steps a 30-particle jet
    costs ~40-70 µs on a loaded core; hidden 32 / global 32 is ~2x slower and somewhat more
    faithful. For fidelity: hidden 64 / global 128 (148k parameters with the jet conditions)
    sampled with 8 steps reached truth level on JetNet-style 30-particle gluon and top jets,
    at ~20x the default's cost per jet (RESULTS.md, BENCHMARKS.md). Distilled into one Euler step
    (:mod:`jetlab.training.distil`), that network kept gluons at truth level at ~50 µs a jet."""

    def __init__(self, n_points: int, n_features: int, *, n_cond: int = 0, net: str = "epic", hidden: int = 16,
                 global_dim: int = 64, n_layers: int = 3, time_dim: int = 16, heads: int = 4):
        super().__init__()
        if net not in FLOW_NETWORKS:
            raise ValueError(f"unknown flow network {net!r}; known: {', '.join(FLOW_NETWORKS)}")
        self.n_points, self.n_features, self.n_cond, self.time_dim = n_points, n_features, n_cond, time_dim
        cond_dim = time_dim + 1 + n_cond
        if net == "epic":
            self.net = EPiCNetwork(n_features, n_features, cond_dim, n_points, hidden=hidden, global_dim=global_dim,
                                   n_layers=n_layers)
        else:
            self.net = _TransformerNetwork(n_features, n_features, cond_dim, hidden=hidden, n_layers=n_layers,
                                           heads=heads)

    def condition(self, t: Tensor, mask: Tensor | None, cond: Tensor | None = None) -> Tensor:
        """c = [fourier(t); n / P; cond] (B, time_dim + 1 + n_cond)."""
        batch = t.shape[0]
        n = mask.sum(1, keepdim=True).to(t.dtype) if mask is not None else t.new_full((batch, 1), self.n_points)
        parts = [fourier_time_embedding(t, self.time_dim), n / self.n_points]
        if self.n_cond:
            parts.append(cond.to(t.dtype))
        return torch.cat(parts, -1)

    def forward(self, x: Tensor, t: Tensor, mask: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        """The velocity v_θ(x_t, t, c).

        Args:
            x: the sets at time t (standardised units).
            t: the time of every set, in [0, 1].
            mask: which particles are real (``None``: all).
            cond: extra condition values (with ``n_cond > 0``).

        Returns:
            The velocity, padded rows 0.

        Shapes:
            - x: ``(batch, n_points, n_features)``
            - t: ``(batch,)``
            - mask: ``(batch, n_points)`` bool
            - cond: ``(batch, n_cond)``
            - returns: ``(batch, n_points, n_features)``
        """
        return self.net(_zero_padding(x, mask), self.condition(t, mask, cond), mask)

