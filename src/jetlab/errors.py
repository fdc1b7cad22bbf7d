"""User-facing errors.

A :class:`JetlabError` is a problem with the user's input (a missing file, a corrupt
HDF5, a checkpoint of another model, ...). The CLI prints its message as one line on
stderr and exits with status 2, without a traceback. Always name the file and say what
is wrong with it: ``f"{path}: missing key 'jets'"``.
"""

from __future__ import annotations

__all__ = ["JetlabError", "InputError", "Stopped", "CONTINUE", "RESUME"]

#: what a stopped command says by default
CONTINUE = "finished files are kept, rerun the same command to continue"
#: ... and a stopped training command
RESUME = "the run directory keeps its last finished epoch: add --resume to the same command to continue"


class JetlabError(Exception):
    """An error the user can fix; the CLI shows ``jetlab: error: <message>`` and exits 2."""

    exit_code = 2


class InputError(JetlabError):
    """A bad input file or path: the message starts with the path."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class Stopped(JetlabError):
    """The command was stopped by a signal (SIGTERM; Ctrl-C is ``KeyboardInterrupt``): one line
    saying how to continue (``advice``), exit status 128 + the signal's number."""

    def __init__(self, signum: int, advice: str = CONTINUE):
        import signal

        self.signum, self.advice = signum, advice
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name}; {advice}")
