"""The warm interpreter the suite starts jetlab commands from (tests/warm_start.py) behaves
like a fresh one: working directory, environment, arguments, standard streams, exit status,
signals in, death by a signal out, and no child left when its caller dies."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from warm_start import CLIENT, environment_reads_at_import


@pytest.fixture(autouse=True)
def _not_when_cold(warm_jetlab):
    if warm_jetlab.cold:
        pytest.skip("JETLAB_TEST_COLD=1: no warm interpreter")


def _client(warm, *args, env=None, **kwargs):
    environment = {**os.environ, **warm.environment(), **(env or {})}
    return [sys.executable, "-I", "-S", str(CLIENT), *args], dict(env=environment, **kwargs)


def _started(process) -> dict:
    return json.loads(process.stdout.readline())


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_jetlab_reads_no_environment_variable_at_import():
    # the server imports jetlab once: a variable read at import would keep the server's value
    assert environment_reads_at_import() == []


def test_a_command_runs_where_and_as_its_caller_says(warm_jetlab, tmp_path):
    assert warm_jetlab.ready
    command, kwargs = _client(warm_jetlab, "warm_probe", "exit", "3", env={"PROBE": "seen"}, cwd=tmp_path,
                              capture_output=True, text=True)
    done = subprocess.run(command, **kwargs, timeout=60)
    said = json.loads(done.stdout.splitlines()[0])
    assert done.returncode == 3
    assert (said["cwd"], said["probe"], said["args"]) == (str(tmp_path), "seen", ["exit", "3"])
    assert said["pid"] != os.getpid() and done.stderr == "to stderr\n"


def test_jetlab_warm_and_cold_say_the_same(warm_jetlab, tmp_path):
    cold = {k: v for k, v in os.environ.items() if k != "JETLAB_WARM_SOCKET"}
    for args in (["--version"], ["data", "info", "no-such-folder"]):
        warm = subprocess.run([str(warm_jetlab.python), "-m", "jetlab", *args], capture_output=True, text=True,
                              cwd=tmp_path, env={**os.environ, **warm_jetlab.environment()}, timeout=120)
        fresh = subprocess.run([str(warm_jetlab.python), "-m", "jetlab", *args], capture_output=True, text=True,
                               cwd=tmp_path, env=cold, timeout=120)
        assert (warm.returncode, warm.stdout, warm.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert warm.returncode == 2 and "no-such-folder" in warm.stderr


def test_a_signal_to_the_caller_reaches_the_command(warm_jetlab):
    command, kwargs = _client(warm_jetlab, "warm_probe", "wait", stdout=subprocess.PIPE, text=True)
    with subprocess.Popen(command, **kwargs) as process:
        child = _started(process)["pid"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 7 and _gone(child)


def test_a_command_killed_by_a_signal_ends_its_caller_by_that_signal(warm_jetlab):
    command, kwargs = _client(warm_jetlab, "warm_probe", "kill", stdout=subprocess.PIPE, text=True)
    with subprocess.Popen(command, **kwargs) as process:
        _started(process)
        assert process.wait(30) == -signal.SIGKILL


def test_no_command_outlives_its_killed_caller(warm_jetlab):
    command, kwargs = _client(warm_jetlab, "warm_probe", "wait", stdout=subprocess.PIPE, text=True)
    with subprocess.Popen(command, **kwargs) as process:
        child = _started(process)["pid"]
        process.kill()
        process.wait(30)
    assert _gone(child)


def test_without_the_server_the_wrapper_runs_a_fresh_interpreter(warm_jetlab, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JETLAB_WARM_SOCKET"}
    env["JETLAB_WARM_SOCKET"] = str(tmp_path / "nobody-listens.sock")
    done = subprocess.run([str(warm_jetlab.python), "-m", "jetlab", "--version"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("jetlab ")
    assert Path(warm_jetlab.python).read_text().startswith("#!/bin/sh")
