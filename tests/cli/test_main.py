"""The ``jetlab`` entry point itself: a bare ``jetlab`` is a usage error (exit 2, help on stderr)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jetlab.cli.main import main


def test_bare_jetlab_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "usage: jetlab" in err and "data" in err and "tagger" in err


def test_bare_jetlab_exit_status_from_the_shell():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-m", "jetlab"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "usage: jetlab" in done.stderr


def test_version_exits_0(capsys):
    assert main(["--version"]) == 0
    assert "jetlab" in capsys.readouterr().out


@pytest.mark.parametrize("argv, expected", [
    (["tagger", "train", "--epochs", "x"], "tagger train: argument --epochs: --epochs expects int, got 'x'"),
    (["nosuchgroup"], "invalid choice: 'nosuchgroup'"),
    (["fastsim", "train", "--out", "r", "--model", "flow"], "argument --model: invalid choice: 'flow'"),
])
def test_usage_errors_are_one_line_exit_2(capsys, argv, expected):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jetlab: error: ") and expected in err[0], err
