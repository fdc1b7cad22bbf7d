"""Benchmark jetlab.losses.nnd_loss and jetlab.metrics.efp.efps against named baselines.

NND baseline: the dense formula with a (B, N, M, D) difference tensor,
``d = ((a[:, :, None] - b[:, None]) ** 2).sum(-1)`` masked, min over each axis (forward +
backward). EFP baseline: ``efp_from_edges`` (one ``np.einsum`` per multigraph).
Prints times, ratios and the max difference between the fast and the baseline paths.

    python benchmarks/bench_metrics.py [--device cuda] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _timing import timed  # benchmarks/_timing.py, beside this script

from jetlab.losses import nnd_loss
from jetlab.metrics.efp import EFP_GRAPHS, efp_from_edges, efp_measure, efps


def dense_nnd(a, b, mask_a, mask_b):
    distance = ((a[:, :, None] - b[:, None]) ** 2).sum(-1)
    inf = torch.finfo(a.dtype).max
    to_b = distance.masked_fill(~mask_b[:, None], inf).min(2).values.masked_fill(~mask_a, 0)
    to_a = distance.masked_fill(~mask_a[:, :, None], inf).min(1).values.masked_fill(~mask_b, 0)
    return (to_b.sum(1) + to_a.sum(1)).mean()


def peak_memory(function, device):
    if device.type != "cuda":
        return float("nan")
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    function()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def bench_nnd(device, quick):
    shapes = [(256, 30, 30, 3), (128, 150, 150, 3)] if not quick else [(64, 30, 30, 3)]
    if device.type == "cuda" and not quick:
        shapes.append((128, 400, 400, 3))
    generator = torch.Generator().manual_seed(0)
    for batch, n, m, dim in shapes:
        a = torch.randn(batch, n, dim, generator=generator).to(device).requires_grad_()
        b = torch.randn(batch, m, dim, generator=generator).to(device).requires_grad_()
        mask_a = (torch.rand(batch, n, generator=generator) < 0.8).to(device)
        mask_b = (torch.rand(batch, m, generator=generator) < 0.8).to(device)
        mask_a[:, 0] = mask_b[:, 0] = True

        def ours():
            nnd_loss(a, b, mask_a, mask_b).backward()

        def baseline():
            dense_nnd(a, b, mask_a, mask_b).backward()

        difference = (nnd_loss(a, b, mask_a, mask_b) - dense_nnd(a, b, mask_a, mask_b)).abs()
        repeats = 5 if quick else 20
        t_ours, t_base = timed(ours, repeats, device), timed(baseline, repeats, device)
        m_ours, m_base = peak_memory(ours, device), peak_memory(baseline, device)
        print(f"nnd fwd+bwd B={batch} N={n} M={m} D={dim} [{device.type}]: jetlab "
              f"{t_ours * 1e3:.2f} ms, dense baseline {t_base * 1e3:.2f} ms, "
              f"speed-up x{t_base / t_ours:.2f}; peak extra memory {m_ours:.1f} vs "
              f"{m_base:.1f} MiB; |loss diff| {difference.item():.2e}")


def check_device_matches_cpu(device):
    """Loss and gradients on ``device`` vs CPU, float64, masked, with features."""
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(64, 40, 4, generator=generator, dtype=torch.float64)
    b = torch.randn(64, 30, 4, generator=generator, dtype=torch.float64)
    mask_a = torch.rand(64, 40, generator=generator) < 0.8
    mask_b = torch.rand(64, 30, generator=generator) < 0.8
    mask_a[:, 0] = mask_b[:, 0] = True
    results = []
    for where in (torch.device("cpu"), device):
        x = a.to(where).detach().clone().requires_grad_()
        y = b.to(where).detach().clone().requires_grad_()
        loss = nnd_loss(x, y, mask_a.to(where), mask_b.to(where), reduction="none", n_coords=2,
                        beta=0.5)
        loss.sum().backward()
        results.append((loss.detach().cpu(), x.grad.cpu(), y.grad.cpu()))
    worst = max((first - second).abs().max().item() for first, second in zip(*results))
    print(f"nnd {device.type} vs cpu (float64, masks, n_coords=2): max |difference| of loss and "
          f"gradients {worst:.2e}")


def bench_efp(quick):
    rng = np.random.default_rng(0)
    n_jets = 500 if quick else 5000
    particles = np.zeros((n_jets, 30, 3))
    particles[..., :2] = rng.normal(0, 0.1, (n_jets, 30, 2))
    particles[..., 2] = rng.exponential(1.0, (n_jets, 30))
    start = time.perf_counter()
    fast = efps(particles)
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    z, theta = efp_measure(particles)
    reference = np.stack([efp_from_edges(g, z, theta) for g in EFP_GRAPHS], -1)
    t_reference = time.perf_counter() - start
    print(f"efps {n_jets} jets x 30 particles: jetlab {t_fast:.3f} s, einsum baseline "
          f"{t_reference:.3f} s, speed-up x{t_reference / t_fast:.1f}; max rel diff "
          f"{np.max(np.abs(fast / reference - 1)):.1e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    if device.type != "cpu":
        check_device_matches_cpu(device)
    bench_nnd(device, args.quick)
    if device.type == "cpu":
        bench_efp(args.quick)


if __name__ == "__main__":
    main()
