"""``jetlab run``: maintenance of run directories.

Commands::

    jetlab run upgrade DIR     # convert runs written by an older jetlab (numpy arrays inside)

See :mod:`jetlab.training.upgrade`.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "upgrade", help="convert run directories written by an older jetlab so that they load as tensors only",
        description="Rewrite every model.pt and checkpoint.pt under DIR (a run, a prune run or a study directory) "
                    "that an older jetlab wrote with numpy arrays inside, as tensors and plain data only, and mark "
                    "the runs that had finished (finished.json). The files are read without executing anything: "
                    "besides tensors only numeric numpy arrays are accepted, a file naming any other Python global "
                    "is refused.")
    p.add_argument("folder", metavar="DIR", help="a run directory, or a folder holding run directories")
    p.set_defaults(run=_upgrade)


def _upgrade(args: argparse.Namespace) -> int:
    from jetlab.training.upgrade import upgrade_runs  # lazy: start-up (torch)

    for line in upgrade_runs(args.folder):
        print(line)
    return 0
