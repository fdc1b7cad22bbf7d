"""Fast JEDI-net (blocked torch; fused Triton kernels on CUDA) against the dense R_r/R_s form.

For N = 30, 50, 100, 150 particles with the paper's hyperparameters, batches of
``--batch`` jets (all particles real, the worst case for the fast model, which drops
trailing padding), the same weights in every implementation:

* training step time (forward + cross-entropy backward + Adam step) and inference time
  (forward under ``torch.no_grad``), reported as jets/s; each figure is the best of
  ``--repeats`` rounds, the implementations interleaved round by round so that load from
  other processes hits them alike;
* peak memory of one step. CPU: measured in a fresh subprocess per case: glibc is told to
  serve every allocation over 64 KiB with its own mmap (``MALLOC_MMAP_THRESHOLD_``), so
  freed tensors leave the resident set at once; after one warm-up step the kernel's
  peak-RSS counter is reset (``echo 5 > /proc/self/clear_refs``) and the figure is
  ``VmHWM - VmRSS`` across one more step: the extra memory the step needed on top of the
  model, the batch, the optimiser state and (dense) the cached R_r/R_s. CUDA:
  ``torch.cuda.max_memory_allocated`` over one warmed-up step, minus what was allocated before.

Implementations: ``fast`` is :class:`jetlab.models.JEDINet` with ``kernel=torch`` (fused
blocked edge sum, recomputed in backward); ``auto`` (CPU) the same blocks through plain
autograd (what the recomputation saves in memory and costs in time); ``triton`` (CUDA, when
Triton imports) ``kernel=triton``, the fused kernels of :mod:`jetlab.models.jedinet_triton`;
``compile`` (CUDA) ``torch.compile`` of the ``fast`` model. Baselines:
:class:`jetlab.models.DenseJEDINet` (R_r, R_s built once per N, as the reference code does)
and, when ``torch_geometric`` imports, a ``MessagePassing`` module over the explicit edge
list (``aggr="add"``) using the same f_R/f_O/φ_C modules. The ratios are against the
reference implementation: ``triton`` on CUDA (``fast`` without Triton), ``fast`` on CPU.

Threads (CPU): one by default. On a machine shared with other busy processes every intra-op
parallel region ends in a barrier that waits for a descheduled thread; that punishes the
fast model's many medium-sized ops far more than the dense model's few huge matmuls, and
makes the ratios depend on the neighbours' load. ``--threads 2`` measures both cores.

Usage: ``python benchmarks/bench_jedinet.py [--quick] [--threads 1] [--batch 100[,1000]]
[--repeats 5] [--device cpu|cuda] [--dtype float32|bfloat16] [--no-compile]``.
GPU, one command: ``python benchmarks/bench_jedinet.py --device cuda --quick`` (N = 30, 100;
batches 100 and 1000; ``torch.compile`` only at N = 100, batch 1000).
The last line printed is ``speedup_train_N100=<x> speedup_infer_N100=<y>`` (dense/reference),
on CUDA followed by the Triton kernels' speed-ups over every implementation at N = 100.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

try:
    import jetlab  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from jetlab.models import DenseJEDINet, JEDINet

N_FEATURES = 16
N_CLASSES = 5


# -- the optional PyTorch Geometric baseline ---------------------------------------------------
def make_pyg_model(fast: JEDINet):
    """A PyG MessagePassing JEDI-net sharing ``fast`` 's modules, or None without torch_geometric."""
    try:
        from torch_geometric.nn import MessagePassing
    except Exception:  # noqa: BLE001 - any import problem means "not available"
        return None

    class PygJEDINet(MessagePassing):
        """``ē_r = Σ_{s -> r} f_R([x_r; x_s])`` over an explicit edge list, then f_O and φ_C."""

        def __init__(self, model: JEDINet):
            super().__init__(aggr="add", flow="source_to_target")
            self.model = model
            self._edges: dict[tuple, torch.Tensor] = {}

        def edge_index(self, batch: int, n: int, device: torch.device) -> torch.Tensor:
            if (batch, n, device) not in self._edges:
                senders, receivers = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
                keep = senders != receivers
                offsets = (torch.arange(batch) * n).view(-1, 1)
                src = (senders[keep].view(1, -1) + offsets).reshape(-1)
                dst = (receivers[keep].view(1, -1) + offsets).reshape(-1)
                self._edges[(batch, n, device)] = torch.stack([src, dst]).to(device)
            return self._edges[(batch, n, device)]

        def forward(self, particles: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
            B, N, P = particles.shape  # all particles real in this benchmark
            x = particles.reshape(B * N, P)
            e_bar = self.propagate(self.edge_index(B, N, x.device), x=x)  # (B·N, D_E)
            p = self.model.f_O(torch.cat([x, e_bar], dim=-1)).view(B, N, -1)
            return self.model.phi_C(p.sum(dim=1) if self.model.sum_o else p.reshape(B, -1))

        def message(self, x_i: torch.Tensor, x_j: torch.Tensor) -> torch.Tensor:
            return self.model.f_R(torch.cat([x_i, x_j], dim=-1))  # x_i receiver, x_j sender

    return PygJEDINet(fast)


# -- one case ----------------------------------------------------------------------------------
def build_case(n_particles: int, batch: int, impl: str, seed: int = 0, device: str = "cpu",
               dtype: torch.dtype = torch.float32):
    """(model, particles, mask, labels, optimizer) for one implementation; same weights and data."""
    torch.manual_seed(seed)
    fast = JEDINet(n_particles, N_FEATURES, N_CLASSES, kernel="torch")
    particles = torch.randn(batch, n_particles, N_FEATURES, device=device, dtype=dtype)
    mask = torch.ones(batch, n_particles, dtype=torch.bool, device=device)
    labels = torch.randint(0, N_CLASSES, (batch,), device=device)
    if impl in ("fast", "compile"):
        model = fast
    elif impl == "auto":  # the same blocks through plain autograd, no recomputation
        model = fast
        model.fused_edge_sum = False
    elif impl == "dense":
        model = DenseJEDINet(n_particles, N_FEATURES, N_CLASSES)
        model.load_state_dict(fast.state_dict())
    elif impl == "triton":
        model = JEDINet(n_particles, N_FEATURES, N_CLASSES, kernel="triton")
        model.load_state_dict(fast.state_dict())
    elif impl == "pyg":
        model = make_pyg_model(fast)
    else:
        raise ValueError(impl)
    model = model.to(device, dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    if impl == "compile":
        model = torch.compile(model)
    return model, particles, mask, labels, optimizer


def step_function(model, particles, mask, labels, optimizer, mode: str):
    synchronize = torch.cuda.synchronize if particles.is_cuda else (lambda: None)
    if mode == "infer":
        def step():
            with torch.no_grad():
                model(particles, mask)
            synchronize()
    else:
        def step():
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(particles, mask), labels).backward()
            optimizer.step()
            synchronize()
    return step


def cuda_peak_memory(step) -> float:
    """Peak extra CUDA memory (MiB) of one (already warmed-up) step, from the caching allocator."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def _memory_status() -> dict[str, int]:
    with open("/proc/self/status") as status:
        return {line.split(":")[0]: int(line.split()[1]) * 1024 for line in status if line.startswith(("VmHWM", "VmRSS"))}


def memory_child(n_particles: int, batch: int, impl: str, mode: str) -> None:
    """Runs in a subprocess: prints the peak extra bytes of one step as JSON."""
    import gc

    case = build_case(n_particles, batch, impl)
    step = step_function(*case, mode)
    step()  # warm-up: lazy initialisation, Adam state, cached R_r/R_s or edge lists
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM to the current RSS
    before = _memory_status()["VmRSS"]
    step()
    print(json.dumps({"peak_bytes": _memory_status()["VmHWM"] - before}))


def peak_memory(n_particles: int, batch: int, impl: str, mode: str, threads: int) -> float | None:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}
    command = [sys.executable, __file__, "--memory-child", f"{n_particles},{batch},{impl},{mode}", "--threads", str(threads)]
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=True)
        return json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"] / 2**20
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError) as error:
        print(f"  memory measurement failed for N={n_particles} {impl} {mode}: {error}", file=sys.stderr)
        return None


def best_times(steps: dict[str, callable], repeats: int, min_seconds: float) -> dict[str, float]:
    """Best seconds per call of each step, implementations interleaved round by round."""
    calls = {}
    for name, step in steps.items():
        step()  # warm-up
        start = time.perf_counter()
        step()
        calls[name] = max(1, int(min_seconds / max(time.perf_counter() - start, 1e-9)))
    best = {name: float("inf") for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                step()
            best[name] = min(best[name], (time.perf_counter() - start) / calls[name])
    return best


def check_agreement(cases: dict, n_particles: int, tolerance: float) -> None:
    """All implementations give the same logits on the benchmark batch (else the timing is moot)."""
    reference = None
    for name, (model, particles, mask, _, _) in cases.items():
        with torch.no_grad():
            logits = model(particles, mask).float()
        if reference is None:
            reference, reference_name = logits, name
        elif not torch.allclose(logits, reference, atol=tolerance, rtol=tolerance):
            raise SystemExit(f"N={n_particles}: {name} disagrees with {reference_name} by "
                             f"{(logits - reference).abs().max():.3g}")


def triton_version() -> str | None:
    """Triton's version when the fused kernels can be used, else None."""
    try:
        import triton

        from jetlab.models import jedinet_triton  # noqa: F401
    except Exception:  # noqa: BLE001 - any import problem means "not available"
        return None
    return triton.__version__


def describe_machine(device: str, threads: int) -> str:
    """torch (and on CUDA the GPU, driver, CUDA runtime and Triton) versions."""
    if device != "cuda":
        return f"torch {torch.__version__}, {threads} threads"
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=60)
        driver = smi.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        driver = "unknown (nvidia-smi failed)"
    props = torch.cuda.get_device_properties(0)
    return (f"GPU {props.name} (sm_{props.major}{props.minor}, {props.total_memory / 2**30:.0f} GiB, "
            f"{props.multi_processor_count} SMs), driver {driver}, CUDA runtime {torch.version.cuda}, "
            f"torch {torch.__version__}, triton {triton_version() or 'not available'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="N = 30 and 100 only, fewer repeats (CUDA: torch.compile at N = 100, largest batch only)")
    parser.add_argument("--batch", default=None, help="comma-separated batch sizes (default CPU 100, CUDA 100,1000)")
    parser.add_argument("--repeats", type=int, default=None, help="timing rounds (default 5, quick 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads (default 1: reproducible on a shared machine, see docstring)")
    parser.add_argument("--particles", default=None, help="comma-separated particle counts")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (CUDA memory from the caching allocator)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--no-compile", action="store_true", help="CUDA: skip the torch.compile baseline")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_child:
        n, batch, impl, mode = args.memory_child.split(",")
        memory_child(int(n), int(batch), impl, mode)
        return 0

    cuda = args.device == "cuda"
    dtype = getattr(torch, args.dtype)
    particle_counts = [int(n) for n in args.particles.split(",")] if args.particles else (
        [30, 100] if args.quick else [30, 50, 100, 150])
    batches = [int(b) for b in (args.batch or ("100,1000" if cuda else "100")).split(",")]
    repeats = args.repeats or (2 if args.quick else 5)
    min_seconds = 0.3 if args.quick else 1.0
    have_pyg = make_pyg_model(JEDINet(30, N_FEATURES)) is not None
    print(f"# bench_jedinet {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  {describe_machine(args.device, args.threads)}")
    print(f"# {args.dtype}, best of {repeats} rounds{'' if have_pyg else ', pyg: not available'}")
    if cuda:
        impls = (["triton"] if triton_version() else []) + ["fast", "dense"] + ([] if args.no_compile else ["compile"])
    else:
        impls = ["fast", "auto", "dense"]
    impls += ["pyg"] if have_pyg else []
    ref = impls[0]
    if "compile" in impls:  # one line per graph break of the blocked model otherwise
        logging.getLogger("torch._dynamo").setLevel(logging.ERROR)

    header = (f"{'N':>4} {'batch':>5} {'mode':>5} {'impl':>7} {'ms/batch':>9} {'jets/s':>9} {'x ' + ref:>8} "
              f"{'peak MiB':>9} {'mem/' + ref:>10}")
    print(header)
    print("-" * len(header))
    results: dict[tuple, tuple[float, float | None]] = {}  # (n, batch, mode, impl) -> (seconds, MiB)
    for n in particle_counts:
        for batch in batches:
            quick_skip = args.quick and (n != 100 or batch != batches[-1])  # compiling takes a minute per shape
            here = [i for i in impls if not (i == "compile" and quick_skip)]
            cases = {impl: build_case(n, batch, impl, device=args.device, dtype=dtype) for impl in here}
            check_agreement(cases, n, 1e-4 if dtype == torch.float32 else 5e-2)
            for mode in ("train", "infer"):
                steps = {impl: step_function(*case, mode) for impl, case in cases.items()}
                if "compile" in steps:
                    start = time.perf_counter()
                    steps["compile"]()
                    print(f"  (torch.compile: first {mode} step {time.perf_counter() - start:.1f} s)", flush=True)
                times = best_times(steps, repeats, min_seconds)
                if args.no_memory:
                    memory = {impl: None for impl in here}
                elif cuda:
                    memory = {impl: cuda_peak_memory(step) for impl, step in steps.items()}
                else:
                    memory = {impl: peak_memory(n, batch, impl, mode, args.threads) for impl in here}
                for impl in here:
                    mem = memory[impl]
                    mem_ratio = mem / memory[ref] if mem is not None and memory[ref] else None
                    results[(n, batch, mode, impl)] = (times[impl], mem)
                    print(f"{n:>4} {batch:>5} {mode:>5} {impl:>7} {times[impl] * 1e3:>9.2f} {batch / times[impl]:>9.0f} "
                          f"{times[impl] / times[ref]:>8.2f} {'n/a' if mem is None else f'{mem:.1f}':>9} "
                          f"{'n/a' if mem_ratio is None else f'{mem_ratio:.2f}':>10}", flush=True)
            del cases, steps
    print(f"x {ref} = this implementation's time / {ref}'s; mem/{ref} = its peak extra memory / {ref}'s")
    if 100 in particle_counts:
        b = batches[-1]
        dense = {mode: results[(100, b, mode, "dense")][0] / results[(100, b, mode, ref)][0] for mode in ("train", "infer")}
        print(f"speedup_train_N100={dense['train']:.2f} speedup_infer_N100={dense['infer']:.2f} (batch {b}, dense/{ref})")
        if ref == "triton":
            for mode in ("train", "infer"):
                base = results[(100, b, mode, "triton")]
                ratios = " ".join(f"{impl}={results[(100, b, mode, impl)][0] / base[0]:.2f}x" for impl in impls[1:]
                                  if (100, b, mode, impl) in results)
                print(f"triton_{mode}_N100_B{b}: {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
