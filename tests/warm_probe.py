"""What ``tests/test_warm_start.py`` runs in the warm server: ``python -m warm_probe ACTION``.

Prints its pid, working directory, ``PROBE`` variable and arguments as one JSON line, then:
``exit N`` exits with N; ``wait`` waits for SIGTERM (then exits 7) for up to 60 s;
``kill`` ends itself with SIGKILL.
"""

import json
import os
import signal
import sys
import time

if sys.argv[1] == "wait":  # before saying it started: the test signals it as soon as it has
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(7))
print(json.dumps({"pid": os.getpid(), "cwd": os.getcwd(), "probe": os.environ.get("PROBE"), "args": sys.argv[1:]}),
      flush=True)
print("to stderr", file=sys.stderr, flush=True)
action = sys.argv[1]
if action == "exit":
    sys.exit(int(sys.argv[2]))
if action == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
if action == "wait":
    # short sleeps: Python runs the handler in the main thread, and one long sleep would hide a
    # signal that the kernel delivered to another thread of the process until the sleep ends
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
    sys.exit(0)
