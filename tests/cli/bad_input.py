"""Table-driven bad-input checks for any ``jetlab`` command (imported by ``test_bad_inputs_*.py``).

A :class:`BadInput` row is a command line that must be refused cleanly: exit status 2,
exactly one line on stderr starting ``jetlab: error:`` and containing ``message``, no
traceback, and nothing created, changed or removed under the case's working directory.
``{tmp}`` in the arguments is that directory; ``setup(tmp, resources)`` prepares files in it
first (``resources``: whatever the test module passes, e.g. a directory of real jet files).

Use::

    from bad_input import BadInput, check_bad_input   # tests/cli is on sys.path (rootdir-relative imports)
    CASES = [BadInput("zero-epochs", ("tagger", "train", "--epochs", "0", "--out", "{tmp}/run"), "--epochs")]

    @pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
    def test_bad_input(case, tmp_path, capsys):
        check_bad_input(case, tmp_path, capsys)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jetlab.cli.main import main

__all__ = ["BadInput", "check_bad_input", "snapshot"]


@dataclass(frozen=True)
class BadInput:
    id: str
    argv: tuple[str, ...]
    message: str
    setup: Callable[[Path, Any], None] | None = None


def snapshot(directory: Path) -> dict[str, tuple]:
    """Every path under ``directory`` with its kind, size and modification time."""
    out = {}
    for path in sorted(directory.rglob("*")):
        info = path.lstat()
        out[str(path.relative_to(directory))] = (path.is_dir(), info.st_size, info.st_mtime_ns)
    return out


def check_bad_input(case: BadInput, tmp: Path, capsys, resources: Any = None) -> str:
    """Run ``case`` in-process and assert the clean refusal; returns the error line."""
    if case.setup is not None:
        case.setup(tmp, resources)
    before = snapshot(tmp)
    capsys.readouterr()
    try:
        code = main([arg.format(tmp=tmp) for arg in case.argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, (code, captured.err)
    assert "Traceback" not in captured.err, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("jetlab: error:"), lines[0]
    assert case.message in lines[0], lines[0]
    assert snapshot(tmp) == before, "the refused command changed the working directory"
    return lines[0]
