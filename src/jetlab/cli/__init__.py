"""The ``jetlab`` command line: ``jetlab <group> <command> [options]``.

Each group lives in its own module (``data.py``, ``tagger.py``, ``fastsim.py``) and
exposes ``register(subparsers)``; :data:`GROUPS` lists them. A command is a function
``run(args) -> int``. Heavy libraries are imported inside the command, so
``jetlab --help`` is instant.
"""

from jetlab.cli.main import GROUPS, main

__all__ = ["GROUPS", "main"]
