"""Two processes using an empty default cache at once: one generates, the other waits and reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import jetlab

SRC = str(Path(jetlab.__file__).resolve().parents[1])
CODE = "from jetlab.data import resolve_jets; jets = resolve_jets(None, 30); print(jets.n_jets, sorted(jets.class_counts().items()))"


@pytest.mark.slow
def test_two_first_uses_of_the_default_cache_at_once(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "JETLAB_CACHE": str(tmp_path), "JETLAB_DEFAULT_JETS_PER_CLASS": "8", "JETLAB_NO_PROGRESS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", CODE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err
        assert out.strip() == "40 [('g', 8), ('q', 8), ('t', 8), ('w', 8), ('z', 8)]"
        assert "Traceback" not in err
    waited = [err for _, err in results if "jetlab: waiting for default jet set" in err]
    assert len(waited) == 1, [err for _, err in results]
