"""What optimal-transport pairing and the weight average cost a flow-matching training step.

One training step (forward, backward, Adam, and with ``--ema-decay`` the average's update) of
the default flow (EPiC 16/64/3, jet conditions, log pT_rel) on batches of real jets, for the
four recipes ``--flow-pairing independent|ot`` × ``--ema-decay 0|0.999``; baseline: the
independent pairing without an average, timed in the same run, the recipes interleaved
batch block by batch block so a shared machine's load falls on all alike. Prints ms per
step of ``--batch-size`` jets (CPU time of this process) and the ratio to the baseline.

    python benchmarks/bench_flow_step.py --data /path/g30.hdf5 --jet-class g [--batches 30 --repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from jetlab.models.flow import FlowGenerator
from jetlab.training.point_sets import Normalisation, load_point_sets
from jetlab.training.tasks.flow import FlowTask, JetConditions

RECIPES = {"independent": ("independent", 0.0), "independent + EMA": ("independent", 0.999),
           "ot": ("ot", 0.0), "ot + EMA": ("ot", 0.999)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--jet-class", default="g")
    parser.add_argument("--particles", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_point_sets(args.data, jet_class=args.jet_class, particles=args.particles,
                           max_train=args.batch_size * args.batches)
    norm = Normalisation.fit(data.train, data.train_mask, (2,))
    conditions = JetConditions.fit(data.train, data.train_mask)
    batches = [{"points": torch.as_tensor(data.train[i:i + args.batch_size]),
                "mask": torch.as_tensor(data.train_mask[i:i + args.batch_size])}
               for i in range(0, len(data.train) - args.batch_size + 1, args.batch_size)]
    tasks = {}
    for name, (pairing, decay) in RECIPES.items():
        torch.manual_seed(0)
        flow = FlowGenerator(args.particles, 3, n_cond=JetConditions.n_cond)
        tasks[name] = FlowTask(flow, torch.optim.Adam(flow.parameters(), lr=1e-3), norm, kind="jets",
                               conditions=conditions, pairing=pairing, ema_decay=decay)
    seconds = dict.fromkeys(tasks, 0.0)
    for _ in range(args.repeats):
        for name, task in tasks.items():
            optimizer = task.optimizers["flow"]

            def update(_, loss, optimizer=optimizer):
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            start = time.process_time()
            for batch in batches:
                task.train_step(batch, update)
            seconds[name] += time.process_time() - start
    steps = args.repeats * len(batches)
    print(f"# bench_flow_step  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  {platform.machine()}  "
          f"torch={torch.__version__}  1 thread  {args.data} ({args.jet_class}, {args.particles} particles)")
    base = seconds["independent"]
    for name, total in seconds.items():
        print(f"{name:20s} {total / steps * 1e3:7.2f} ms/step of {args.batch_size} jets   "
              f"ratio to independent {total / base:.2f}")


if __name__ == "__main__":
    main()
