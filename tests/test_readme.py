"""The README runs as written: its ```bash blocks, as a new user would type them.

How it works
------------
Every fenced ```bash block of README.md is one test (``test_readme_block_runs_as_written[N]``,
N its 1-based number among the README's ```bash blocks), so the blocks run in parallel under
pytest-xdist. A block runs in ONE bash session, in a fresh temporary folder laid out like a
checkout, holding what the earlier blocks it builds on left behind:

* a block whose commands only set up the shell (``source .venv/bin/activate``, ``cd``,
  ``export``) is run again at the start of every later block, as the terminal would hold it;
* a block that names a path an earlier block wrote with ``--out PATH`` (``--data jets30``,
  ``runs/dnn``) builds on that block: it starts from a copy of that block's folder after it
  ran (made once per test run and shared, see :func:`block_state`);
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

Run it alone with ``python -m pytest tests/test_readme.py``; ``python tests/test_readme.py
[README]`` runs every block in order in one folder and prints every command's status and
output for a README file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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


@dataclass
class Block:
    number: int              # 1-based index of the ```bash block in the README
    commands: list[Command]  # what runs (empty for a block that is never run)
    problems: list[str]      # its commands, when it installs or tests without the skip marker

    def outputs(self) -> list[str]:
        """The paths its commands write with ``--out PATH``."""
        return [path for c in self.commands for path in re.findall(r"--out\s+(\S+)", c.run)]

    def sets_up_the_shell(self) -> bool:
        """Only ``source``, ``cd`` or ``export``: what a terminal keeps for the later blocks."""
        return bool(self.commands) and all(re.match(r"(source|\.|cd|export)\s", c.run) for c in self.commands)


def readme_blocks(readme: str) -> list[Block]:
    """Every ```bash block without the skip marker, in order."""
    found = []
    for number, body, skipped in bash_blocks(readme):
        if skipped:
            continue
        block_commands = commands(body, number)
        if _NEEDS_MARKER.search(body):
            found.append(Block(number, [], [c.text for c in block_commands]))
        else:
            found.append(Block(number, block_commands, []))
    return found


def _mentions(text: str, path: str) -> bool:
    return re.search(rf"(?<![\w./-]){re.escape(path)}(?![\w-])", text) is not None


def dependencies(blocks: list[Block], number: int) -> list[int]:
    """The earlier blocks whose ``--out`` paths block ``number`` names (it builds on them)."""
    block = next(b for b in blocks if b.number == number)
    text = "\n".join(c.run for c in block.commands)
    return [b.number for b in blocks if b.number < number and not b.sets_up_the_shell()
            and any(_mentions(text, path) for path in b.outputs())]


def prepare_checkout(workdir: Path, warm=None) -> None:
    """A folder laid out like a checkout after the install block: ``.venv`` is this environment.

    With a ``warm`` server (:class:`warm_start.WarmServer`) ``.venv`` is a folder of links to
    this environment whose ``bin/jetlab`` and ``bin/python`` (``python -m jetlab``, also as
    mpiexec's ranks) run the commands in the warm interpreter, and whose ``activate`` puts that
    ``bin`` first on ``PATH``; without one it is a link to this environment."""
    workdir.mkdir(parents=True, exist_ok=True)
    venv = workdir / ".venv"
    if venv.is_symlink() or venv.exists():
        return
    real = Path(sys.prefix)
    if warm is None or not warm.ready:
        venv.symlink_to(real)
        return
    from warm_start import make_wrappers

    venv.mkdir()
    for entry in real.iterdir():
        if entry.name != "bin":
            (venv / entry.name).symlink_to(entry)
    python = make_wrappers(venv / "bin")
    for entry in (real / "bin").iterdir():
        target = venv / "bin" / entry.name
        if entry.name == "activate":  # the folder it names (where the venv was made) becomes ours
            text = entry.read_text()
            made = re.search(r"^\s*VIRTUAL_ENV=([\"']?)(.+?)\1\s*$", text, re.MULTILINE)
            target.write_text(text.replace(made.group(2), str(venv)) if made else text)
        elif entry.name.startswith("python"):
            if not target.exists():
                target.symlink_to(python)
        elif not target.exists():
            target.symlink_to(entry)


def run_commands(to_run: list[Command], workdir: Path, logs: Path, timeout: int = 3600,
                 warm=None) -> list[tuple[Command, int, str]]:
    """Run ``to_run`` in one bash session in ``workdir`` (a ``cd`` or ``source`` holds for the
    next command); ``[(command, exit status, output)]``, every command run whatever the others did.
    ``warm``: a :class:`warm_start.WarmServer` the jetlab commands start from (see :func:`prepare_checkout`)."""
    prepare_checkout(workdir, warm)
    logs.mkdir(parents=True, exist_ok=True)
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
    if warm is not None:
        env.update(warm.environment())
    subprocess.run(["bash", "-c", "\n".join(script)], cwd=workdir, env=env, timeout=timeout, check=False)

    status = {}
    if (logs / "status").exists():
        for line in (logs / "status").read_text().splitlines():
            k, rc = line.split()
            status[int(k)] = int(rc)
    return [(command, status.get(k, -1), (logs / f"{k}.log").read_text() if (logs / f"{k}.log").exists() else "")
            for k, command in enumerate(to_run)]


def run_block(blocks: list[Block], number: int, workdir: Path, warm=None) -> list[tuple[Command, int, str]]:
    """Run block ``number`` in ``workdir`` (which already holds what it builds on), after the
    commands of the earlier blocks that set up the shell; the results of its own commands."""
    block = next(b for b in blocks if b.number == number)
    shell = [c for b in blocks if b.number < number and b.sets_up_the_shell() for c in b.commands]
    results = run_commands(shell + block.commands, workdir, workdir / ".readme-test" / f"block-{number}",
                           warm=warm)
    return results[len(shell):]


def copy_checkout(source: Path, destination: Path) -> None:
    """Lay ``source`` (a block's folder after it ran) over ``destination`` (``.venv`` is made
    by :func:`prepare_checkout`: a link that cannot be copied over an existing one)."""
    shutil.copytree(source, destination, symlinks=True, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".readme-test", ".lock", ".venv"))


def run_readme(readme: Path, workdir: Path, timeout: int = 3600) -> tuple[list[tuple[Command, int, str]], list[str]]:
    """Run all of the README's blocks, in order, in ONE bash session in ``workdir``; return
    ``[(command, exit status, output)]`` and the problems: unmarked blocks that install or
    test, and failing commands."""
    blocks = readme_blocks(readme.read_text())
    problems = [text for b in blocks for text in b.problems]
    results = run_commands([c for b in blocks for c in b.commands], workdir, workdir / ".readme-test", timeout)
    return results, problems + [c.text for c, rc, _ in results if rc != 0]


def _explained(problem: str) -> str | None:
    for key in KNOWN_PROBLEMS:
        if problem == key or re.fullmatch(key, problem):
            return key
    return None


BLOCKS = readme_blocks((ROOT / "README.md").read_text())


def _stage(number: int) -> int:
    """How many blocks, one building on the next, come before block ``number``."""
    return max((_stage(d) + 1 for d in dependencies(BLOCKS, number)), default=0)


@pytest.fixture(scope="session")
def block_state(shared, warm_jetlab):
    """``block_state(N) -> (folder, [(command text, exit status, output)])``: README block ``N``
    run once per test run (shared by the xdist workers) in a folder holding copies of the
    folders of the blocks it builds on; copy the folder before running anything in it."""
    made: dict[int, tuple[Path, list]] = {}

    def state(number: int) -> tuple[Path, list]:
        if number not in made:
            def make(out: Path) -> None:
                for dependency in dependencies(BLOCKS, number):
                    copy_checkout(state(dependency)[0], out / "checkout")
                results = run_block(BLOCKS, number, out / "checkout", warm_jetlab)
                (out / "results.json").write_text(json.dumps([(c.text, rc, output) for c, rc, output in results]))

            folder = shared(f"readme-block-{number}", make)
            made[number] = folder / "checkout", json.loads((folder / "results.json").read_text())
        return made[number]

    return state


@pytest.mark.slow
@pytest.mark.parametrize("number", [pytest.param(b.number, id=f"block{b.number}", marks=pytest.mark.stage(_stage(b.number)))
                                    for b in BLOCKS])
def test_readme_block_runs_as_written(number, block_state):
    block = next(b for b in BLOCKS if b.number == number)
    results = block_state(number)[1] if block.commands else []
    problems = block.problems + [text for text, rc, _ in results if rc != 0]
    unexplained = [p for p in problems if _explained(p) is None]
    fixed = [key for text, rc, _ in results if rc == 0 and (key := _explained(text)) is not None]
    run = {c.text: c.run for c in block.commands}
    details = "\n\n".join(f"$ {run[text]}   (README block {number}, exit {rc})\n{out[-1500:]}"
                           for text, rc, out in results if text in unexplained)
    assert not unexplained, f"README commands that do not run as written: {unexplained}\n\n{details}"
    assert not fixed, f"these README problems are fixed: remove them from KNOWN_PROBLEMS: {fixed}"


def test_every_known_problem_is_a_readme_command():
    texts = [c.text for b in BLOCKS for c in b.commands] + [p for b in BLOCKS for p in b.problems]
    stale = [key for key in KNOWN_PROBLEMS if not any(t == key or re.fullmatch(key, t) for t in texts)]
    assert not stale, f"no README command is like these: remove them from KNOWN_PROBLEMS: {stale}"


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


def test_a_block_builds_on_the_blocks_whose_outputs_it_names(tmp_path):
    readme = """
```bash
export GREETING=hello
```

```bash
mkdir -p first && echo "$GREETING" > first/a.txt && : --out first
```

```bash
cat first/a.txt
```

```bash
cat firstly/a.txt other/first
```
"""
    blocks = readme_blocks(readme)
    assert [b.sets_up_the_shell() for b in blocks] == [True, False, False, False]
    assert blocks[1].outputs() == ["first"]
    assert [dependencies(blocks, b.number) for b in blocks] == [[], [], [2], []]
    results = run_block(blocks, 2, tmp_path / "two")
    assert [rc for _, rc, _ in results] == [0]
    prepare_checkout(tmp_path / "three")
    for _ in range(2):  # a block building on two blocks lays both folders over its own
        copy_checkout(tmp_path / "two", tmp_path / "three")
    results = run_block(blocks, 3, tmp_path / "three")  # the shell block ran first; block 2's folder copied
    assert [(c.text, rc, out) for c, rc, out in results] == [("cat first/a.txt", 0, "hello\n")]
    assert not (tmp_path / "three" / ".readme-test" / "block-2").exists()


def test_the_activated_checkout_runs_jetlab_from_the_warm_interpreter(tmp_path, warm_jetlab):
    if warm_jetlab.cold:
        pytest.skip("JETLAB_TEST_COLD=1: no warm interpreter")
    prepare_checkout(tmp_path, warm_jetlab)
    found = subprocess.run(["bash", "-c", "source .venv/bin/activate && command -v jetlab python mpiexec"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert found == [str(tmp_path / ".venv" / "bin" / name) for name in ("jetlab", "python", "mpiexec")]
    assert "warm_client.py" in (tmp_path / ".venv" / "bin" / "jetlab").read_text()


if __name__ == "__main__":  # python tests/test_readme.py [README.md]
    readme_path = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "README.md").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        found, issues = run_readme(readme_path, Path(tmp) / "checkout")
        for cmd, code, out in found:
            print(f"[{'ok' if code == 0 else f'exit {code}'}] block {cmd.block}: {cmd.run}")
            if code != 0:
                print("    " + "\n    ".join(out.strip().splitlines()[-6:]))
        print("problems:", *issues, sep="\n  ")
