"""The ``jetlab`` entry point itself: a bare ``jetlab`` is a usage error (exit 2, help on stderr)."""

from __future__ import annotations

import importlib
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
    (["fastsim", "train", "--out", "r", "--jet-class", "x"], "argument --jet-class: invalid choice: 'x'"),
    (["hpo", "report", "--out", "r"], "the following arguments are required: --study"),
])
def test_usage_errors_are_one_line_exit_2(capsys, argv, expected):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jetlab: error: ") and expected in err[0], err


@pytest.mark.parametrize("argv", [["--help"], ["--version"], []])
def test_top_level_help_and_version_do_not_load_torch(argv):
    """`jetlab --help` / `--version` / bare `jetlab` answer at once: no command group (and so
    no torch, seconds to import) is loaded for them."""
    code = ("import sys; from jetlab.cli.main import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in sys.modules if m == 'torch' or m.startswith('jetlab.cli.')))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    loaded = done.stdout.strip().splitlines()[-1]
    assert loaded == "LOADED ['jetlab.cli.main']", done.stdout + done.stderr


#: libraries that take a second or more to import: no command's --help may load them
_SLOW_IMPORTS = ("torch", "matplotlib", "scipy", "h5py", "numba", "optuna", "sklearn")


def test_every_commands_help_loads_no_torch():
    """`jetlab GROUP COMMAND --help` answers at once, like `jetlab --help`: building a command's
    parser (flags from the config dataclasses, choices from jetlab.choices) imports neither
    torch nor the other slow libraries. One fresh interpreter (the test process has torch
    loaded already) runs every command's --help in turn and names the first that loads one."""
    code = f"""
import argparse, contextlib, io, sys
from jetlab.cli.main import build_parser, main
def sub(parser):
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
commands = [(group, command) for group, parser in sub(build_parser()).items() for command in sub(parser)]
if any(m.split(".")[0] in {_SLOW_IMPORTS!r} for m in sys.modules):
    commands = [("building", "the parsers")]
for group, command in commands:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        status = main([group, command, "--help"])
    slow = sorted(m for m in sys.modules if m.split(".")[0] in {_SLOW_IMPORTS!r})
    if status != 0 or "usage: jetlab " + group + " " + command not in out.getvalue() or slow:
        print("FAILED", group, command, status, slow[:5])
        break
else:
    print("OK", len(commands), "commands")
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.startswith("OK"), done.stdout + done.stderr
    assert int(done.stdout.split()[1]) >= 16  # every group's commands were built, not only some


def test_the_names_the_parsers_offer_are_those_the_code_implements():
    """jetlab.choices lists the names without importing torch; the implementations register theirs."""
    from jetlab import choices
    from jetlab.training.strategies import ASYNC_STRATEGIES, STRATEGIES
    from jetlab.training.strategies.asynchronous import ASYNC_CLASSES

    assert tuple(STRATEGIES) == (*choices.SYNC_STRATEGIES, *choices.ASYNC_STRATEGIES)
    assert ASYNC_STRATEGIES == tuple(ASYNC_CLASSES) == choices.ASYNC_STRATEGIES


@pytest.mark.parametrize("package", ["jetlab.training", "jetlab.pruning"])
def test_the_lazily_exported_names_resolve(package):
    """jetlab.training and jetlab.pruning import their engine-side names on first use (so that
    their torch-free settings modules load alone): each name of __all__ still resolves."""
    module = importlib.import_module(package)
    assert all(getattr(module, name) is not None for name in module.__all__)
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def test_only_the_named_group_is_loaded(monkeypatch):
    cli_main = importlib.import_module("jetlab.cli.main")  # jetlab.cli.main the attribute is the function

    imported = []
    real_import = cli_main.importlib.import_module
    monkeypatch.setattr(cli_main.importlib, "import_module", lambda name: imported.append(name) or real_import(name))
    cli_main.build_parser(["-v", "data", "info", "x"])
    assert imported == ["jetlab.cli.data"]


def test_a_group_that_cannot_be_imported_says_so(monkeypatch, capsys):
    cli_main = importlib.import_module("jetlab.cli.main")  # jetlab.cli.main the attribute is the function

    monkeypatch.setitem(cli_main.GROUPS, "broken", ("jetlab.cli.no_such_module", "a group whose module is missing"))
    assert main(["broken"]) == 2
    err = capsys.readouterr().err
    assert "the 'broken' commands cannot be loaded" in err and "no_such_module" in err


@pytest.mark.parametrize("verbose, level", [([], "WARNING"), (["-v"], "NOTSET")])
def test_matplotlib_notes_only_with_verbose(tmp_path, verbose, level):
    import logging

    logging.getLogger("matplotlib").setLevel(logging.NOTSET)
    assert main([*verbose, "data", "info", str(tmp_path / "missing")]) == 2
    assert logging.getLevelName(logging.getLogger("matplotlib").level) == level
