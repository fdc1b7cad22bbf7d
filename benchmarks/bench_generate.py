"""Jet generation speed: ``jetlab data generate`` against the bare Pythia 8 ``next()`` loop.

Baseline: bare Pythia with exactly the settings jetlab uses for the class, initialised and
asked for events with ``next()`` and nothing else, on *the same events*, *in the same
minutes*. The two alternate: jetlab makes :data:`ROUND_JETS` jets of the class (a whole
``generate_dataset`` call with seed ``r + 1`` in round ``r``: Pythia, clustering, matching, features,
substructure, images, the blocks and the HDF5 file written), then bare Pythia, reseeded with
each of those blocks' Pythia seeds in turn, generates as many events as jetlab's Pythia needed
for the block: the very same events. A shared VM's speed drifts by tens of per cent within
minutes (BENCHMARKS.md); alternating in ~5 s slices makes the drift hit both sides alike, and
identical events remove the event-to-event spread of Pythia's time. Each side initialises
its Pythia once.

Printed ratios:

* ``per_core_ratio`` = jetlab events/s per worker / bare Pythia events/s (target >= 0.8),
* ``per_core_cpu_ratio`` = the same per CPU second of this process (``time.process_time``):
  what one core does when the machine is shared, which wall seconds on a busy VM do not show,
* ``scaling_2w`` = jetlab jets/s with 2 workers / with 1 worker (target >= 1.8),
* ``dask_scaling_2w`` = the same with ``--cluster local:2`` / ``local:1`` (a Dask LocalCluster;
  its start-up is part of the time; skipped without the ``cluster`` extra or with ``--no-dask``).

The compiled substructure code is loaded (or compiled once, ~20 s) before anything is timed.

Usage: ``python benchmarks/bench_generate.py [--jets-per-class 1000] [--classes g,q,w,z,t] [--no-dask]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("JETLAB_NO_PROGRESS", "1")


#: jets per class made by one jetlab call of the alternation (one file of this many jets)
ROUND_JETS = 500


def paired_per_core(jet_class: str, n_jets: int, workdir: Path) -> dict[str, float]:
    """jetlab and bare Pythia alternating on the same events (module docstring).

    Returns wall and CPU seconds of each side, the events and jetlab's jets.
    """
    import pythia8mc

    from jetlab.data.generate import pythia_settings

    totals = dict.fromkeys(("jetlab_wall", "jetlab_cpu", "bare_wall", "bare_cpu", "events", "jets"), 0.0)
    with timed_into(totals, "bare"):
        pythia = pythia8mc.Pythia("", False)
        for line in pythia_settings(jet_class, 1):
            pythia.readString(line)
        pythia.init()
    for r, first in enumerate(range(0, n_jets, ROUND_JETS)):
        with recorded_blocks() as blocks:
            wall, events, jets, cpu = jetlab_run(workdir / f"{jet_class}-{r}", [jet_class],
                                                 min(ROUND_JETS, n_jets - first), workers=1, seed=r + 1)
        if sum(n for _, n in blocks) != events:  # the bare side must replay every block
            raise SystemExit(f"recorded {sum(n for _, n in blocks)} block events, the files hold {events}")
        for key, value in (("jetlab_wall", wall), ("jetlab_cpu", cpu), ("events", events), ("jets", jets)):
            totals[key] += value
        with timed_into(totals, "bare"):
            for seed, block_events in blocks:  # the same events as jetlab's Pythia, block by block
                pythia.rndm.init(seed)
                done = 0
                while done < block_events:
                    if pythia.next():
                        done += 1
    return totals


@contextlib.contextmanager
def timed_into(totals: dict, side: str):
    """Add the wall and CPU seconds of the ``with`` block to ``totals[side + "_wall" / "_cpu"]``."""
    start, start_cpu = time.perf_counter(), time.process_time()
    yield
    totals[f"{side}_wall"] += time.perf_counter() - start
    totals[f"{side}_cpu"] += time.process_time() - start_cpu


@contextlib.contextmanager
def recorded_blocks():
    """Collect (Pythia seed, events used) of every block jetlab generates in this process."""
    import jetlab.data.generate as generate

    original, blocks = generate.run_block, []

    def recording(task):
        arrays = original(task)
        blocks.append((task[5], int(arrays["events"])))
        return arrays

    generate.run_block = recording
    try:
        yield blocks
    finally:
        generate.run_block = original


def jetlab_run(out: Path, classes: list[str], jets_per_class: int, workers: int | None, cluster: str | None = None,
               seed: int = 1) -> tuple[float, int, int, float]:
    """(wall seconds, events, jets, CPU seconds of this process) of one ``generate_dataset`` call."""
    import h5py

    try:
        from jetlab.data.driver import generate_dataset
    except ImportError:  # a jetlab from before the driver (measuring "before" numbers)
        from jetlab.data.driver import generate_dataset

    options = {"cluster": cluster} if cluster else {}
    start, start_cpu = time.perf_counter(), time.process_time()
    files = generate_dataset(out, classes=classes, jets_per_class=jets_per_class, n_particles=30, seed=seed,
                             workers=workers, show_progress=False, **options)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    events = jets = 0
    for path in files:
        with h5py.File(path, "r") as f:
            events += int(f.attrs["n_events"])
            jets += len(f["jets"])
    return wall, events, jets, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jets-per-class", type=int, default=1000)
    parser.add_argument("--classes", default="g,q,w,z,t")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster scaling")
    args = parser.parse_args()
    classes = args.classes.split(",")
    warm_up()

    print(f"# bench_generate  {datetime.now(UTC):%Y-%m-%d %H:%M UTC}  {platform.node()}  "
          f"{platform.processor() or platform.machine()}  cores={os.cpu_count()}  python={sys.version.split()[0]}")
    print(f"{'class':>5} {'bare ev/s':>10} {'jetlab ev/s':>12} {'jetlab jets/s':>14} {'ratio':>6} {'CPU ratio':>9}")
    ratios, cpu_ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for c in classes:
            t = paired_per_core(c, args.jets_per_class, Path(tmp))
            ratios.append(t["bare_wall"] / t["jetlab_wall"])
            cpu_ratios.append(t["bare_cpu"] / t["jetlab_cpu"])
            print(f"{c:>5} {t['events'] / t['bare_wall']:>10.1f} {t['events'] / t['jetlab_wall']:>12.1f} "
                  f"{t['jets'] / t['jetlab_wall']:>14.1f} {ratios[-1]:>6.2f} {cpu_ratios[-1]:>9.2f}")
        one = jetlab_run(Path(tmp) / "w1", classes, args.jets_per_class, workers=1)
        two = jetlab_run(Path(tmp) / "w2", classes, args.jets_per_class, workers=2)
        dask = None if args.no_dask or not has_dask() else [
            jetlab_run(Path(tmp) / f"dask{n}", classes, args.jets_per_class, None, cluster=f"local:{n}") for n in (1, 2)
        ]
    scaling = (two[2] / two[0]) / (one[2] / one[0])
    print(f"all classes, {args.jets_per_class} jets each: 1 worker {one[2] / one[0]:.1f} jets/s, "
          f"2 workers {two[2] / two[0]:.1f} jets/s")
    summary = (f"per_core_ratio={min(ratios):.2f} (min over classes; mean {sum(ratios) / len(ratios):.2f})  "
               f"per_core_cpu_ratio={min(cpu_ratios):.2f} (mean {sum(cpu_ratios) / len(cpu_ratios):.2f})  scaling_2w={scaling:.2f}")
    if dask:
        (w1, _, j1, _), (w2, _, j2, _) = dask
        print(f"dask LocalCluster: 1 worker {j1 / w1:.1f} jets/s, 2 workers {j2 / w2:.1f} jets/s")
        summary += f"  dask_scaling_2w={(j2 / w2) / (j1 / w1):.2f}"
    print(summary)


def warm_up() -> None:
    """Load (or compile, once) the compiled substructure kernels outside the timings."""
    import numpy as np

    from jetlab.physics.substructure import jet_substructure

    jet_substructure(np.array([[10.0, 1.0, 3.0, 10.6], [5.0, -1.0, 2.0, 5.5], [7.0, 0.5, 1.0, 7.1]]))


def has_dask() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
