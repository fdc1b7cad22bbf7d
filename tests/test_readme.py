"""The README runs as written: its ```bash blocks, in order, as a new user would type them.

How it works
------------
Every fenced ```bash block of README.md is run, in order, in ONE bash session (so
``source .venv/bin/activate`` or ``cd`` in one block holds for the next, as in a terminal),
in a fresh temporary folder laid out like a checkout:

* ``.venv`` is the environment running this test (as if the install block had run), so
  ``.venv/bin/jetlab`` exists and ``source .venv/bin/activate`` works; nothing else of the
  environment is on ``PATH``: a bare ``jetlab`` works only if the README activates it;
* ``JETLAB_CACHE`` points into the folder (the default jet set is generated there, with
  ``JETLAB_DEFAULT_JETS_PER_CLASS`` = 40 jets per class), progress bars are off;
* every command is run even when an earlier one failed, and each failure is recorded.

Keeping it green as the README changes
--------------------------------------
* **Skip a block** that installs software, runs the test suite, or needs a GPU or a
  cluster: put the HTML comment ``<!-- readme-test: skip -->`` on the line right before its
  opening fence (blank lines in between are fine). A block that installs software or runs
  pytest WITHOUT the marker is never run; it is reported as a problem instead.
* **Shrink sizes** with :data:`SUBSTITUTIONS` below (regular expression -> replacement,
  applied to every command in order): a README may say ``--jets-per-class 2000``, the test
  runs 40. Add a row when a README command gets a new size option.
* **Known problems**: :data:`KNOWN_PROBLEMS` maps a README command (its text as written, or a
  regular expression matching it) to why it does not run. The test passes when the problems
  found are exactly those: a fixed README must remove its entry, a new failure must be fixed
  (or, if it must wait, listed). The goal is an empty table.

Run it alone with ``python -m pytest tests/test_readme.py -m slow``; ``python
tests/test_readme.py [README]`` prints every command's status and output for a README file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_MARKER = "<!-- readme-test: skip -->"

#: README sizes -> test sizes: (regular expression, replacement), applied to each command in order
SUBSTITUTIONS: list[tuple[str, str]] = [
    (r"--jets-per-class \d+", "--jets-per-class 40"),
    (r"--epochs \d+", "--epochs 1"),
    (r"(jetlab tagger train)(?!.*--epochs)", r"\1 --epochs 1"),  # commands relying on the 20-epoch default
    (r"--n \d+", "--n 20"),
    (r"(jetlab data mnist)\b", r"\1 --limit 100"),
    (r"(jetlab fastsim train)\b", r"\1 --limit 64 --batch-size 8"),  # ~30 jets of one class
    (r"--trials \d+", "--trials 2"),
    (r"--iterations \d+", "--iterations 2"),
    (r"(jetlab tagger prune)\b", r"\1 --epochs-per-iteration 1"),
    (r"--scan-precision \S+", "--scan-precision 8,16"),
]

#: environment of the README session besides PATH and the cache
ENVIRONMENT = {"JETLAB_DEFAULT_JETS_PER_CLASS": "40", "JETLAB_NO_PROGRESS": "1"}

#: README command (as written, or a regular expression matching it) -> why it does not run yet
KNOWN_PROBLEMS: dict[str, str] = {}

#: a block doing any of this must carry the skip marker
_NEEDS_MARKER = re.compile(r"pip install|-m venv|\bpytest\b|\bapt(-get)? install|conda (install|create)")


@dataclass
class Command:
    block: int          # 1-based index of the ```bash block in the README
    text: str           # as written in the README
    run: str            # after SUBSTITUTIONS


def bash_blocks(readme: str) -> list[tuple[int, str, bool]]:
    """``(block number, body, skipped)`` of every ```bash block, in order."""
    blocks = []
    lines = readme.splitlines()
    i = 0
    number = 0
    while i < len(lines):
        if lines[i].strip() in ("```bash", "```sh", "```shell"):
            number += 1
            start = i + 1
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            before = [line.strip() for line in lines[:i] if line.strip()]
            skipped = bool(before) and before[-1] == SKIP_MARKER
            blocks.append((number, "\n".join(lines[start:end]), skipped))
            i = end + 1
            continue
        i += 1
    return blocks


def commands(body: str, block: int) -> list[Command]:
    """The commands of a block: one per line, ``\\`` continuations joined, comments dropped."""
    found, pending = [], ""
    for line in body.splitlines():
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = (pending + stripped).strip()
        pending = ""
        found.append(Command(block, text, shrink(text)))
    return found


def shrink(command: str) -> str:
    for pattern, replacement in SUBSTITUTIONS:
        command = re.sub(pattern, replacement, command)
    return command


def run_readme(readme: Path, workdir: Path, timeout: int = 3600) -> tuple[list[tuple[Command, int, str]], list[str]]:
    """Run the README's commands in ``workdir``; return ``[(command, exit status, output)]``
    and the problems: unmarked blocks that install or test, and failing commands."""
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / ".readme-test"
    logs.mkdir(exist_ok=True)
    venv = workdir / ".venv"
    if not venv.exists():
        venv.symlink_to(Path(sys.prefix))
    problems: list[str] = []
    to_run: list[Command] = []
    for number, body, skipped in bash_blocks(readme.read_text()):
        if skipped:
            continue
        block_commands = commands(body, number)
        if _NEEDS_MARKER.search(body):
            problems += [c.text for c in block_commands]
            continue
        to_run += block_commands

    script = ["set +e"]
    for k, command in enumerate(to_run):
        # a brace group runs in this shell (cd, source hold); the newline ends a trailing comment
        script.append(f"{{ {command.run}\n}} > {logs}/{k}.log 2>&1 < /dev/null; "
                      f"echo \"{k} $?\" >> {logs}/status")
    source = Path(__import__("jetlab").__file__).resolve().parents[1]
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if p and Path(p).resolve() != Path(bin_dir).resolve() and p != bin_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env.update(ENVIRONMENT, PATH=path, JETLAB_CACHE=str(workdir / ".cache" / "jetlab"),
               PYTHONPATH=str(source), HOME=os.environ.get("HOME", str(workdir)))
    subprocess.run(["bash", "-c", "\n".join(script)], cwd=workdir, env=env, timeout=timeout, check=False)

    status = {}
    if (logs / "status").exists():
        for line in (logs / "status").read_text().splitlines():
            k, rc = line.split()
            status[int(k)] = int(rc)
    results = []
    for k, command in enumerate(to_run):
        output = (logs / f"{k}.log").read_text() if (logs / f"{k}.log").exists() else ""
        rc = status.get(k, -1)
        results.append((command, rc, output))
        if rc != 0:
            problems.append(command.text)
    return results, problems


def _explained(problem: str) -> str | None:
    for key in KNOWN_PROBLEMS:
        if problem == key or re.fullmatch(key, problem):
            return key
    return None


@pytest.mark.slow
def test_readme_runs_as_written(tmp_path):
    results, problems = run_readme(ROOT / "README.md", tmp_path / "checkout")
    unexplained = [p for p in problems if _explained(p) is None]
    used = {_explained(p) for p in problems}
    stale = [key for key in KNOWN_PROBLEMS if key not in used]
    details = "\n\n".join(f"$ {c.run}   (README block {c.block}, exit {rc})\n{out[-1500:]}"
                          for c, rc, out in results if c.text in unexplained)
    assert not unexplained, f"README commands that do not run as written: {unexplained}\n\n{details}"
    assert not stale, f"these README problems are fixed: remove them from KNOWN_PROBLEMS: {stale}"


# -- the mechanism itself, on a small README -----------------------------------------------------------
def test_blocks_markers_substitutions_and_failures(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"""Intro.

```bash
python3 -m venv .venv && .venv/bin/pip install -e .
```

{SKIP_MARKER}

```bash
nvidia-smi   # a GPU: skipped by the marker
```

```bash
mkdir -p out && cd out
echo --jets-per-class 2000 --epochs 20 > sizes.txt   # a comment
false
cat sizes.txt
ls /no/such/dir
```
""")
    blocks = bash_blocks(readme.read_text())
    assert [(n, skipped) for n, _, skipped in blocks] == [(1, False), (2, True), (3, False)]
    results, problems = run_readme(readme, tmp_path / "work")
    assert [c.text for c, _, _ in results][:2] == ["mkdir -p out && cd out",
                                                   "echo --jets-per-class 2000 --epochs 20 > sizes.txt   # a comment"]
    by_text = {c.text: (rc, out) for c, rc, out in results}
    assert by_text["cat sizes.txt"] == (0, "--jets-per-class 40 --epochs 1\n")  # cd held; sizes shrunk
    assert problems == ["python3 -m venv .venv && .venv/bin/pip install -e .", "false", "ls /no/such/dir"]


if __name__ == "__main__":  # python tests/test_readme.py [README.md]
    readme_path = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "README.md").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        found, issues = run_readme(readme_path, Path(tmp) / "checkout")
        for cmd, code, out in found:
            print(f"[{'ok' if code == 0 else f'exit {code}'}] block {cmd.block}: {cmd.run}")
            if code != 0:
                print("    " + "\n    ".join(out.strip().splitlines()[-6:]))
        print("problems:", *issues, sep="\n  ")
