"""``jetlab data …``: generate jets, inspect and plot jet files, build sparse MNIST."""

from __future__ import annotations

import argparse
import os

from jetlab.cli.data_mnist import register_mnist
from jetlab.cli.settings import add_deprecated_aliases
from jetlab.data.driver import generate_dataset
from jetlab.data.summary import format_summary, jet_summary
from jetlab.io.convert import write_jetnet_files
from jetlab.io.jets import open_jets
from jetlab.io.layout import CLASS_NAMES, SUPPORTED_PARTICLES
from jetlab.utils.atomic import check_output_dir
from jetlab.viz.data import plot_jets

__all__ = ["register"]


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "generate",
        help="generate jets with Pythia 8 + FastJet into hls4ml-layout HDF5 files",
        description="Generate jets of the given classes with Pythia 8 (pp, 13 TeV, pTHatMin 1 TeV) and "
        "FastJet (anti-kT R=0.8), one process per core, reproducibly from --seed. Rerunning an "
        "interrupted command completes it.",
    )
    p.add_argument("--jet-class", dest="classes", default=",".join(CLASS_NAMES), metavar="C[,C...]",
                   help="jet classes to generate, comma-separated, of g,q,w,z,t (default: all five)")
    p.add_argument("--jets-per-class", type=int, default=1000, metavar="N",
                   help="jets generated per class (default: 1000)")
    p.add_argument("--particles", type=int, default=30, choices=SUPPORTED_PARTICLES,
                   help="constituents kept per jet (default: 30)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed: the same seed gives the same files whatever the worker count (default: 0)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--workers", type=int, default=None, metavar="K", help=f"processes (default: all {os.cpu_count()} cores)")
    p.add_argument(
        "--cluster", default=None, metavar="local[:N]|tcp://HOST:PORT",
        help="run on Dask instead of local processes: 'local:N' starts N worker processes here, an address "
        "uses a running Dask scheduler (needs the 'cluster' extra); same files as a local run",
    )
    add_deprecated_aliases(p, {"--classes": "--jet-class"})
    p.set_defaults(run=_generate)

    p = commands.add_parser("info", help="jets per class and pT / mass / multiplicity summaries of jet files")
    p.add_argument("path", help="a jet file or a directory of them (hls4ml or JetNet layout)")
    p.set_defaults(run=_info)

    p = commands.add_parser(
        "jetnet", help="write single-class JetNet files (g30.hdf5, t150.hdf5, ...) from hls4ml-layout jets",
        description="Write OUT/<class><P>.hdf5 in the JetNet layout (eta_rel, phi_rel, pT_rel, mask of the P "
        "leading particles; jet pT, eta, mass, particle count) for each class of an hls4ml-layout file or "
        "directory, e.g. the output of `jetlab data generate`. The generators train and are scored on these.",
    )
    p.add_argument("path", help="an hls4ml-layout jet file or directory")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the JetNet files")
    p.add_argument("--particles", type=int, default=None, choices=SUPPORTED_PARTICLES,
                   help="leading particles kept per jet (default: all the source has)")
    p.add_argument("--jet-class", dest="classes", default=None, metavar="C[,C...]",
                   help="jet classes to write, comma-separated, of g,q,w,z,t (default: every class present)")
    add_deprecated_aliases(p, {"--classes": "--jet-class"})
    p.set_defaults(run=_jetnet)

    p = commands.add_parser("plot", help="per-class histograms and average jet images as PNG")
    p.add_argument("path", help="a jet file or a directory of them")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the PNG files and plots.json")
    p.set_defaults(run=_plot)

    register_mnist(commands)


def _generate(args) -> int:
    files = generate_dataset(
        args.out, classes=args.classes.split(","), jets_per_class=args.jets_per_class, n_particles=args.particles,
        seed=args.seed, workers=args.workers, cluster=args.cluster,
    )
    print(f"wrote {len(files)} file(s) with {args.jets_per_class} jets per class to {args.out}")
    return 0


def _info(args) -> int:
    print(format_summary(jet_summary(args.path)))
    return 0


def _jetnet(args) -> int:
    check_output_dir(args.out)
    classes = args.classes.split(",") if args.classes else None
    for path in write_jetnet_files(args.path, args.out, n_particles=args.particles, classes=classes):
        print(path)
    return 0


def _plot(args) -> int:
    open_jets(args.path)  # every problem with the input before anything is written
    check_output_dir(args.out)
    written = plot_jets(args.path, args.out)
    for path in written:
        print(path)
    return 0
