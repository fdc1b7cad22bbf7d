"""Training and inference throughput (jets/s) of every particle tagger, at 30 and 100 particles.

Models: the DNN (16 high-level features: its cost does not depend on N), JEDI-net (the
paper's hyperparameters for the particle count), JEDI-net ΣO, JEDI-linear, GarNet, ParticleNet,
ParticleNet-Lite, ParT and ParT-small, all with their defaults. Each case times, on a
batch of ``--batch`` synthetic jets with every particle real (the worst case: nothing to
skip), one training step (forward, cross-entropy backward, Adam step) and one forward
pass under ``torch.inference_mode``; a figure is the best of ``--repeats`` rounds after a
warm-up, reported as jets/s. The models are interleaved round by round so that load from
other processes hits them alike. One thread by default (``--threads``).

    python benchmarks/bench_taggers.py --out bench_taggers.json
    python benchmarks/bench_taggers.py --particles 30 --models dnn,particlenet-lite --repeats 5
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from jetlab.models import build_tagger

MODELS = ("dnn", "jedinet", "jedinet-sumo", "jedinet-linear", "garnet", "particlenet", "particlenet-lite", "part", "part-small")


def synthetic_batch(batch: int, n: int, n_features: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every input key any tagger takes, for ``batch`` jets of ``n`` real particles."""
    g = torch.Generator().manual_seed(seed)
    pt = 1 + 100 * torch.rand(batch, n, generator=g)
    eta, phi = (0.3 * torch.randn(batch, n, 2, generator=g)).unbind(-1)
    momenta = torch.stack([pt * phi.cos(), pt * phi.sin(), pt * torch.sinh(eta), pt * torch.cosh(eta)], -1)
    return {"particles": torch.randn(batch, n, n_features, generator=g), "mask": torch.ones(batch, n, dtype=torch.bool),
            "points": torch.stack([eta, phi], -1), "momenta": momenta, "hlf": torch.randn(batch, 16, generator=g),
            "label": torch.randint(0, 5, (batch,), generator=g)}


def case(name: str, n: int, batch: int):
    n_features = 7 if name.startswith(("particlenet", "part")) else 16  # the DNN: 16 high-level features
    torch.manual_seed(0)
    model = build_tagger(name, n_particles=n, n_features=n_features)
    data = synthetic_batch(batch, n, n_features)
    inputs = [data[key] for key in model.input_keys]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train():
        model.train()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(*inputs), data["label"]).backward()
        optimizer.step()

    def infer():
        model.eval()
        with torch.inference_mode():
            model(*inputs)

    return model, train, infer


def best_time(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", default="30,100")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for n in map(int, args.particles.split(",")):
        cases = {name: case(name, n, args.batch) for name in args.models.split(",")}
        best = {name: [float("inf"), float("inf")] for name in cases}
        for _, train, infer in cases.values():  # warm-up
            train(), infer()
        for _ in range(args.repeats):
            for name, (_, train, infer) in cases.items():
                best[name][0] = min(best[name][0], best_time(train))
                best[name][1] = min(best[name][1], best_time(infer))
        for name, (model, _, _) in cases.items():
            row = {"model": name, "particles": n, "parameters": sum(p.numel() for p in model.parameters()),
                   "train_jets_per_s": args.batch / best[name][0], "infer_jets_per_s": args.batch / best[name][1]}
            rows.append(row)
            print(f"N={n:4d} {name:17s} {row['parameters']:>9,d} params  train {row['train_jets_per_s']:9.0f} jets/s"
                  f"  inference {row['infer_jets_per_s']:9.0f} jets/s", flush=True)
    if args.out:
        meta = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
                "torch": torch.__version__, "threads": args.threads, "batch": args.batch, "repeats": args.repeats,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        with open(args.out, "w") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
