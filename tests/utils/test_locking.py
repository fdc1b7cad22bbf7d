"""Directory locks between real processes: the exclusive lock names its holder, the cache lock waits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import jetlab
from jetlab.errors import JetlabError
from jetlab.utils.locking import cache_lock, directory_lock, lock_holder

SRC = str(Path(jetlab.__file__).resolve().parents[1])


def hold(directory: Path, seconds: float, kind: str = "directory_lock") -> subprocess.Popen:
    """A real process that takes the lock, says 'locked', holds it ``seconds``, then exits."""
    code = (
        f"import sys, time; from jetlab.utils.locking import {kind}\n"
        f"with {kind}(sys.argv[1]):\n    print('locked', flush=True); time.sleep({seconds})\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", code, str(directory)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_exclusive_lock_names_the_directory_and_the_holder(tmp_path):
    run = tmp_path / "run"
    holder = hold(run, 60)
    try:
        assert lock_holder(run) == holder.pid
        with pytest.raises(JetlabError) as info:
            with directory_lock(run, what="run directory"):
                pass
        message = str(info.value)
        assert str(run) in message and f"pid {holder.pid}" in message and "run directory" in message
        assert "\n" not in message
    finally:
        holder.kill()
        holder.communicate()
    with directory_lock(run, what="run directory"):  # a killed holder leaves nothing stale
        assert lock_holder(run) == os.getpid()


def test_cache_lock_waits_for_the_holder_and_says_so(tmp_path, capfd):
    holder = hold(tmp_path, 2.0, kind="cache_lock")
    start = time.monotonic()
    with cache_lock(tmp_path, what="default jet set"):
        waited = time.monotonic() - start
        assert holder.poll() is not None or waited > 0.5  # we got it only once the holder let go
    holder.communicate()
    err = capfd.readouterr().err
    assert f"jetlab: waiting for default jet set {tmp_path} (locked by pid {holder.pid})" in err


def test_no_lock_file_is_left_behind(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("x")
    with directory_lock(tmp_path / "run"):
        assert (tmp_path / "run" / ".lock").exists()
    with cache_lock(tmp_path):
        pass
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["config.yaml", "run"]


def test_waiters_take_turns_although_each_holder_removes_the_file(tmp_path):
    """Processes queue on one lock; each holder unlinks the file as it lets go. A waiter that got
    the old (unlinked) file must not think it holds the lock while the next holds the new one."""
    log = tmp_path / "log"
    code = (
        "import os, sys, time; from jetlab.utils.locking import cache_lock\n"
        "for _ in range(5):\n"
        "    with cache_lock(sys.argv[1]):\n"
        "        with open(sys.argv[2], 'a') as f: f.write('in\\n'); f.flush(); time.sleep(0.02)\n"
        "        with open(sys.argv[2], 'a') as f: f.write('out\\n')\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "d"), str(log)], env=env,
                              stderr=subprocess.DEVNULL) for _ in range(3)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    lines = log.read_text().split()
    assert lines == ["in", "out"] * 15  # never two holders at once
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_lock_on_a_file_is_a_clean_error(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("x")
    with pytest.raises(JetlabError, match="is not a directory"):
        with directory_lock(path):
            pass
