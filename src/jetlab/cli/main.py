"""Entry point and command registry of the ``jetlab`` console script."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
import threading

from jetlab import __version__
from jetlab.distributed import supervise
from jetlab.errors import CONTINUE, JetlabError, Stopped
from jetlab.utils.atomic import write_error

__all__ = ["GROUPS", "build_parser", "main"]

#: command groups: name -> (module under jetlab.cli, one-line help)
GROUPS: dict[str, tuple[str, str]] = {
    "data": ("jetlab.cli.data", "generate, inspect and plot jet and sparse-MNIST data"),
    "tagger": ("jetlab.cli.tagger", "train, evaluate and compare jet taggers"),
    "fastsim": ("jetlab.cli.fastsim", "train generative models of sparse events, sample, evaluate"),
    "hpo": ("jetlab.cli.hpo", "hyperparameter search over training runs (Optuna), in parallel; its report"),
    "run": ("jetlab.cli.run", "upgrade run directories written by an older jetlab"),
}


class _Help(argparse.HelpFormatter):
    """--help says "(required)" after each option the parser requires."""

    def _get_help_string(self, action):
        text = super()._get_help_string(action)
        return f"{text} (required)" if action.required and action.option_strings and text else text


class _Parser(argparse.ArgumentParser):
    """argparse with jetlab's error format: one line ``jetlab: error: <command>: <problem>``, exit 2,
    and "(required)" in the help of required options (the sub-command parsers inherit the class)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        command = self.prog.removeprefix("jetlab").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"jetlab: error: {where}{message} (see {self.prog} --help)\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``jetlab`` parser. Given ``argv``, only the command group it names is imported, so
    ``jetlab --help``, ``jetlab --version`` and a bare ``jetlab`` answer at once; without
    ``argv`` every group is built. No group loads torch to build its parser (the flags come
    from torch-free config dataclasses; the commands import the recipes when they run), so
    ``jetlab GROUP COMMAND --help`` answers at once too."""
    parser = _Parser(
        prog="jetlab",
        description="Deep learning on sparse particle-physics data.",
    )
    parser.add_argument("--version", action="version", version=f"jetlab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    groups = parser.add_subparsers(dest="group", metavar="GROUP")
    wanted = set(GROUPS) if argv is None else {_named_group(argv)}
    for name, (module_name, help_text) in GROUPS.items():
        group_parser = groups.add_parser(name, help=help_text, description=help_text)
        if name not in wanted:
            continue
        commands = group_parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            # say so instead of dropping the group: usually an optional extra not installed
            group_parser.set_defaults(run=_unavailable(name, exc))
            commands.required = False
            continue
        module.register(commands)
    return parser


def _named_group(argv: list[str]) -> str | None:
    """The command group ``argv`` names: its first word that is not an option (the top-level
    options take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def _unavailable(name: str, exc: ImportError):
    def run(args) -> int:
        raise JetlabError(f"the '{name}' commands cannot be loaded ({type(exc).__name__}: {exc}); "
                          "is an optional extra missing? (see the README's install line)")
    return run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (one line, see _Parser), --help, --version
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # matplotlib's font-cache and mathtext notes are not the user's business
        for noisy in ("matplotlib", "PIL"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if not getattr(args, "run", None):
        # no command: like argparse's own "missing argument" error, help goes to stderr, exit 2
        parser.print_help(sys.stderr)
        return 2
    advice = getattr(args, "on_stop", CONTINUE)  # what a stopped command tells the user to do
    try:
        with _sigterm_raises(advice), _named_model_code(args):
            return int(args.run(args) or 0)
    except JetlabError as exc:
        print(f"jetlab: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a full disk or an unwritable place met outside jetlab.utils.atomic
        error = write_error(exc.filename or "(a file)", exc)
        if error is None:
            raise
        print(f"jetlab: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"jetlab: interrupted; {advice}", file=sys.stderr)
        return 130


def _named_model_code(args: argparse.Namespace):
    """The user's model files this command may run: ``--model FILE.py:Class`` of a training
    command and every ``--model-code FILE`` (:func:`jetlab.models.registry.trusting`); nothing
    a run directory or a study names is loaded without them."""
    named = [*(getattr(args, "named_model_code", None) or []), getattr(args, "model", None)]
    if not any(named):
        return contextlib.nullcontext()
    from jetlab.models.registry import trusting  # lazy: start-up (torch), only for commands naming a model

    return trusting(name for name in named if name)


@contextlib.contextmanager
def _sigterm_raises(advice: str):
    """SIGTERM (a batch system's, ``kill``) ends the command like Ctrl-C: as an exception, so
    that ``finally`` blocks and atomic writes clean up, then one line saying how to continue
    (:class:`~jetlab.errors.Stopped`, exit status 143)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Stopped(signum, advice)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def entry() -> int:
    """The ``jetlab`` console script and ``python -m jetlab``: :func:`main`, run by each rank
    under a small supervisor where MPICH's mpiexec started it, so that one rank killed by a
    signal does not end the others (:mod:`jetlab.distributed.supervise`)."""
    return supervise.run(main)


if __name__ == "__main__":
    sys.exit(entry())
