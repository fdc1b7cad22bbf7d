"""``python -m jetlab`` — the same as the ``jetlab`` console script.

This is what ``torchrun -m jetlab tagger train ...`` and
``mpiexec -n K python -m jetlab ...`` run. Under MPICH's mpiexec each rank runs the command
as the child of a small supervisor, so that one rank killed by a signal does not end the
others (:func:`jetlab.cli.main.entry`, :mod:`jetlab.distributed.supervise`).
"""

if __name__ == "__main__":
    from jetlab.cli.main import entry

    raise SystemExit(entry())
