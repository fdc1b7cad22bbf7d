"""benchmarks/readme_tour.py: which README commands it times, the stated times it reads, and
what it measures (on a small README of shell commands, not jetlab's tour)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("readme_tour", ROOT / "benchmarks" / "readme_tour.py")
tour = sys.modules["readme_tour"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tour)

README = """Install:

<!-- readme-test: skip -->
```bash
echo pip install > installed.txt
echo trained > first.txt   # about 2 min
```

<!-- readme-test: skip -->
```bash
python -m pytest   # the test suite: never timed
```

```bash
export TOUR_WORD=held
```

```bash
sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done'   # ~20 s
echo $TOUR_WORD $OMP_NUM_THREADS > word.txt                 # ~1.5 min
false
```
"""


def test_stated_times_are_read_from_trailing_comments():
    assert tour.stated_seconds("jetlab data mnist --out mnist    # ~10 s") == 10
    assert tour.stated_seconds("jetlab fastsim train --epochs 30   # ~1.5 min") == 90
    assert tour.stated_seconds("jetlab tagger train   # about 3 minutes, default set included") == 180
    assert tour.stated_seconds("jetlab tagger export --format hls4ml   # ~30 s (g++)") == 30
    assert tour.stated_seconds("jetlab tagger evaluate runs/jedinet   # -> runs/jedinet/eval/") is None
    assert tour.stated_seconds("jetlab data generate --jets-per-class 2000") is None  # no comment


def test_which_commands_are_timed():
    steps = tour.tour_steps(README, install=False, blocks=None)
    notes = {s.command.split("#")[0].strip(): s.note for s in steps}
    assert notes["echo pip install > installed.txt"].startswith("install")  # only with --install
    assert notes["echo trained > first.txt"] == ""  # the install block's training is timed
    assert notes["python -m pytest"].startswith("skip-marked")
    assert notes["false"] == ""
    assert [s.block for s in steps] == [1, 1, 2, 3, 4, 4, 4]
    with_install = tour.tour_steps(README, install=True, blocks={1})
    assert [s.note for s in with_install][:2] == ["", ""]
    assert all(s.note == "not selected" for s in with_install[2:])
    skipping = tour.tour_steps(README, install=False, blocks=None, skip=r"^false$|TOUR_WORD \$OMP")
    assert [s.note for s in skipping][-3:] == ["", "skipped (--skip)", "skipped (--skip)"]


def test_a_run_times_each_command_and_keeps_the_tour_state(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    work, out = tmp_path / "work", tmp_path / "tour.json"
    status = tour.main(["--readme", str(readme), "--workdir", str(work), "--json", str(out), "--threads", "1"])
    assert status == 1  # `false` failed
    assert (work / ".venv").is_symlink()  # as after the install line
    assert not (work / "installed.txt").exists()  # the install is not run without --install
    assert (work / "first.txt").read_text() == "trained\n"
    assert (work / "word.txt").read_text() == "held 1\n"  # the earlier `export` holds; one thread
    result = json.loads(out.read_text())
    steps = {s["command"].split("#")[0].strip(): s for s in result["steps"]}
    loop = steps["sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done'"]
    assert loop["exit_status"] == 0 and loop["stated_s"] == 20
    assert loop["cpu_s"] > 0.05 and loop["wall_s"] >= 0.5 * loop["cpu_s"]  # the child's CPU time is counted
    assert steps["false"]["exit_status"] == 1
    assert steps["python -m pytest"]["wall_s"] is None
    assert [b["block"] for b in result["blocks"]] == [1, 3, 4] and result["blocks"][-1]["failed"] == 1
    assert result["machine"]["cores"] >= 1
