"""What jetlab's most drawn figures cost: fixed margins against matplotlib's constrained layout.

Every generator run draws :func:`jetlab.viz.samples.plot_jet_images` and
:func:`~jetlab.viz.samples.plot_jet_feature_histograms` at the end of training, every
``--plot-every`` epochs and in ``fastsim evaluate``; every tagger run draws
:func:`jetlab.viz.tagging.plot_training_curve`. They are laid out with fixed margins;
baseline: the same figures with ``layout="constrained"`` (what they used before), which
measures every tick label before the drawing measures them again. The sample figures are
drawn on real and "generated" jets (two halves of a JetNet-layout file, or Gaussian jets when
no file is given), the training curve on a 25-epoch history; fixed and constrained are
interleaved repeat by repeat so a shared machine's load falls on both alike.
Prints the CPU seconds of this process per figure (best of ``--repeats``) and the ratio.

    python benchmarks/bench_figures.py [--data /path/g30.hdf5] [--jets 1000 --repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from jetlab.viz import samples
from jetlab.viz.style import pyplot
from jetlab.viz.tagging import plot_training_curve


def _jets(path: str | None, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two samples of n jets (points (n, 30, 3), mask (n, 30))."""
    if path:
        import h5py

        with h5py.File(path) as f:
            particles = f["particle_features"][: 2 * n]
        points, mask = particles[..., :3].astype(np.float64), particles[..., 3] > 0
    else:
        rng = np.random.default_rng(0)
        points = np.stack([rng.normal(0, 0.1, (2 * n, 30)), rng.normal(0, 0.1, (2 * n, 30)),
                           rng.dirichlet(np.ones(30), 2 * n)], -1)
        mask = np.ones((2 * n, 30), bool)
    return points[:n], mask[:n], points[n:], mask[n:]


@contextlib.contextmanager
def _constrained():
    """``pyplot().subplots`` with ``layout="constrained"`` and no fixed margins (the baseline)."""
    plt = pyplot()
    subplots = plt.subplots

    def constrained(*args, **kwargs):
        kwargs.pop("gridspec_kw", None)
        return subplots(*args, layout="constrained", **kwargs)

    plt.subplots = constrained
    try:
        yield
    finally:
        plt.subplots = subplots


def _cpu() -> float:
    return time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="a JetNet-layout file (default: Gaussian jets)")
    parser.add_argument("--jets", type=int, default=1000, help="jets in each sample (default: 1000, --plot-samples)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    real, real_mask, generated, generated_mask = _jets(args.data, args.jets)
    history = [{"epoch": e, "train_loss": 1.6 / e ** 0.3, "val_loss": 1.62 / e ** 0.3, "train_accuracy": 0.2 + e / 100,
                "val_accuracy": 0.21 + e / 100, "lr": 1e-3 * 0.95 ** e} for e in range(1, 26)]
    figures = {
        "jet images": lambda path: samples.plot_jet_images(real, real_mask, generated, generated_mask, path,
                                                           title="gluon flow: epoch 3"),
        "histograms": lambda path: samples.plot_jet_feature_histograms(real, real_mask, generated, generated_mask,
                                                                       path, title="gluon flow: epoch 3"),
        "training curve": lambda path: plot_training_curve(history, path, title="jedinet", best_epoch=20),
    }
    best = {(name, layout): float("inf") for name in figures for layout in ("fixed", "constrained")}
    with tempfile.TemporaryDirectory() as tmp:
        for draw in figures.values():  # once each, so fonts and caches are warm
            draw(Path(tmp) / "warm.png")
        for _ in range(args.repeats):
            for name, draw in figures.items():
                for layout in ("fixed", "constrained"):
                    with _constrained() if layout == "constrained" else contextlib.nullcontext():
                        start = _cpu()
                        draw(Path(tmp) / f"{layout}.png")
                        best[name, layout] = min(best[name, layout], _cpu() - start)
    print(f"# {platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{args.jets} + {args.jets} jets, best of {args.repeats}, CPU s of this process")
    print("| figure | fixed margins | constrained layout (baseline) | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for name in figures:
        fixed, constrained = best[name, "fixed"], best[name, "constrained"]
        print(f"| {name} | {fixed:.3f} | {constrained:.3f} | {constrained / fixed:.2f}× faster |")


if __name__ == "__main__":
    main()
