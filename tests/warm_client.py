"""The client of ``tests/warm_start.py``: run ``jetlab ARGS`` in a child of the warm server.

Usage: ``python -I -S warm_client.py MODULE ARGS`` (the wrappers: MODULE = jetlab) runs
``python -m MODULE ARGS`` in the server (a module it can import). Sends the arguments, working directory, environment, umask and every open file descriptor to the
server, forwards the signals it receives to the child, and ends as the child ended. When no
server answers it runs the real interpreter instead (``exec``), so a command never fails
because of this shortcut.
"""

import json
import os
import signal
import socket
import struct
import sys

#: signals a client passes on to its command
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGALRM)
#: most descriptors a request carries
MAX_FDS = 64


# the protocol, used by both ends (tests/warm_start.py imports it): a 4-byte length, then JSON;
# a request's file descriptors travel with its first byte (SCM_RIGHTS)


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def send_message(conn, message, fds=()):
    body = json.dumps(message).encode()
    payload = struct.pack("!I", len(body)) + body
    if fds:
        sent = socket.send_fds(conn, [payload[:1]], list(fds))
        payload = payload[sent:]
    conn.sendall(payload)


def recv_message(conn, with_fds=False):
    """``(message, fds)``."""
    fds = []
    if with_fds:
        first, fds, _, _ = socket.recv_fds(conn, 1, MAX_FDS)
        if not first:
            raise EOFError
        head = first + recv_exact(conn, 3)
    else:
        head = recv_exact(conn, 4)
    (length,) = struct.unpack("!I", head)
    return json.loads(recv_exact(conn, length)), fds


def _fallback(module, args):
    real = os.environ.get("JETLAB_WARM_PYTHON") or sys.executable
    os.execv(real, [real, "-m", module, *args])


def main():
    module, args = sys.argv[1], sys.argv[2:]
    child, pending = [], []

    def forward(signum, frame):  # a signal that comes before the child exists waits for it
        if not child:
            pending.append(signum)
            return
        try:
            os.killpg(child[0], signum)  # the child leads its own group (tests/warm_start.py)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    path = os.environ.get("JETLAB_WARM_SOCKET")
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except (OSError, TypeError):
        conn.close()
        _fallback(module, args)
    fds = sorted(int(name) for name in os.listdir("/proc/self/fd")
                 if int(name) != conn.fileno() and _is_open(int(name)))[:MAX_FDS]
    umask = os.umask(0)
    os.umask(umask)
    env = dict(os.environ)  # the socket included: what the command starts again (MPI supervisor) is warm too
    request = {"module": module, "args": args, "cwd": os.getcwd(), "env": env,
               "umask": umask, "fds": fds}
    try:
        send_message(conn, request, fds)
        child.append(recv_message(conn)[0]["pid"])
    except (OSError, EOFError, ValueError):
        conn.close()
        _fallback(module, args)
    for fd in fds:
        if fd > 2:
            os.close(fd)  # the child has them; a pipe must close when the child closes it

    for signum in pending:
        forward(signum, None)
    while True:
        try:
            end = recv_message(conn)[0]
            break
        except InterruptedError:
            continue
        except (EOFError, OSError):
            end = {"code": 1}
            break
    if "signal" in end:
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        sys.stdout.flush()
        os.kill(os.getpid(), end["signal"])
    os._exit(end["code"])


def _is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
