"""The measured inputs of the scaling model and its check against the runs, for
``bench_distributed.py`` (beside this script): a worker's CPU per exchange, jetlab's transport
(``bench_transport.py`` under ``mpiexec -n 2``), gloo's all-reduce at 2-4 ranks, and the
model's predictions for the runs' K ranks on this machine's cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from _timing import timed  # benchmarks/_timing.py, beside this script

from jetlab.distributed.rules import ALGORITHMS, WorkerNet
from jetlab.distributed.scaling import Network, Workload, shared_cores
from jetlab.distributed.transport import Kind, Message, decode, encode
from jetlab.training.strategies import optimizer_parameters

__all__ = ["calibrate", "gloo_network", "transport_network", "worker_cpu_per_exchange"]


class _InstantMaster:
    """A worker's link whose master answers at once (a pre-encoded reply): what is left of an
    exchange is the worker's own CPU (flatten, encode, decode, adopt the answer)."""

    def __init__(self, reply: Message):
        self.reply = encode(reply)

    def request(self, message: Message) -> Message:
        encode(message)
        return decode(self.reply.copy())

    def send(self, message: Message) -> None:
        encode(message)


def worker_cpu_per_exchange(model: torch.nn.Module, algorithm: str, repeats: int = 300) -> float:
    """Seconds of a worker's CPU per exchange beyond its training step (τ = 1): the rule's
    worker step against a master that answers at once."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    params = optimizer_parameters(optimizer)
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    net = WorkerNet(0, params, optimizer)
    net.start(net.vector().clone(), 1e-3)
    kind = Kind.ELASTIC if algorithm == "easgd" else Kind.WEIGHTS
    payload = torch.zeros_like(net.vector()) if algorithm == "easgd" else net.vector().clone()
    link = _InstantMaster(Message(kind, value=1e-3, payload=payload))
    rule = ALGORITHMS[algorithm]()
    with torch.no_grad():
        exchange = timed(lambda: rule.worker_step(net, link, 1), repeats, torch.device("cpu"))
        # EASGD's worker step includes its optimizer step, which t_c already counts
        own_step = timed(optimizer.step, repeats, torch.device("cpu")) if algorithm == "easgd" else 0.0
    return max(exchange - own_step, 0.0)


def transport_network(args, params: int, step_s: float) -> tuple[Network, Network]:
    """jetlab's transport measured by bench_transport.py: (back-to-back exchanges: the fit of
    latency and bandwidth; after ``step_s`` of compute, as in training: the same bandwidth and
    the latency that gives the median round trip of a ``params`` message, which includes
    waking up the master and getting a core back on a loaded machine)."""
    out = args.out / "transport"
    command = [args.mpiexec, "-n", "2", sys.executable, str(Path(__file__).with_name("bench_transport.py")),
               "--gaps", "0", f"{step_s:.6f}", "--params", "0", str(params), "100000", "--repeats", "300",
               "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    print(done.stdout.strip())
    report = json.loads((out / "bench_transport.json").read_text())
    fit = report["fit"]["jetlab"]
    hot = Network(bandwidth=fit["bandwidth_Bps"], latency=max(fit["latency_s"], 0.0))
    row = next(r for r in report["rows"] if r["gap_s"] > 0 and r["params"] == params)
    latency = max((1e-6 * row["jetlab_us"] - 2 * row["bytes"] / hot.bandwidth) / 2, hot.latency)
    return hot, Network(bandwidth=hot.bandwidth, latency=latency)


def _allreduce_rank(rank: int, world: int, port: int, sizes: list[int], repeats: int, results) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    for size in sizes:
        buffer = torch.zeros(size // 4)
        dist.all_reduce(buffer)
        dist.barrier()
        start = time.perf_counter()
        for _ in range(repeats):
            dist.all_reduce(buffer)
        if rank == 0:
            results[(world, size)] = (time.perf_counter() - start) / repeats
    dist.destroy_process_group()


def gloo_network(sizes: list[int], worlds=(2, 3, 4), repeats: int = 200) -> tuple[Network, dict]:
    """Seconds per gloo all-reduce of each size at 2-4 ranks on this machine, and the L, B that
    fit the model's ``2⌈log₂N⌉ L + 2 (N−1)/N · S/B`` to them (least squares)."""
    import math
    import socket

    import numpy as np
    import torch.multiprocessing as mp

    times = mp.Manager().dict()
    for world in worlds:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        mp.spawn(_allreduce_rank, args=(world, port, sizes, repeats, times), nprocs=world, join=True)
    rows = [(2 * math.ceil(math.log2(n)), 2 * (n - 1) / n * size, t) for (n, size), t in times.items()]
    (latency, inverse_bandwidth), *_ = np.linalg.lstsq(np.array([[a, b] for a, b, _ in rows]),
                                                       np.array([t for *_, t in rows]), rcond=None)
    network = Network(bandwidth=1 / inverse_bandwidth if inverse_bandwidth > 0 else float("inf"),
                      latency=max(float(latency), 0.0))
    return network, {f"{n} ranks, {size} B": t for (n, size), t in sorted(times.items())}


def calibrate(rows: list[dict], work: dict[str, Workload], async_net: Network, allreduce_net: Network) -> dict:
    """Predicted vs measured throughput speed-ups for every K of the runs (K ranks on this
    machine's cores); the mean relative error per algorithm."""
    from jetlab.distributed.scaling import allreduce_speedup, async_speedup

    cores = os.cpu_count() or 1
    out = {}
    for row in rows[1:]:
        algorithm, ranks = row["algorithm"], row["ranks"]
        if algorithm == "allreduce":
            predicted = allreduce_speedup(ranks, shared_cores(work[algorithm], ranks, cores), allreduce_net)
            predicted *= work[algorithm].step_s / shared_cores(work[algorithm], ranks, cores).step_s
        else:
            here = shared_cores(work[algorithm], ranks, cores)
            predicted = async_speedup(ranks - 1, here, async_net) * work[algorithm].step_s / here.step_s
        out.setdefault(algorithm, {})[ranks] = {"predicted": predicted, "measured": row["speedup_throughput"]}
    for points in out.values():
        errors = [abs(p["predicted"] - p["measured"]) / p["measured"] for p in points.values()]
        points["mean_relative_error"] = sum(errors) / len(errors)
    return out
