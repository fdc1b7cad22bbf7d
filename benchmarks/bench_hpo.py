"""Hyperparameter search (``jetlab hpo``): samplers against random search at an equal trial
budget, and one worker against two on the same study.

1. **Samplers.** A fixed small problem: the DNN tagger on the 16 high-level features of a
   fixed jet set and split, ``--epochs`` epochs, training seed 0, one thread, so a
   configuration always scores the same. Its space (numeric, so that CMA-ES has something to
   evolve): Adam's lr (log 1e-4..0.3), weight decay (log 1e-6..1e-2), batch size (log
   16..256), dropout (0..0.5). Each sampler runs ``--seeds`` studies (sampler seeds 0..S-1)
   of ``--trials`` trials, no pruning. Printed per sampler: the mean (and standard deviation)
   over seeds of the best validation accuracy after n trials, the remaining error
   ``1 - best`` relative to random search's (< 1: better), and on how many seeds it beat
   random search after all trials. The baseline, random search, runs in the same process.
2. **Workers.** One study of ``--worker-trials`` trials of ``--worker-epochs`` epochs run by
   one ``jetlab hpo run`` process, then a fresh one by two processes at once (SQLite, one
   thread each): the ratio of wall times (ideal 2 on two free cores).

Usage::

    python benchmarks/bench_hpo.py --data /tmp/hpo-jets [--trials 20 --seeds 5 --epochs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SPACE = """\
settings:
  lr: {type: float, low: 1.0e-4, high: 0.3, log: true}
  weight_decay: {type: float, low: 1.0e-6, high: 1.0e-2, log: true}
  batch_size: {type: int, low: 16, high: 256, log: true}
hparams:
  dropout: {type: float, low: 0.0, high: 0.5}
"""


def _study_flags(args, space: Path, directory: Path, name: str, epochs: int | None = None) -> list[str]:
    return ["--study", name, "--dir", str(directory), "--model", "dnn", "--data", args.data, "--space", str(space),
            "--epochs", str(epochs or args.epochs), "--patience", "0", "--threads", "1", "--pruner", "none",
            "--heartbeat", "0"]


def best_curve(storage: str, name: str, n: int) -> np.ndarray:
    """Best validation accuracy after 1..n trials (trials without a value count, scoring nothing)."""
    import optuna

    trials = sorted(optuna.load_study(study_name=name, storage=storage).get_trials(), key=lambda t: t.number)[:n]
    values = [t.value if t.state.name == "COMPLETE" else 0.0 for t in trials]
    return np.maximum.accumulate(np.array(values + [values[-1]] * (n - len(values))))


def compare_samplers(args, root: Path, space: Path) -> None:
    import logging

    from jetlab.cli.main import main

    logging.disable(logging.INFO)  # the trials' own logs
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = args.samplers.split(",")
    curves: dict[str, list[np.ndarray]] = {s: [] for s in samplers}
    seconds: dict[str, float] = {s: 0.0 for s in samplers}
    for seed in range(args.seeds):
        for sampler in samplers:
            name = f"{sampler}-{seed}"
            directory = root / name
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                code = main(["hpo", "run", *_study_flags(args, space, directory, name), "--sampler", sampler,
                             "--sampler-seed", str(seed), "--trials", str(args.trials)])
            if code:
                raise SystemExit(f"study {name} failed")
            seconds[sampler] += time.perf_counter() - start
            curves[sampler].append(best_curve(f"sqlite:///{directory}/study.db", name, args.trials))
            print(f"  seed {seed} {sampler:>6}: best {curves[sampler][-1][-1]:.4f} "
                  f"({seconds[sampler] / (seed + 1):.0f} s per study)", flush=True)
    checkpoints = sorted({max(1, args.trials // 4), max(1, args.trials // 2), args.trials})
    random = np.array(curves["random"]) if "random" in curves else None
    print(f"\nbest validation accuracy after n trials, mean ± std over {args.seeds} seeds "
          f"(DNN, {args.epochs} epochs, {args.trials} trials per study)")
    print("sampler  " + "  ".join(f"n={n:<3d}          " for n in checkpoints)
          + "  error/random (n=N)  beats random")
    for sampler in samplers:
        c = np.array(curves[sampler])
        cells = "  ".join(f"{c[:, n - 1].mean():.4f} ± {c[:, n - 1].std():.4f}" for n in checkpoints)
        if random is not None and sampler != "random":
            ratio = (1 - c[:, -1]).mean() / (1 - random[:, -1]).mean()
            wins = f"{int((c[:, -1] > random[:, -1]).sum())}/{args.seeds} (ties {int((c[:, -1] == random[:, -1]).sum())})"
        else:
            ratio, wins = 1.0, "-"
        print(f"{sampler:>7}  {cells}  {ratio:18.3f}  {wins}")


def compare_workers(args, root: Path, space: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["JETLAB_NO_PROGRESS"] = "1"
    times = {}
    for workers in (1, 2):
        name = f"workers-{workers}"
        command = [sys.executable, "-m", "jetlab", "hpo", "run",
                   *_study_flags(args, space, root / name, name, args.worker_epochs), "--sampler", "random"]
        subprocess.run(command + ["--trials", "0"], check=True, env=env, capture_output=True)  # create it first
        start = time.perf_counter()
        processes = [subprocess.Popen(command + ["--trials", str(args.worker_trials), "--sampler-seed", str(k)],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for k in range(workers)]
        if any(p.wait() for p in processes):
            raise SystemExit(f"a worker of {name} failed")
        times[workers] = time.perf_counter() - start
        print(f"  {workers} worker(s): {args.worker_trials} trials in {times[workers]:.1f} s", flush=True)
    print(f"2 workers vs 1 on one study ({args.worker_trials} trials): {times[1] / times[2]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="jet files (e.g. `jetlab data generate ... --out DIR`)")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samplers", default="tpe,gp,cmaes,nsga2,random", help="random is the baseline")
    parser.add_argument("--worker-trials", type=int, default=8)
    parser.add_argument("--worker-epochs", type=int, default=20, help="long enough that training, not the "
                        "per-trial and per-process overheads, takes the time")
    parser.add_argument("--skip", choices=("samplers", "workers"), help="leave one part out")
    args = parser.parse_args()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# bench_hpo  {now}  {platform.node()}  {platform.machine()}  cores={os.cpu_count()}  "
          f"python={platform.python_version()}  load={os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-hpo-") as tmp:
        root = Path(tmp)
        space = root / "space.yaml"
        space.write_text(SPACE)
        if args.skip != "samplers":
            compare_samplers(args, root, space)
        if args.skip != "workers":
            compare_workers(args, root, space)


if __name__ == "__main__":
    main()
