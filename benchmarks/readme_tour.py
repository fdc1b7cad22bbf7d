"""Time the README tour at its real sizes, as a new user runs it, against the times it states.

``tests/test_readme.py`` runs every README command with shrunken sizes, so it proves the
commands work but cannot see how long they take. This script runs them as written, in order,
in a fresh temporary folder laid out like a checkout, and prints each command's wall time and
the CPU time of its processes next to the time the README states for it (a trailing comment
``# ~1.5 min``, ``# ~20 s`` or ``# about 3 min``), with the ratios, then writes all numbers
as JSON.

* The README is read with the README test's own parser (``bash_blocks``, ``commands`` in
  ``tests/test_readme.py``): the same blocks, skip markers and commands.
* Blocks marked ``<!-- readme-test: skip -->`` are not run (the test suite, a Slurm
  cluster), except the install block: its commands after the install (the first
  ``jetlab tagger train``, which generates the default jet set) are timed; the install itself
  (``python3 -m venv`` / ``pip install``) is run only with ``--install``, in a copy of the
  checkout (``git archive HEAD``), which needs the network.
* Without ``--install``, ``.venv`` is a link to the environment running this script, which
  must have jetlab's extras installed (the README's install line), and the ``jetlab`` imported
  is the one this script imports (its folder goes on ``PYTHONPATH``).
* ``JETLAB_CACHE`` points into the folder, so the default set is generated as on a fresh
  machine; progress bars are off. Each command runs in its own ``bash``, after the tour's
  earlier ``source`` / ``cd`` / ``export`` commands.
* Wall time depends on what else the machine runs; the CPU time of the command's processes
  (``resource.getrusage(RUSAGE_CHILDREN)``: user + system of every process it waited for)
  depends much less on it. On an idle machine with C cores, wall >= CPU / C. Not so for
  torch with several threads on a busy machine: a thread waiting for a descheduled one spins,
  and the CPU time grows with the load (JEDI-net, 2 threads, load 12-16 on 2 cores: ~55 s of
  CPU per epoch against 3.3 s on one thread). There, ``--threads 1`` gives CPU times that hold, an upper
  bound of an idle 2-core machine's wall time.

Run it (about an hour of CPU for the whole tour; ``--budget-min`` stops starting commands after that
many minutes, ``--blocks`` picks README blocks)::

    nice python benchmarks/readme_tour.py --threads 1 --json tour.json
    python benchmarks/readme_tour.py --blocks 3,4 --workdir /tmp/tour --keep   # in a kept folder
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_readme import bash_blocks, commands  # noqa: E402  (the README test's parser)

#: a stated time in a command's trailing comment: "~1.5 min", "~20 s", "about 3 min"
_STATED = re.compile(r"(?:~|\babout\s+)\s*(\d+(?:\.\d+)?)\s*(min|minutes?|s)\b")
_INSTALL = re.compile(r"pip install|-m venv")
_STATEFUL = re.compile(r"^(source|\.|cd|export)\s")


@dataclass
class Step:
    block: int
    command: str
    stated_s: float | None
    wall_s: float | None = None
    cpu_s: float | None = None
    exit_status: int | None = None
    note: str = ""


def stated_seconds(command: str) -> float | None:
    """The time a README command's trailing comment states, in seconds (None if none)."""
    comment = re.search(r"\s#\s.*$", command)
    match = _STATED.search(comment.group(0)) if comment else None
    if not match:
        return None
    value, unit = float(match.group(1)), match.group(2)
    return value * 60 if unit.startswith("min") else value


def tour_steps(readme: str, install: bool, blocks: set[int] | None, skip: str | None = None) -> list[Step]:
    """The README's commands to time, with why some are not run."""
    steps = []
    for number, body, skipped in bash_blocks(readme):
        installs = any(_INSTALL.search(c.text) for c in commands(body, number))
        for command in commands(body, number):
            step = Step(number, command.text, stated_seconds(command.text))
            if blocks is not None and number not in blocks:
                step.note = "not selected"
            elif skipped and not installs:
                step.note = "skip-marked block (test suite or cluster)"
            elif _INSTALL.search(command.text) and not install:
                step.note = "install (run with --install)"
            elif skip and re.search(skip, command.text):
                step.note = "skipped (--skip)"
            steps.append(step)
    return steps


def prepare(workdir: Path, install: bool, threads: int | None = None) -> dict[str, str]:
    """Lay ``workdir`` out like a fresh checkout; the environment the commands run in."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH")}
    bin_dir = Path(sys.executable).parent.resolve()
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and Path(p).resolve() != bin_dir)
    env.update(JETLAB_CACHE=str(workdir / ".cache" / "jetlab"), JETLAB_NO_PROGRESS="1")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if install:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(workdir)], input=archive.stdout, check=True)
    else:
        if not (workdir / ".venv").exists():
            (workdir / ".venv").symlink_to(Path(sys.prefix))
        import jetlab

        env["PYTHONPATH"] = str(Path(jetlab.__file__).resolve().parents[1])
    return env


def run_step(step: Step, state: list[str], workdir: Path, env: dict[str, str], log: Path) -> None:
    """Run one command after the tour's earlier state-changing commands; time it."""
    script = "\n".join([*state, step.command])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(["bash", "-c", script], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                              stdout=out, stderr=subprocess.STDOUT, check=False)
    step.wall_s = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    step.cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    step.exit_status = done.returncode


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    import torch

    return {"date": f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}", "host": platform.node(), "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "commit": commit, "load_at_start": round(os.getloadavg()[0], 1), "niceness": os.nice(0)}


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 100 else f"{seconds:.0f} s"


def _ratio(value: float | None, stated: float | None) -> str:
    return f"{value / stated:.2f}" if value is not None and stated else "-"


def report(steps: list[Step]) -> str:
    lines = [f"{'block':>5}  {'stated':>8}  {'wall':>8}  {'CPU':>8}  {'wall/st':>7}  {'CPU/st':>7}  command"]
    for s in steps:
        status = s.note or ("" if s.exit_status == 0 else f"EXIT {s.exit_status}")
        lines.append(f"{s.block:>5}  {_fmt(s.stated_s):>8}  {_fmt(s.wall_s):>8}  {_fmt(s.cpu_s):>8}  "
                     f"{_ratio(s.wall_s, s.stated_s):>7}  {_ratio(s.cpu_s, s.stated_s):>7}  "
                     f"{s.command[:90]}{'  [' + status + ']' if status else ''}")
    ran = [s for s in steps if s.wall_s is not None]
    lines.append(f"total run: wall {_fmt(sum(s.wall_s for s in ran))}, CPU {_fmt(sum(s.cpu_s for s in ran))}; "
                 f"{len(ran)} of {len(steps)} commands run")
    return "\n".join(lines)


def block_totals(steps: list[Step]) -> list[dict[str, object]]:
    totals = []
    for block in sorted({s.block for s in steps}):
        ran = [s for s in steps if s.block == block and s.wall_s is not None]
        if ran:
            totals.append({"block": block, "commands": len(ran), "wall_s": round(sum(s.wall_s for s in ran), 1),
                           "cpu_s": round(sum(s.cpu_s for s in ran), 1),
                           "failed": sum(s.exit_status != 0 for s in ran)})
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md", help="README to time (default: this checkout's)")
    parser.add_argument("--blocks", help="comma-separated README ```bash block numbers to run (default: all); "
                        "later blocks need the data of earlier ones: use with --workdir of an earlier run")
    parser.add_argument("--threads", type=int, help="torch threads per process (OMP_NUM_THREADS; default: "
                        "torch's, the cores); 1 gives CPU times that hold on a shared machine")
    parser.add_argument("--skip", metavar="REGEX", help="do not run the commands this regular expression matches")
    parser.add_argument("--budget-min", type=float, default=None,
                        help="start no command after this many minutes (default: no limit)")
    parser.add_argument("--install", action="store_true",
                        help="also time the install line, in a copy of the checkout (needs the network)")
    parser.add_argument("--workdir", type=Path, help="folder to run in (default: a fresh temporary one, removed after)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    parser.add_argument("--json", type=Path, help="write the numbers here as JSON")
    args = parser.parse_args(argv)

    blocks = {int(b) for b in args.blocks.split(",")} if args.blocks else None
    steps = tour_steps(args.readme.read_text(), args.install, blocks, args.skip)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="jetlab-tour-"))
    env = prepare(workdir, args.install, args.threads)
    logs = workdir / ".tour-logs"
    logs.mkdir(exist_ok=True)
    header = machine()
    print(f"# readme_tour  {header['date']}  {header['cpu']}  cores={header['cores']}  "
          f"python={header['python']}  torch={header['torch']}  commit={header['commit']}  "
          f"load={header['load_at_start']}  nice={header['niceness']}\n# in {workdir}", flush=True)
    state: list[str] = []
    start = time.perf_counter()
    for k, step in enumerate(steps):
        if step.note:
            continue
        if args.budget_min is not None and time.perf_counter() - start > args.budget_min * 60:
            step.note = f"not started: past the {args.budget_min:g}-minute budget"
            continue
        run_step(step, state, workdir, env, logs / f"{k:02d}.log")
        if _STATEFUL.match(step.command):
            state.append(step.command)
        print(f"[{_fmt(step.wall_s)} wall, {_fmt(step.cpu_s)} CPU, stated {_fmt(step.stated_s)}, "
              f"exit {step.exit_status}] block {step.block}: {step.command}", flush=True)
    header["load_at_end"] = round(os.getloadavg()[0], 1)
    print(report(steps))
    if args.json:
        args.json.write_text(json.dumps({"machine": header, "steps": [asdict(s) for s in steps],
                                         "blocks": block_totals(steps)}, indent=1) + "\n")
    if args.workdir is None and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    elif args.keep or args.workdir:
        print(f"# kept {workdir} (logs in {logs})")
    return 1 if any(s.exit_status not in (None, 0) for s in steps) else 0


if __name__ == "__main__":
    sys.exit(main())
