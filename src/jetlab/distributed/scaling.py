"""A performance model of data-parallel training past one machine: predicted speed-up of
synchronous all-reduce and of the asynchronous master/worker algorithms for N workers, from
the compute time of one update and the size of what is exchanged (measured on a real run)
and a stated network (link bandwidth B, per-message latency L).

Speed-up is throughput (updates made by all workers per second) over one worker's, with the
batch per worker fixed (weak scaling); it says nothing of how staleness (async) or the larger
global batch (all-reduce) change the updates needed to reach a given accuracy. Communication
is not overlapped with compute (conservative).

* **all-reduce** (recursive halving/doubling, the bandwidth-optimal collective MPI and NCCL
  use for large buffers): each step costs ``t_c + 2⌈log₂N⌉ L + 2 (N−1)/N · S/B`` for a
  gradient of S bytes, so ``speedup = N t_c / (t_c + t_comm)``: it scales until the log-N
  latency term and the (bounded) bandwidth term are comparable with t_c.
* **master/worker** (Downpour, EASGD, GEM): a worker spends ``τ t_c`` computing and ``t_w`` on
  its side of the exchange (flatten, encode, decode, adopt the answer: measured), then one
  round trip ``t_rt = 2L + (s_in + s_out)/B + t_m``; the master handles exchanges one at a time,
  each costing ``t_m + (s_in + s_out)/B`` of its time (``t_m``: its CPU per exchange: decode,
  apply, encode — measured). N workers ask for ``N / (τ t_c + t_w + t_rt)`` exchanges per second, the
  master serves at most ``1 / t_serve``: throughput grows linearly until
  ``N* = (τ t_c + t_w + t_rt) / t_serve`` and is flat beyond (the single-master bottleneck).
* **with M sub-masters**, each serves N/M workers and forwards one message per round of its
  workers, so the cap becomes ``min(M, N/M) / t_serve``, largest at M = √N: the cap grows like
  √N instead of staying fixed.

* **on one machine** (:func:`shared_cores`): K compute-bound processes on C < K cores
  time-share them, so each step takes K/C times longer (an asynchronous master counts: it
  polls back to back for a millisecond after each message, so under frequent exchanges it is
  busy). This is what lets the model be checked against runs on a small machine.

The network inputs should be measured where the model is applied: on one host,
``benchmarks/bench_transport.py`` (jetlab's transport) and the gloo all-reduce timing of
``benchmarks/bench_distributed.py``; across nodes, the interconnect's.

Shapes: scalars; :func:`predict` returns a dict per N.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["Network", "Workload", "allreduce_speedup", "async_speedup", "predict", "scaling_limit", "shared_cores"]


@dataclasses.dataclass(frozen=True)
class Network:
    bandwidth: float = 25e9     # bytes/s of one link
    latency: float = 5e-6       # s per message


@dataclasses.dataclass(frozen=True)
class Workload:
    """One algorithm's costs: compute per update, bytes per exchange, master CPU per exchange."""

    step_s: float               # t_c: one worker's forward + backward + step
    gradient_bytes: float       # S: what all-reduce sums (4 bytes per parameter)
    bytes_in: float = 0.0       # what the master receives per exchange
    bytes_out: float = 0.0      # what it sends per exchange
    master_s: float = 0.0       # t_m: the master's CPU per exchange
    sync_every: int = 1         # τ
    worker_s: float = 0.0       # t_w: a worker's CPU per exchange beyond its step


def shared_cores(work: Workload, processes: int, cores: int) -> Workload:
    """``work`` when ``processes`` compute-bound ranks share ``cores`` cores: t_c × max(1, K/C)."""
    return dataclasses.replace(work, step_s=work.step_s * max(1.0, processes / cores))


def allreduce_speedup(n: int, work: Workload, net: Network) -> float:
    if n <= 1:
        return 1.0
    comm = 2 * math.ceil(math.log2(n)) * net.latency + 2 * (n - 1) / n * work.gradient_bytes / net.bandwidth
    return n * work.step_s / (work.step_s + comm)


def _serve_s(work: Workload, net: Network) -> float:
    return work.master_s + (work.bytes_in + work.bytes_out) / net.bandwidth


def async_speedup(n: int, work: Workload, net: Network, masters: int = 1) -> float:
    """Throughput speed-up of n workers under one master (masters = 1) or ``masters`` sub-masters."""
    serve = _serve_s(work, net)
    cycle = work.sync_every * work.step_s + work.worker_s + 2 * net.latency + (work.bytes_in + work.bytes_out) / net.bandwidth \
        + work.master_s
    demand = n / cycle                                    # exchanges per second asked for
    cap = (min(masters, n / masters) if masters > 1 else 1) / serve
    return min(demand, cap) * work.sync_every * work.step_s


def scaling_limit(work: Workload, net: Network, algorithm: str, masters: str | int = 1,
                  efficiency: float = 0.5, largest: int = 1 << 20) -> int:
    """The first N (doubling from 1) at which the parallel efficiency falls below ``efficiency``
    (``largest`` when it never does); ``masters="sqrt"`` puts √N sub-masters over N workers."""
    n = 1
    while n < largest:
        n *= 2
        if _speedup(algorithm, n, work, net, masters) / n < efficiency:
            return n
    return largest


def _speedup(algorithm: str, n: int, work: Workload, net: Network, masters: str | int) -> float:
    if algorithm == "allreduce":
        return allreduce_speedup(n, work, net)
    m = max(1, round(math.sqrt(n))) if masters == "sqrt" else int(masters)
    return async_speedup(n, work, net, m)


def predict(workloads: dict[str, Workload], net: Network, workers=(8, 16, 32, 64, 128, 256, 512)) -> dict:
    """``{algorithm: {"speedup": {N: s}, "speedup_sqrt_masters": {N: s}, "limit": N, "limit_sqrt_masters": N}}``."""
    out = {}
    for algorithm, work in workloads.items():
        entry = {"speedup": {n: _speedup(algorithm, n, work, net, 1) for n in workers},
                 "limit": scaling_limit(work, net, algorithm)}
        if algorithm != "allreduce":
            entry["speedup_sqrt_masters"] = {n: _speedup(algorithm, n, work, net, "sqrt") for n in workers}
            entry["limit_sqrt_masters"] = scaling_limit(work, net, algorithm, "sqrt")
        out[algorithm] = entry
    return out
