"""A warm interpreter for the tests' ``jetlab`` processes: import torch once, fork per command.

Every ``jetlab`` process the tests start (the README's commands, MPI ranks) spends ~4 s of
CPU importing torch, torch._dynamo (which torch's optimizers import on first use), scipy and
matplotlib before it does anything: on the 2-core CI machine that start-up was a third of the
suite. This module runs one **server** per test worker that imports all of that once and,
for each command, forks a child that runs ``python -m jetlab ARGS`` exactly as a fresh
interpreter would: in the caller's working directory, with the caller's environment and the
caller's open file descriptors (stdin/stdout/stderr, pipes, MPICH's PMI socket), its exit
status or death by a signal passed back to the caller.

The caller is a tiny client (``tests/warm_client.py MODULE ARGS``, stdlib only, ~30 ms) that the wrappers
of :func:`make_wrappers` run in place of ``python -m jetlab`` and the ``jetlab`` console
script. The client forwards the signals it receives (SIGTERM, SIGINT, SIGUSR1 from mpiexec,
...) to the child and mirrors the child's end (the same exit status; the same signal). The
child dies with its client (the server kills it when the client's connection closes, even
after ``kill -9``) and with the server (``PR_SET_PDEATHSIG``); the server dies with the pytest
worker that started it. Without the server (``JETLAB_WARM_SOCKET`` unset or not answering)
the wrappers run the real interpreter: the tests never depend on it, only get faster.

What a fork cannot give, and why it does not matter here: the command runs in a process
whose modules were imported before its environment was set. jetlab reads its environment
variables when it runs, not at import (checked by :func:`environment_reads_at_import`), and
torch reads ``OMP_NUM_THREADS`` only when its thread pool starts, which the server never
does (it refuses to serve if any module it preloads started a thread: a fork copies only the
forking thread).
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import os
import selectors
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

from warm_client import FORWARDED, recv_message, send_message

HERE = Path(__file__).resolve().parent
CLIENT = HERE / "warm_client.py"
ENV_SOCKET = "JETLAB_WARM_SOCKET"
ENV_REAL = "JETLAB_WARM_PYTHON"          # the real interpreter (the wrappers' fall-back)
#: imported once by the server (what a jetlab command imports before it works)
PRELOAD = ("torch", "torch._dynamo", "torch.distributed", "numpy", "scipy.stats", "scipy.optimize", "h5py",
           "matplotlib.pyplot", "mplhep", "jetlab.cli.main", "jetlab.cli.tagger", "jetlab.cli.fastsim",
           "jetlab.cli.data", "jetlab.cli.hpo", "jetlab.training.tagger", "jetlab.training.generator",
           "jetlab.training.engine", "jetlab.metrics", "jetlab.viz.tagging", "jetlab.viz.samples", "jetlab.viz.data")
# ---------------------------------------------------------------- the server


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _run_child(request: dict, fds: list[int], listener: socket.socket, conn: socket.socket, wrapper: str) -> None:
    """In the forked child: become the caller's process, run jetlab, never return."""
    code = 1
    try:
        _die_with_parent()
        # its own process group, which the client signals as a whole: what the command starts
        # (an MPI rank's supervisor starts the training process) gets a signal sent to the
        # caller's group, as it would were it in that group (hydra signals a rank's group)
        os.setpgid(0, 0)
        # the caller's descriptors at the caller's numbers, and nothing of the server's (a copy of
        # another client's connection kept here would hide that client's death from the server)
        moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 500) for fd in fds]
        for name in os.listdir("/proc/self/fd"):
            if int(name) not in moved:
                try:
                    os.close(int(name))
                except OSError:
                    pass
        for target, fd in zip(request["fds"], moved):
            os.dup2(fd, target)
        for fd in moved:
            os.close(fd)
        for sig in FORWARDED:
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.umask(request["umask"])
        if os.environ.get("PYTHONUNBUFFERED"):  # as python -u or PYTHONUNBUFFERED would make them
            for stream in (sys.stdout, sys.stderr):
                stream.reconfigure(write_through=True)
        sys.argv = [request["module"], *request["args"]]
        # what jetlab starts again (the MPI rank's supervisor: sys.executable, sys.orig_argv) starts warm too
        sys.executable = wrapper
        sys.orig_argv = [wrapper, "-m", request["module"], *request["args"]]
        sys.stdin = open(0, closefd=False) if 0 in request["fds"] else sys.stdin
        import runpy

        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            if not isinstance(stop.code, int | None):
                print(stop.code, file=sys.stderr)
        except KeyboardInterrupt:  # a fresh interpreter then ends by SIGINT itself
            code = -signal.SIGINT
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
        _finalize_mpi()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        if code == -signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        if "mpi4py.MPI" in sys.modules:
            # MPICH tells hydra that the rank finalized from a C atexit handler, which os._exit
            # skips: hydra's auto-cleanup then takes the rank's end for a crash and SIGKILLs the job
            ctypes.CDLL(None).exit(code)
        os._exit(code)


def _finalize_mpi() -> None:
    """``MPI_Finalize`` as a fresh interpreter's exit would call it (mpi4py registers it at the
    C level, which ``os._exit`` skips); hydra takes a rank that leaves without it for a crash."""
    mpi4py = sys.modules.get("mpi4py")
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or getattr(mpi4py.rc, "finalize", None) is False:
        return
    if mpi.Is_initialized() and not mpi.Is_finalized():
        mpi.Finalize()


def serve(path: str, wrapper: str) -> None:
    """Preload, then fork a child per request until stdin closes (the pytest worker left)."""
    os.environ.pop(ENV_SOCKET, None)
    for name in PRELOAD:
        __import__(name)
    import matplotlib

    matplotlib.use("Agg")
    if _threads() != 1:
        print(f"warm_start: {_threads()} threads after the imports, not serving", file=sys.stderr)
        return
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(sys.stdin, selectors.EVENT_READ, "parent")
    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, conn)
    while True:
        for key, _ in selector.select():
            what = key.data
            if what == "parent":
                if not os.read(sys.stdin.fileno(), 4096):
                    for pid, _conn in children.values():
                        os.kill(pid, signal.SIGKILL)
                    return
            elif what == "accept":
                conn, _ = listener.accept()
                try:
                    request, fds = recv_message(conn, with_fds=True)
                except (EOFError, OSError, ValueError):
                    conn.close()
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _run_child(request, fds, listener, conn, wrapper)
                for fd in fds:
                    os.close(fd)
                pidfd = os.pidfd_open(pid)
                children[pidfd] = (pid, conn)
                send_message(conn, {"pid": pid})
                selector.register(pidfd, selectors.EVENT_READ, ("exit", pidfd))
                selector.register(conn, selectors.EVENT_READ, ("client", pidfd))
            elif what[0] == "client":  # the client wrote nothing more: it is gone
                pidfd = what[1]
                if pidfd in children:
                    try:
                        if not children[pidfd][1].recv(1):
                            os.kill(children[pidfd][0], signal.SIGKILL)
                    except OSError:
                        os.kill(children[pidfd][0], signal.SIGKILL)
                    selector.unregister(key.fileobj)
            elif what[0] == "exit":
                pidfd = what[1]
                pid, conn = children.pop(pidfd)
                _, status = os.waitpid(pid, 0)
                selector.unregister(pidfd)
                os.close(pidfd)
                try:
                    selector.unregister(conn)
                except (KeyError, ValueError):
                    pass
                end = ({"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status)
                       else {"code": os.WEXITSTATUS(status)})
                try:
                    send_message(conn, end)
                except OSError:
                    pass
                conn.close()


# ---------------------------------------------------------------- what the tests use


def make_wrappers(directory: Path) -> Path:
    """``directory/python`` and ``directory/jetlab``: ``python -m jetlab ARGS`` and ``jetlab
    ARGS`` through the client when a server answers, the real interpreter otherwise; any
    other use of ``python`` goes to the real interpreter. Returns ``directory/python``."""
    directory.mkdir(parents=True, exist_ok=True)
    real, client = sys.executable, str(CLIENT)
    scripts = {
        # python -m jetlab, and python -u -m jetlab as torchrun starts its ranks (PYTHON_EXEC)
        "python": f'#!/bin/sh\nif [ -n "${ENV_SOCKET}" ]; then\n'
                  f'    if [ "$1" = "-m" ] && [ "$2" = "jetlab" ]; then\n'
                  f'        shift 2; exec "{real}" -I -S "{client}" jetlab "$@"\n    fi\n'
                  f'    if [ "$1" = "-u" ] && [ "$2" = "-m" ] && [ "$3" = "jetlab" ]; then\n'
                  f'        shift 3; export PYTHONUNBUFFERED=1; exec "{real}" -I -S "{client}" jetlab "$@"\n    fi\n'
                  f'fi\nexec "{real}" "$@"\n',
        "jetlab": f'#!/bin/sh\nif [ -n "${ENV_SOCKET}" ]; then exec "{real}" -I -S "{client}" jetlab "$@"; fi\n'
                  f'exec "{real}" -m jetlab "$@"\n',
    }
    for name, text in scripts.items():
        path = directory / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return directory / "python"


class WarmServer:
    """One server process for this pytest worker (see the module docstring)."""

    def __init__(self, directory: Path, enabled: bool = True) -> None:
        self.directory = directory
        self.socket = str(directory / "warm.sock")
        self.python = make_wrappers(directory / "bin")
        self.process = None
        self.ready = False
        if not enabled:
            return
        env = {k: v for k, v in os.environ.items() if k != ENV_SOCKET}
        # numpy's OpenBLAS starts its thread pool at import; one thread keeps the server forkable
        # (the commands' own numpy then runs on one thread: the suite's models are tiny)
        env["OPENBLAS_NUM_THREADS"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen([sys.executable, "-c", f"import warm_start; warm_start.serve("
                                         f"{self.socket!r}, {str(self.python)!r})"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        self.ready = self.process.stdout.readline().strip() == "ready"

    def jetlab(self) -> list[str]:
        """``python -m jetlab`` from this server (when it runs with :meth:`environment`)."""
        return [str(self.python) if self.ready else sys.executable, "-m", "jetlab"]

    def environment(self) -> dict[str, str]:
        """What a process must have in its environment for the wrappers to use the server."""
        if not self.ready:
            return {}
        # PYTHON_EXEC: the interpreter torchrun starts its ranks with
        return {ENV_SOCKET: self.socket, ENV_REAL: sys.executable, "PYTHON_EXEC": str(self.python)}

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self.process.stdout.close()


#: module-level reads of the environment that are the same in the server and its children
#: (Triton chooses interpreted or compiled mode when first imported; the suite sets it once)
SAME_IN_EVERY_PROCESS = ("TRITON_INTERPRET",)


def environment_reads_at_import() -> list[str]:
    """``file:line`` of every read of ``os.environ``/``os.getenv`` in a module-level statement
    of jetlab (it would see the server's environment, not the command's), apart from
    :data:`SAME_IN_EVERY_PROCESS`."""
    import ast

    found = []
    for path in sorted((HERE.parent / "src" / "jetlab").rglob("*.py")):
        for statement in ast.parse(path.read_text()).body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Expr):
                continue
            for node in ast.walk(statement):
                reads = ((isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"))
                         or (isinstance(node, ast.Name) and node.id in ("environ", "getenv")))
                if reads and not any(name in ast.unparse(statement) for name in SAME_IN_EVERY_PROCESS):
                    found.append(f"{path.relative_to(HERE.parent)}:{statement.lineno}")
                    break
    return found


if __name__ == "__main__":  # a quick manual check: python tests/warm_start.py jetlab --version
    server = WarmServer(Path(os.environ.get("TMPDIR", "/tmp")) / f"warm-{os.getpid()}")
    try:
        start = time.time()
        done = subprocess.run([str(server.python), "-m", *sys.argv[1:]], env={**os.environ, **server.environment()})
        print(f"exit {done.returncode} in {time.time() - start:.2f} s", file=sys.stderr)
    finally:
        server.close()
