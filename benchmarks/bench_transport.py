"""Round trip of one exchange through jetlab's transport against bare mpi4py, on this machine.

Run under two MPI ranks::

    mpiexec -n 2 python benchmarks/bench_transport.py [--params 0 4389 100000] [--repeats 2000]
                                                      [--gaps 0 0.005] [--out DIR]

Rank 1 plays a worker and rank 0 a master. For a network of P parameters the worker sends a
message of 4P + 56 bytes and waits for an answer of the same size; ``--gaps`` is the time the
worker "computes" (sleeps) between two exchanges, so that the master has gone idle when the
request arrives, as it has in training.

* **mpi4py**: blocking ``Send``/``Recv`` of the same bytes (what MPI itself gives on one host).
* **jetlab**: the worker's :meth:`ParentLink.request` (encode, ``Isend``, polled receive,
  decode) and the master's loop (:meth:`MpiTransport.poll` with :class:`Idle` between polls,
  then an encoded reply), exactly as in training, without the update rule.

The two alternate in chunks, so that both see the same load of the machine. Prints the median
and 10th-percentile round trip (µs) of each and their ratios, and a least-squares fit of
``round trip = 2 L + 2 bytes / B`` to the 10th percentiles (the transport's latency L and
bandwidth B when neither rank is preempted, the inputs of :mod:`jetlab.distributed.scaling`). Writes OUT/bench_transport.json on rank 0.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from mpi4py import MPI

from jetlab.distributed.transport import Idle, Kind, Message, MpiTransport, ParentLink, encode

STOP_AFTER = -1
CHUNKS = 10


def bare(comm, rank: int, nbytes: int, repeats: int, gap: float) -> list[float]:
    buffer = np.zeros(nbytes, dtype=np.uint8)
    times = []
    for _ in range(repeats):
        if rank == 1:
            if gap:
                time.sleep(gap)
            start = time.perf_counter()
            comm.Send([buffer, MPI.BYTE], dest=0, tag=1)
            comm.Recv([buffer, MPI.BYTE], source=0, tag=1)
            times.append(time.perf_counter() - start)
        else:
            comm.Recv([buffer, MPI.BYTE], source=1, tag=1)
            comm.Send([buffer, MPI.BYTE], dest=1, tag=1)
    return times


def through_jetlab(transport: MpiTransport, rank: int, params: int, repeats: int, gap: float) -> list[float]:
    vector = torch.zeros(params) if params else None
    times = []
    if rank == 1:
        link = ParentLink(transport, 0, timeout_s=60.0)
        for i in range(repeats + 1):
            if gap:
                time.sleep(gap)
            start = time.perf_counter()
            reply = link.request(Message(Kind.UPDATE, count=STOP_AFTER if i == repeats else 1, payload=vector))
            times.append(time.perf_counter() - start)
            assert reply.kind == Kind.WEIGHTS
        transport.flush()
        return times[:-1]
    idle = Idle()
    while True:
        message = transport.poll()
        if message is None:
            idle.wait()
            continue
        idle.busy()
        transport.send(message.source, Message(Kind.WEIGHTS, payload=vector))
        if message.count == STOP_AFTER:
            transport.flush()
            return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=int, nargs="+", default=[0, 4389, 100_000])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--gaps", type=float, nargs="+", default=[0.0, 0.005], help="worker compute between exchanges (s)")
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    if comm.Get_size() != 2:
        raise SystemExit("run under exactly two ranks: mpiexec -n 2 python benchmarks/bench_transport.py")
    rows = []
    transport = MpiTransport(comm)
    for gap in args.gaps:
        repeats = args.repeats if not gap else max(100, min(args.repeats, int(2.0 / gap)))
        for params in args.params:
            nbytes = len(encode(Message(Kind.UPDATE, payload=torch.zeros(params) if params else None)))
            mpi, ours = [], []
            for _ in range(CHUNKS):   # alternate, so that both see the same load of the machine
                comm.Barrier()
                mpi += bare(comm, rank, nbytes, repeats // CHUNKS, gap)
                comm.Barrier()
                ours += through_jetlab(transport, rank, params, repeats // CHUNKS, gap)
            comm.Barrier()
            if rank == 1:
                rows.append({"gap_s": gap, "params": params, "bytes": nbytes, "repeats": len(mpi),
                             "mpi4py_us": 1e6 * statistics.median(mpi), "jetlab_us": 1e6 * statistics.median(ours),
                             "mpi4py_p10_us": 1e6 * np.percentile(mpi, 10),
                             "jetlab_p10_us": 1e6 * np.percentile(ours, 10)})
    rows = comm.bcast(rows, root=1)
    if rank != 0:
        return
    fit = {}
    for name in ("mpi4py", "jetlab"):   # from the 10th percentiles: the cost when neither rank is preempted
        points = [(2 * r["bytes"], 1e-6 * r[f"{name}_p10_us"]) for r in rows if r["gap_s"] == 0]
        if len(points) >= 2:
            slope, intercept = np.polyfit([p[0] for p in points], [p[1] for p in points], 1)
            fit[name] = {"latency_s": intercept / 2, "bandwidth_Bps": 1 / slope if slope > 0 else float("inf")}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; round trip in µs, median (10th percentile)")
    print(f"{'gap ms':>7} {'params':>8} {'bytes':>8} {'mpi4py':>16} {'jetlab':>16} {'ratio':>12}")
    for r in rows:
        print(f"{1e3 * r['gap_s']:7.1f} {r['params']:8d} {r['bytes']:8d} {r['mpi4py_us']:8.1f} ({r['mpi4py_p10_us']:5.1f}) "
              f"{r['jetlab_us']:8.1f} ({r['jetlab_p10_us']:5.1f}) {r['jetlab_us'] / r['mpi4py_us']:5.2f} "
              f"({r['jetlab_p10_us'] / r['mpi4py_p10_us']:4.2f})")
    for name, f in fit.items():
        print(f"{name}: latency {1e6 * f['latency_s']:.1f} µs, bandwidth {f['bandwidth_Bps'] / 1e9:.2f} GB/s")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"date": datetime.date.today().isoformat(), "load_average": os.getloadavg()[0], "machine": platform.platform(),
              "cpu": platform.processor() or platform.machine(), "rows": rows, "fit": fit}
    (args.out / "bench_transport.json").write_text(json.dumps(report, indent=1))
    print(f"-> {args.out / 'bench_transport.json'}")


if __name__ == "__main__":
    main()
