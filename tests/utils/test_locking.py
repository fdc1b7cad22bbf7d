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


def test_lock_on_a_file_is_a_clean_error(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("x")
    with pytest.raises(JetlabError, match="is not a directory"):
        with directory_lock(path):
            pass
