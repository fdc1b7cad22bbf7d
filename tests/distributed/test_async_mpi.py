"""Asynchronous training under a real ``mpiexec`` (MPICH hydra), through the CLI.

Oracles: the messages the master received are those the algorithm prescribes for the updates
the workers made (Downpour, GEM on a tagger; EASGD on a GAN's two networks); sub-masters cut
what the top master receives; ``kill -9`` of a worker in the middle of training gets it
dropped at once (mpiexec's SIGUSR1, not the time-out) and leaves a finished run with exit
status 0, the loss recorded and a per-epoch history that still moves;
``--resume`` after the whole job was killed continues the master's checkpoint; synchronous
all-reduce stops with one clear line when a rank dies, and ``--resume`` recovers it; a GAN
(two networks) trains under EASGD.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import jetlab
from jetlab.utils.locking import lock_holder

MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
pytestmark = [pytest.mark.mpi, pytest.mark.slow,
              pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")]

SRC = str(Path(jetlab.__file__).resolve().parents[1])


#: the warm interpreter (tests/warm_start.py) the ranks start from, set for every test
WARM = None


@pytest.fixture(autouse=True)
def _warm_ranks(warm_jetlab):
    global WARM
    WARM = warm_jetlab


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "JETLAB_SUPERVISED")}
    env.update(JETLAB_NO_PROGRESS="1", PYTHONPATH=SRC, **(WARM.environment() if WARM else {}))
    return env


def launch(n: int, *args: str, survive: bool = True, console_script: bool = False) -> subprocess.Popen:
    """``mpiexec [-disable-auto-cleanup] -n N python -m jetlab ARGS`` in the background
    (``console_script``: the ``jetlab`` script instead of ``python -m jetlab``)."""
    script = Path(sys.executable).parent / "jetlab"
    if console_script and (not script.is_file() or "entry" not in script.read_text()):
        pytest.fail(f"{script} is missing or out of date (it must call jetlab.cli.main:entry): pip install -e .")
    program = [str(script)] if console_script else [str(WARM.python) if WARM else sys.executable, "-m", "jetlab"]
    command = [MPIEXEC, *(["-disable-auto-cleanup"] if survive else []), "-n", str(n), *program, *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())


def finish(process: subprocess.Popen, timeout: float = 240) -> str:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        pytest.fail(f"mpiexec did not finish in {timeout} s:\n{out[-3000:]}")
    return out


def tagger(data, run, *extra: str) -> list[str]:
    return ["tagger", "train", "--model", "dnn", "--data", str(data), "--out", str(run), "--particles", "30",
            *extra]


def pids_of(run: Path, rank: int | None = None) -> list[int]:
    """The processes whose command line names ``run`` (with ``rank``: that rank's training
    process, the child of its supervisor)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if str(run) not in (entry / "cmdline").read_bytes().decode(errors="replace"):
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if rank is None or (f"PMI_RANK={rank}".encode() in environ
                            and any(v.startswith(b"JETLAB_SUPERVISED=") for v in environ)):
            found.append(int(entry.name))
    return found


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{path} never appeared:\n{finish(process)[-3000:]}")
        time.sleep(0.1)


def history(run: Path) -> list[dict]:
    return json.loads((run / "metrics.json").read_text())["history"]


@pytest.mark.parametrize("algorithm, tau, per_update", [("downpour", 3, {"UPDATE": 1}),
                                                        ("gem", 1, {"PULL": 1, "PUSH": 1})])
def test_each_algorithm_trains_a_tagger_and_the_master_gets_the_messages_it_prescribes(
        tiny_jets_dir, tmp_path, algorithm, tau, per_update):
    run = tmp_path / algorithm
    out = finish(launch(3, *tagger(tiny_jets_dir, run, "--epochs", "2", "--batch-size", "10", "--strategy",
                                   algorithm, "--sync-every", str(tau), "--gem-lr" if algorithm == "gem" else "--lr", "0.01")))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["strategy"] == algorithm and 0 <= metrics["accuracy"] <= 1, out
    records = metrics["history"]
    assert [r["epoch"] for r in records] == [1, 2] and all(r["workers"] == 2 for r in records)
    distributed = metrics["distributed"]
    assert distributed["workers"] == 2 and distributed["workers_lost"] == {}
    received = distributed["messages"]["received"]
    # 140 training jets, 2 workers x batch 10: 7 global batches an epoch, 7 updates per worker;
    # a worker exchanges after every tau of its 7 updates an epoch, and sends the rest at its end
    exchanges = 2 * 2 * -(-7 // tau)
    assert {kind: received.get(kind, 0) for kind in per_update} == {k: n * exchanges for k, n in per_update.items()}
    assert received["EPOCH"] == 2 * 2 and received["DONE"] == 2
    weights = sum(p.numel() for p in torch.load(run / "model.pt", weights_only=True)["state_dict"].values())
    assert distributed["messages"]["sent_bytes"]["WEIGHTS"] == (4 * weights + 56) * exchanges


def test_sub_masters_cut_the_messages_the_top_master_receives(tiny_jets_dir, tmp_path):
    run = tmp_path / "tree"
    out = finish(launch(7, *tagger(tiny_jets_dir, run, "--epochs", "1", "--batch-size", "5", "--strategy",
                                   "downpour", "--masters", "2")))
    metrics = json.loads((run / "metrics.json").read_text())
    distributed = metrics["distributed"]
    assert distributed["masters"] == 2 and distributed["workers"] == 4, out
    assert all(r["workers"] == 4 for r in metrics["history"])
    worker_updates = 4 * 7              # 140 jets, 4 workers x batch 5: 7 updates per worker an epoch
    received = distributed["messages"]["received"]
    assert received["DONE"] == 2 and received["EPOCH"] == 2   # from the two sub-masters only
    # a sub-master sends one sum per round of its live workers (none while one is in flight),
    # plus partial rounds at the end of the epoch and once a worker has finished: how many
    # depends on the workers' timing, but always fewer than the workers' own updates
    assert worker_updates // 4 <= received["UPDATE"] < worker_updates


def test_a_worker_killed_mid_training_is_dropped_at_once_and_the_run_finishes_with_status_0(tiny_jets_dir, tmp_path):
    run = tmp_path / "kill"
    # the console script, like python -m jetlab, runs each rank under the supervisor;
    # --worker-timeout 60: only mpiexec's notice (SIGUSR1) can get the worker dropped in time
    process = launch(4, *tagger(tiny_jets_dir, run, "--epochs", "12", "--batch-size", "4", "--strategy", "downpour",
                                "--worker-timeout", "60", "--patience", "0"), console_script=True)
    wait_for(run / "checkpoint.pt", process)
    victims = pids_of(run, rank=2)
    assert len(victims) == 1
    os.kill(victims[0], signal.SIGKILL)
    killed = time.time()
    out = finish(process)
    assert process.returncode == 0, out   # the survivors finished: the job succeeded
    assert "training finished with 2 of 3 children; lost: rank 2 in epoch" in out, out
    metrics = json.loads((run / "metrics.json").read_text())
    lost = metrics["distributed"]["workers_lost"]
    # MPI's word, not the time-out: mpiexec's SIGUSR1, or (when the worker died sending) the
    # receive of its last message failing
    assert list(lost) == ["2"] and ("SIGUSR1" in lost["2"]["reason"] or "could not be received" in lost["2"]["reason"])
    assert lost["2"]["unix_time"] - killed < 2.0   # dropped within 2 s of its death (the brief's bound)
    records = metrics["history"]
    assert [r["epoch"] for r in records] == list(range(1, 13))
    assert records[0]["workers"] == 3 and records[-1]["workers"] == 2
    # after the loss every epoch is still validated on its own weights: no frozen history
    after = [r["val_loss"] for r in records if r["epoch"] >= lost["2"]["epoch"]]
    assert len(after) >= 3 and all(a != b for a, b in zip(after, after[1:])), after


def test_resume_continues_the_masters_checkpoint_after_the_whole_job_was_killed(tiny_jets_dir, tmp_path):
    run = tmp_path / "resume"
    epochs = 40   # many short epochs: the kill lands mid-training however fast the machine is
    args = tagger(tiny_jets_dir, run, "--epochs", str(epochs), "--batch-size", "4", "--strategy", "easgd",
                  "--sync-every", "2", "--patience", "0")
    process = launch(3, *args)
    wait_for(run / "checkpoint.pt", process)
    # the checkpoint's writer first: rank 0, which holds the run's lock (a warm rank's process
    # is the warm server's child, whose command line does not name the run; the server kills it
    # when its caller dies, but not before it could save one more epoch)
    for pid in filter(None, [lock_holder(run), process.pid, *pids_of(run)]):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    finish(process)
    saved = torch.load(run / "checkpoint.pt", weights_only=True)
    assert 1 <= saved["epoch"] < epochs
    out = finish(launch(3, "tagger", "train", "--out", str(run), "--resume"))
    assert f"resuming {run}/checkpoint.pt after epoch {saved['epoch']}" in out, out
    records = history(run)
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    assert [r["val_loss"] for r in records[:saved["epoch"]]] == [r["val_loss"] for r in saved["history"]]


def test_allreduce_stops_with_one_clear_line_when_a_rank_dies_and_resume_recovers(tiny_jets_dir, tmp_path):
    run = tmp_path / "sync"
    args = tagger(tiny_jets_dir, run, "--epochs", "25", "--batch-size", "2", "--strategy", "allreduce",
                  "--patience", "0")
    process = launch(2, *args)
    wait_for(run / "checkpoint.pt", process)
    os.kill(pids_of(run, rank=1)[0], signal.SIGKILL)
    out = finish(process)
    assert process.returncode != 0
    assert "synchronous all-reduce cannot go on without it" in out and "--resume" in out, out
    assert "Traceback" not in out
    finish(launch(2, "tagger", "train", "--out", str(run), "--resume", survive=False))
    assert [r["epoch"] for r in history(run)] == list(range(1, 26))


def test_a_gan_trains_both_networks_under_easgd(tiny_jets_dir, tmp_path):
    run = tmp_path / "gan"
    out = finish(launch(3, "fastsim", "train", "--model", "gan", "--data", str(tiny_jets_dir), "--jet-class", "t",
                        "--epochs", "2", "--batch-size", "4", "--strategy", "easgd", "--plot-every", "0",
                        "--plot-samples", "16", "--metrics-samples", "0", "--hp", "generator.hidden=8",
                        "--hp", "discriminator.hidden=8", "--out", str(run)))
    saved = json.loads((run / "history.json").read_text())
    assert [r["epoch"] for r in saved["epochs"]] == [1, 2], out
    received = saved["distributed"]["messages"]["received"]
    # 28 training top jets, 2 workers x batch 4: global batches 8, 8, 8, 4 -> 4 updates of each
    # network per worker an epoch, each answered by an ELASTIC of the same size
    assert received["ELASTIC"] == 2 * 2 * 4 * 2 == saved["distributed"]["messages"]["sent"]["ELASTIC"]
    assert all("train_loss_g" in r and "train_loss_d" in r for r in saved["epochs"])


def test_a_flow_model_trains_under_gem(tiny_jets_dir, tmp_path):
    run = tmp_path / "flow"
    out = finish(launch(3, "fastsim", "train", "--model", "flow", "--data", str(tiny_jets_dir), "--jet-class", "g",
                        "--epochs", "2", "--batch-size", "4", "--strategy", "gem", "--plot-every", "0",
                        "--plot-samples", "16", "--metrics-samples", "8", "--hp", "flow.hidden=8", "--out", str(run)))
    saved = json.loads((run / "history.json").read_text())
    assert [r["epoch"] for r in saved["epochs"]] == [1, 2], out
    assert all(r["train_loss"] == r["train_loss"] and r["val_loss"] == r["val_loss"] for r in saved["epochs"])  # not nan
    assert saved["distributed"]["messages"]["received"], out   # the workers did talk to the master
    assert (run / "model.pt").is_file()
