"""``python -m jetlab`` — the same as the ``jetlab`` console script.

This is what ``torchrun -m jetlab tagger train ...`` and
``mpiexec -n K python -m jetlab ...`` run.
"""

from jetlab.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
