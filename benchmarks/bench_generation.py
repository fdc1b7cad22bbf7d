"""Jets per second: a trained jetlab generator vs Pythia 8 + FastJet, same class, same CPU, same run.

Baseline: jetlab's own full simulation chain (:class:`jetlab.data.generate.JetGenerator`):
Pythia 8 (pp at 13 TeV, the class's hard processes, MPI, ISR/FSR, hadronisation) and
FastJet anti-kT R = 0.8 on the visible final state, keeping the jets matched to the class's
parton/boson/top with 800 < pT < 1200 GeV, until ``--pythia-jets`` jets are found. Timed:
event generation, clustering and matching (Pythia initialisation reported separately; the
hls4ml feature computation is *not* included, so the baseline is as fast as it can be).

Candidates: trained fastsim runs (``--run RUN``, repeatable; without it a VAE, a GAN and a
flow-matching model of the default architectures are trained on the baseline's own jets for
one epoch: the speed depends on the architecture, not on how well it is trained). Timed:
``TrainedGenerator.generate(n)``, i.e. noise -> network (for the flow: every ODE step) ->
de-normalisation -> drop pT <= 0, pT sorting; the network alone is timed too. A flow run is
timed at each ``--ode-steps`` given (default: its own setting). Both sides
run on the same CPU with ``--threads`` torch threads (default 1: one core each, as Pythia).

Prints a table and, last, ``speedup_vs_pythia=<jets/s generator> / <jets/s Pythia>``.

    python benchmarks/bench_generation.py [--run RUN] [--n 20000] [--pythia-jets 100] [--jet-class g]
                                          [--particles 30] [--ode-steps 2 --ode-steps 4]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def pythia_jets(jet_class: str, n_jets: int, n_particles: int, seed: int):
    """Run Pythia + FastJet until ``n_jets`` matched jets; returns (init_s, gen_s, events, jets)."""
    from jetlab.data.generate import JetGenerator

    start = time.perf_counter()
    gen = JetGenerator(jet_class, n_particles)
    init_s = time.perf_counter() - start
    gen.pythia.rndm.init(seed)
    jets, events = [], 0
    wall, cpu = time.perf_counter(), time.process_time()
    while len(jets) < n_jets:
        if not gen.pythia.next():
            continue
        events += 1
        for p4, _ in gen.matched_jets(gen.pythia.event):  # constituent four-momenta (n, 4), truth pT
            jets.append(p4)
            if len(jets) == n_jets:
                break
    return init_s, time.perf_counter() - wall, time.process_time() - cpu, events, jets


def relative_point_sets(jets: list[np.ndarray], n_particles: int) -> tuple[np.ndarray, np.ndarray]:
    """(eta_rel, phi_rel, pT_rel) of the ``n_particles`` leading constituents, and the mask."""
    points = np.zeros((len(jets), n_particles, 3), np.float32)
    mask = np.zeros((len(jets), n_particles), bool)
    for i, p4 in enumerate(jets):
        jet = p4.sum(0)
        jet_pt = np.hypot(jet[0], jet[1])
        jet_eta, jet_phi = np.arcsinh(jet[2] / jet_pt), np.arctan2(jet[1], jet[0])
        pt = np.hypot(p4[:, 0], p4[:, 1])
        order = np.argsort(-pt)[:n_particles]
        eta = np.arcsinh(p4[order, 2] / pt[order]) - jet_eta
        phi = (np.arctan2(p4[order, 1], p4[order, 0]) - jet_phi + np.pi) % (2 * np.pi) - np.pi
        k = len(order)
        points[i, :k] = np.stack([eta, phi, pt[order] / jet_pt], 1)
        mask[i, :k] = True
    return points, mask


def train_tiny_runs(jets, jet_class: str, n_particles: int, workdir: Path, models=("vae", "gan", "flow")) -> list[Path]:
    """A VAE, a GAN and a flow (default architectures) trained for one epoch on the baseline's jets."""
    from jetlab.io import write_jetnet_file
    from jetlab.training.generator import GeneratorConfig, train_generator

    points, mask = relative_point_sets(jets, n_particles)
    path = workdir / f"{jet_class}.h5"
    jet_features = np.zeros((len(points), 4), np.float32)
    write_jetnet_file(path, np.concatenate([points, mask[..., None]], -1), jet_features, jet_class=jet_class)
    runs = []
    for model in models:
        config = GeneratorConfig(model=model, data=str(path), jet_class=jet_class, particles=n_particles, epochs=1,
                               batch_size=32, plot_every=0, metrics_samples=0)
        train_generator(config, workdir / model)
        runs.append(workdir / model)
    return runs


def time_generator(run: Path, n: int, repeats: int, ode_steps: int | None = None) -> dict:
    """Median wall and CPU (process) seconds of generate(n) and of the network alone
    (a flow run with ``ode_steps`` sampling steps, default its own)."""
    from jetlab.training.generator_run import TrainedGenerator

    gen = TrainedGenerator.load(run, sampler={"ode_steps": ode_steps} if ode_steps else None)
    if gen.kind != "jets":
        raise SystemExit(f"{run}: trained on {gen.data_info['name']}, not on jets")
    gen.generate(min(n, 512), seed=0)  # warm-up
    times = {"full_wall": [], "full_cpu": [], "net_wall": [], "net_cpu": []}
    for r in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        points, mask = gen.generate(n, seed=r + 1)
        times["full_wall"].append(time.perf_counter() - wall)
        times["full_cpu"].append(time.process_time() - cpu)
        torch.manual_seed(r)
        wall, cpu = time.perf_counter(), time.process_time()
        for begin in range(0, n, gen.config.batch_size):
            gen.generate_model_tensor(min(gen.config.batch_size, n - begin))
        times["net_wall"].append(time.perf_counter() - wall)
        times["net_cpu"].append(time.process_time() - cpu)
    assert points.shape[0] == n and mask.any(1).all()
    model = gen.config.model
    if model == "flow":
        model = f"flow {gen.config.flow_net} {gen.config.ode_solver} x{gen.task.ode_steps}"
    return {"model": model, "class": gen.data_info["jet_class"], "particles": gen.data_info["n_points"],
            "run": str(run), "parameters": sum(p.numel() for m in gen.task.modules.values() for p in m.parameters()
                                               if p.requires_grad),  # trained weights: not a weight average's copy
            **{k: float(np.median(v)) for k, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, action="append", default=None,
                        help="trained fastsim run (repeat for several; the first gives speedup_vs_pythia; "
                             "default: train a VAE and a GAN for one epoch here)")
    parser.add_argument("--n", type=int, default=20000, help="jets to generate with the network")
    parser.add_argument("--pythia-jets", type=int, default=100, help="jets to produce with Pythia + FastJet")
    parser.add_argument("--jet-class", default=None, help="class (default: the first run's, else g)")
    parser.add_argument("--particles", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the network")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--models", default="vae,gan,flow",
                        help="without --run: the models trained here for one epoch (comma-separated)")
    parser.add_argument("--ode-steps", type=int, action="append", default=None,
                        help="flow runs: time them at these sampler steps (repeatable; default: the run's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    jet_class = args.jet_class
    if jet_class is None and args.run:
        from jetlab.training.generator_run import TrainedGenerator

        jet_class = TrainedGenerator.load(args.run[0]).data_info["jet_class"]
    jet_class = jet_class or "g"

    init_s, pythia_wall, pythia_cpu, events, jets = pythia_jets(jet_class, args.pythia_jets, args.particles, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.run or train_tiny_runs(jets, jet_class, args.particles, Path(tmp), args.models.split(","))
        from jetlab.training.generator_run import TrainedGenerator

        results = [time_generator(run, args.n, args.repeats, steps) for run in runs
                   for steps in ((args.ode_steps or [None]) if TrainedGenerator.load(run).config.model == "flow"
                                 else [None])]

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {cpu}, {os.cpu_count()} logical CPUs "
          f"(load average {load:.1f}), torch {torch.__version__} ({args.threads} thread(s)), class {jet_class}, "
          f"{args.particles} particles")
    for r in results:
        print(f"# {r['model']}: {r['run'] if args.run else 'trained here for one epoch on the Pythia jets'} "
              f"({r['parameters']:,} parameters, class {r['class']})")
    pythia_rate = len(jets) / pythia_cpu
    rows = [("Pythia 8 + FastJet (matched jets)", len(jets), pythia_wall, pythia_cpu)]
    for r in results:
        rows.append((f"jetlab {r['model']} generate()", args.n, r["full_wall"], r["full_cpu"]))
        rows.append((f"jetlab {r['model']} network only", args.n, r["net_wall"], r["net_cpu"]))
    print(f"{'method':<44} {'jets':>7} {'wall [s]':>9} {'cpu [s]':>9} {'jets/cpu-s':>11} {'us/jet':>10} "
          f"{'speedup':>9} {'speedup(wall)':>14}")
    for name, n, wall, cpu_s in rows:
        rate = n / cpu_s
        print(f"{name:<44} {n:>7} {wall:>9.3f} {cpu_s:>9.3f} {rate:>11.1f} {1e6 / rate:>10.2f} "
              f"{rate / pythia_rate:>9.0f} {(n / wall) / (len(jets) / pythia_wall):>14.0f}")
    print(f"# Pythia: {events} events for {len(jets)} jets ({events / pythia_wall:.1f} events/s wall), "
          f"initialisation {init_s:.2f} s not counted. speedup = jets per CPU-second (process time, robust to "
          "other processes on a shared machine) relative to Pythia; speedup(wall) the same in wall-clock time")
    first = results[0]
    print(f"speedup_vs_pythia={(args.n / first['full_cpu']) / pythia_rate:.0f}")


if __name__ == "__main__":
    main()
