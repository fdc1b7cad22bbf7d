"""Distributed training on this machine, against one process, and a model of it past this machine.

1. **Runs** (``jetlab tagger train --model dnn`` on a fixed jet set): the baseline is one
   process (``--threads 1``, the threads each rank gets under mpiexec on 2 cores); then for
   every algorithm (allreduce, downpour, easgd, gem) and K ranks (K = 2, 3, 5 by default,
   oversubscribed when K exceeds the cores; async: rank 0 is the master, K − 1 workers) it
   measures: throughput (jets/s and model updates/s), time and epochs to a target validation
   accuracy, final test accuracy, bytes sent per update, and prints the speed-ups over the
   baseline (time to target, throughput) measured in the same run.
2. **Master load**: 4 workers under one master (K = 5) vs under 2 sub-masters (K = 7):
   messages and bytes per second that rank 0 receives.
3. **Model** (:mod:`jetlab.distributed.scaling`), calibrated on this machine: its inputs
   measured here (compute time per update from the baseline, the master's CPU per exchange
   timed in-process, the latency and bandwidth of jetlab's transport from
   ``bench_transport.py`` under ``mpiexec -n 2``, those of a gloo all-reduce at 2-4 ranks);
   its throughput predictions for every K the runs used (K ranks sharing the machine's cores)
   beside the measured throughput speed-ups, with the error; then 8-512 workers with the
   measured one-host network and with a stated interconnect (``--bandwidth``/``--latency``),
   and where each algorithm stops scaling (efficiency below 50 %), for the DNN and JEDI-net
   (the run's model from the baseline's throughput, the other timed in-process).

Writes OUT/bench_distributed.json and OUT/scaling.png.

    python benchmarks/bench_distributed.py --data DIR [--model dnn|jedinet] [--ranks 2 3 5] [--epochs 12]
                                           [--target 0.56] [--no-load]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from _calibrate import calibrate, gloo_network, transport_network, worker_cpu_per_exchange
from _timing import timed  # benchmarks/_timing.py, beside this script

from jetlab.distributed.rules import ALGORITHMS, CenterNet
from jetlab.distributed.scaling import Network, Workload, predict
from jetlab.distributed.transport import Kind, Message, decode, encode
from jetlab.io.layout import HLF_FEATURES
from jetlab.models import build_tagger
from jetlab.physics.particles import PARTICLE_FEATURES
from jetlab.training.strategies import optimizer_parameters
from jetlab.viz.scaling import plot_scaling

ALGORITHM_SETTINGS = {   # per algorithm: extra flags (GEM's lr is an SGD step size: 0.1; the rest Adam 1e-3)
    "allreduce": [], "downpour": ["--sync-every", "1"], "easgd": ["--sync-every", "4"],
    "gem": ["--gem-lr", "0.1"],
}
BATCH = 100


def run_training(out: Path, ranks: int, algorithm: str | None, args, masters: int = 1) -> dict:
    """One ``jetlab tagger train`` run; its metrics.json plus the launch's wall time."""
    run = out / (f"{algorithm}-{ranks}" + (f"-m{masters}" if masters > 1 else "") if algorithm else "local")
    shutil.rmtree(run, ignore_errors=True)
    command = [sys.executable, "-m", "jetlab", "tagger", "train", "--model", args.model, "--data", str(args.data),
               "--epochs", str(args.epochs), "--batch-size", str(BATCH), "--patience", "0", "--lr-schedule", "none",
               "--out", str(run), "--seed", "1"]
    if algorithm is None:
        command += ["--threads", "1"]
    else:
        command = [args.mpiexec, "-disable-auto-cleanup", "-n", str(ranks), *command, "--strategy", algorithm,
                   *ALGORITHM_SETTINGS[algorithm], *(["--masters", str(masters)] if masters > 1 else [])]
    env = {**os.environ, "JETLAB_NO_PROGRESS": "1"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["launch_s"] = time.perf_counter() - started
    return metrics


def summarize(metrics: dict, target: float, algorithm: str | None, ranks: int) -> dict:
    history = metrics["history"]
    hit = next((r for r in history if r["val_accuracy"] >= target), None)
    training_s = history[-1]["elapsed_s"]
    jets_per_s = statistics.median(r["jets_per_s"] for r in history[1:] or history)
    row = {"algorithm": algorithm or "local", "ranks": ranks, "test_accuracy": metrics["accuracy"],
           "epochs_to_target": hit["epoch"] if hit else None, "time_to_target_s": hit["elapsed_s"] if hit else None,
           "jets_per_s": jets_per_s, "training_s": training_s}
    distributed = metrics.get("distributed")
    if algorithm in (None, "allreduce"):
        row["updates_per_s"] = jets_per_s / (BATCH * ranks)     # one update of the model per global batch
        params = metrics["n_parameters"]
        # the ring all-reduce each rank runs sends 2 (K-1)/K of the gradient per update
        row["bytes_per_update"] = 2 * (ranks - 1) / ranks * 4 * params if ranks > 1 else 0.0
    else:
        row["updates_per_s"] = statistics.median(r["updates_per_s"] for r in history[1:] or history)
        counts = distributed["messages"]
        traffic = sum(counts["received_bytes"].values()) + sum(counts["sent_bytes"].values())
        updates = sum(r["updates_per_s"] * r["epoch_time_s"] for r in history)
        row["bytes_per_update"] = traffic / max(updates, 1)
        received = sum(counts["received"].values())
        row["master_msgs_per_s"] = received / training_s
        row["master_bytes_per_s"] = sum(counts["received_bytes"].values()) / training_s
    return row


def master_cpu_per_exchange(model: torch.nn.Module, algorithm: str, repeats: int = 300) -> float:
    """Seconds of the master's CPU per exchange in jetlab: decode the request, apply it by the
    algorithm's rule on real central weights, encode the reply (GEM: a pull and a push)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    center = CenterNet(0, optimizer_parameters(optimizer), optimizer, alpha=0.45)
    rule = ALGORITHMS[algorithm]()
    vector = center.vector()
    requests = {"downpour": [Message(Kind.UPDATE, payload=vector * 1e-3)],
                "easgd": [Message(Kind.ELASTIC, payload=vector + 1e-3)],
                "gem": [Message(Kind.PULL), Message(Kind.PUSH, payload=vector * 1e-6)]}[algorithm]
    data = [encode(m) for m in requests]

    def once():
        for raw in data:
            reply = rule.handle(center, decode(raw.copy()))
            if reply is not None:
                encode(reply)
    return timed(once, repeats, torch.device("cpu"))


def train_step_s(name: str, repeats: int) -> float:
    """Seconds of one training step (forward, backward, Adam) of tagger ``name`` (30 particles,
    default hyperparameters) on a batch of 100, one thread."""
    features = len(PARTICLE_FEATURES) if name == "jedinet" else len(HLF_FEATURES)
    model = build_tagger(name, n_particles=30, n_features=features, n_classes=5)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs = ((torch.randn(BATCH, 30, features), torch.ones(BATCH, 30, dtype=torch.bool)) if name == "jedinet"
              else (torch.randn(BATCH, features),))
    label = torch.randint(0, 5, (BATCH,))

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(*inputs), label).backward()
        optimizer.step()
    return timed(step, repeats, torch.device("cpu"))


def workloads(model: torch.nn.Module, step_s: float) -> dict[str, Workload]:
    params = sum(p.numel() for p in model.parameters())
    message = 4 * params + 56
    out = {"allreduce": Workload(step_s, 4 * params)}
    for algorithm in ("downpour", "easgd", "gem"):
        tau = int(ALGORITHM_SETTINGS[algorithm][1]) if "--sync-every" in ALGORITHM_SETTINGS[algorithm] else 1
        out[algorithm] = Workload(step_s, 4 * params, bytes_in=message + (56 if algorithm == "gem" else 0),
                                  bytes_out=message, master_s=master_cpu_per_exchange(model, algorithm),
                                  sync_every=tau, worker_s=worker_cpu_per_exchange(model, algorithm))
    return out


def _limit(n: int) -> str:
    return "beyond 10^6" if n >= 1 << 20 else str(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="jet files (e.g. `jetlab data generate` output)")
    parser.add_argument("--model", default="dnn", choices=("dnn", "jedinet"), help="the tagger the runs train")
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 3, 5])
    parser.add_argument("--no-load", action="store_true", help="skip the M = 1 vs M = 2 master-load runs")
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHM_SETTINGS))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--target", type=float, default=0.56, help="validation accuracy to reach")
    parser.add_argument("--bandwidth", type=float, default=25e9, help="model network: bytes/s per link")
    parser.add_argument("--latency", type=float, default=5e-6, help="model network: seconds per message")
    parser.add_argument("--out", type=Path, default=Path("bench-distributed"))
    parser.add_argument("--mpiexec", default=shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or "mpiexec")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    print(f"# bench_distributed  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}  "
          f"{platform.node()}  {platform.machine()}  cores={os.cpu_count()}  python={platform.python_version()}  "
          f"torch={torch.__version__}  load={os.getloadavg()[0]:.1f}")

    local = summarize(run_training(args.out, 1, None, args), args.target, None, 1)
    rows = [local]
    for algorithm in args.algorithms:
        for ranks in args.ranks:
            rows.append(summarize(run_training(args.out, ranks, algorithm, args), args.target, algorithm, ranks))
    base_time, base_rate = local["time_to_target_s"], local["jets_per_s"]
    print(f"\n{args.model} on {args.data}, batch {BATCH} per rank, target val accuracy {args.target}; "
          f"baseline: one process, one thread")
    print(f"{'algorithm':>9} {'K':>2} {'jets/s':>7} {'upd/s':>7} {'ep→tgt':>6} {'s→tgt':>6} {'speed-up':>8} "
          f"{'thr×':>5} {'test acc':>8} {'B/update':>9}")
    for row in rows:
        speedup = base_time / row["time_to_target_s"] if row["time_to_target_s"] and base_time else None
        row["speedup_time_to_target"] = speedup
        row["speedup_throughput"] = row["jets_per_s"] / base_rate
        print(f"{row['algorithm']:>9} {row['ranks']:>2} {row['jets_per_s']:7.0f} {row['updates_per_s']:7.1f} "
              f"{row['epochs_to_target'] or '-':>6} {row['time_to_target_s'] or float('nan'):6.2f} "
              f"{speedup or float('nan'):8.2f} {row['speedup_throughput']:5.2f} {row['test_accuracy']:8.3f} "
              f"{row['bytes_per_update']:9.0f}")

    load = {}
    for algorithm in ("downpour", "gem"):
        if algorithm in args.algorithms and not args.no_load:
            for ranks, masters in ((5, 1), (7, 2)):
                row = summarize(run_training(args.out, ranks, algorithm, args, masters), args.target, algorithm, ranks)
                load[f"{algorithm} M={masters}"] = row
    if load:
        print("\nload on rank 0 with 4 workers: one master (M=1, K=5) vs two sub-masters (M=2, K=7)")
        for name, row in load.items():
            print(f"{name:>13}: {row['master_msgs_per_s']:8.0f} messages/s, {row['master_bytes_per_s'] / 1e6:7.2f} MB/s "
                  f"received, {row['jets_per_s']:6.0f} jets/s, test accuracy {row['test_accuracy']:.3f}")
        for algorithm in ("downpour", "gem"):
            if f"{algorithm} M=1" in load:
                ratio = load[f"{algorithm} M=2"]["master_msgs_per_s"] / load[f"{algorithm} M=1"]["master_msgs_per_s"]
                print(f"{algorithm}: rank 0 receives {ratio:.2f}x the messages per second under 2 sub-masters")

    net = Network(args.bandwidth, args.latency)
    params = sum(p.numel() for p in build_tagger(args.model, n_particles=30, n_features=len(
        PARTICLE_FEATURES if args.model == "jedinet" else HLF_FEATURES), n_classes=5).parameters())
    async_net, after_compute = transport_network(args, params, BATCH / base_rate)
    allreduce_net, allreduce_times = gloo_network([4 * 1000, 4 * params, 4 * 100_000])
    print(f"measured here: jetlab transport latency {async_net.latency * 1e6:.0f} µs back to back, "
          f"{after_compute.latency * 1e6:.0f} µs after a step of compute, bandwidth "
          f"{async_net.bandwidth / 1e9:.2f} GB/s; gloo all-reduce latency {allreduce_net.latency * 1e6:.0f} µs, "
          f"bandwidth {allreduce_net.bandwidth / 1e9:.2f} GB/s")
    for name, seconds in allreduce_times.items():
        print(f"  gloo all-reduce {name}: {seconds * 1e6:.0f} µs")
    dnn = build_tagger("dnn", n_particles=30, n_features=len(HLF_FEATURES), n_classes=5)
    jedi = build_tagger("jedinet", n_particles=30, n_features=len(PARTICLE_FEATURES), n_classes=5)
    # one update of the run's model from the baseline's throughput; the other model's timed here
    models = {name: (model, BATCH / base_rate if name == args.model else train_step_s(name, 5 if name == "jedinet"
                                                                                      else 50))
              for name, model in (("dnn", dnn), ("jedinet", jedi))}
    predictions = {}
    run_work = workloads(models[args.model][0], models[args.model][1])
    checked = calibrate(rows, run_work, after_compute, allreduce_net)
    print(f"\nmodel vs measurement on this machine ({os.cpu_count()} cores; throughput speed-up over one process)")
    for algorithm, points in checked.items():
        print(f"{algorithm:>9}: " + ", ".join(f"K={k} predicted {p['predicted']:.2f} measured {p['measured']:.2f}"
                                             for k, p in points.items() if isinstance(k, int))
              + f"; mean error {points['mean_relative_error']:.0%}")
    network = f"{args.bandwidth / 1e9:g} GB/s, {args.latency * 1e6:g} µs"
    print(f"\nmodel past this machine ({network}; all-reduce and transport as measured here in brackets)")
    for name, (model, step_s) in models.items():
        work = workloads(model, step_s)
        predicted = predict(work, net)
        here = {"allreduce": predict({"allreduce": work["allreduce"]}, allreduce_net)["allreduce"],
                **predict({a: w for a, w in work.items() if a != "allreduce"}, async_net)}
        predictions[name] = {"step_s": step_s, "parameters": sum(p.numel() for p in model.parameters()),
                             "master_s": {a: w.master_s for a, w in work.items()},
                             "worker_s": {a: w.worker_s for a, w in work.items()}, "predicted": predicted,
                             "predicted_measured_network": here}
        print(f"{name}: t_c = {step_s * 1e3:.2f} ms per update, {predictions[name]['parameters']} parameters, "
              "master / worker CPU per exchange " + ", ".join(
                  f"{a} {w.master_s * 1e6:.0f} / {w.worker_s * 1e6:.0f} µs" for a, w in work.items() if a != "allreduce"))
        workers = list(next(iter(predicted.values()))["speedup"])
        print(f"{'':>24}" + "".join(f"{n:>7}" for n in workers) + "   efficiency < 50 % from N =")
        for algorithm, entry in predicted.items():
            print(f"{algorithm:>24}" + "".join(f"{entry['speedup'][n]:7.1f}" for n in workers)
                  + f"   {_limit(entry['limit'])}  [512: {here[algorithm]['speedup'][512]:.1f}]")
            if "speedup_sqrt_masters" in entry:
                print(f"{algorithm + ', √N sub-masters':>24}" + "".join(
                    f"{entry['speedup_sqrt_masters'][n]:7.1f}" for n in workers)
                    + f"   {_limit(entry['limit_sqrt_masters'])}")

    measured, throughput = {}, {}
    for row in rows[1:]:
        if row["speedup_time_to_target"]:
            measured.setdefault(row["algorithm"], {1: 1.0})[row["ranks"]] = row["speedup_time_to_target"]
        throughput.setdefault(row["algorithm"], {1: 1.0})[row["ranks"]] = row["speedup_throughput"]
    model_pred = predictions[args.model]["predicted"]
    plot_scaling(measured, {a: e["speedup"] for a, e in model_pred.items()}, args.out / "scaling.png",
                 measured_label=f"speed-up: time to val. accuracy {args.target} (solid), jets/s (dashed)",
                 measured_dashed=throughput,
                 predicted_sqrt={a: e["speedup_sqrt_masters"] for a, e in model_pred.items()
                                 if "speedup_sqrt_masters" in e},
                 title=f"{args.model} tagger, batch {BATCH} per worker; {os.cpu_count()} cores "
                       "(K > cores: oversubscribed)", network=network)
    (args.out / "bench_distributed.json").write_text(json.dumps(
        {"rows": rows, "master_load": load, "model": predictions, "calibration": checked,
         "network": {"bandwidth": args.bandwidth, "latency": args.latency},
         "measured_network": {"transport": dataclasses.asdict(async_net),
                              "transport_after_compute": dataclasses.asdict(after_compute), "gloo_allreduce": dataclasses.asdict(
             allreduce_net), "gloo_allreduce_s": allreduce_times}},
        indent=1, default=str))
    print(f"\n-> {args.out}/bench_distributed.json, {args.out}/scaling.png")


if __name__ == "__main__":
    main()
