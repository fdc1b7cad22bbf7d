"""Several ``jetlab hpo run`` processes on one study (SQLite and a real PostgreSQL server): both
start on an empty database at once, one is killed with SIGKILL in the middle of a trial, the
other retries that trial with the same parameters, continuing its run directory; a finished
study continues with more trials; ``mpiexec`` groups train trials data-parallel side by side;
workers starting at once do not run more trials than asked for."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jetlab.cli.main import main
from jetlab.utils.locking import LOCK_NAME

optuna = pytest.importorskip("optuna", reason="pip install 'jetlab[hpo]'")

EPOCHS = 12


def _worker(flags, log: Path, warm):
    """``jetlab hpo run FLAGS`` from the warm interpreter (tests/warm_start.py), output to ``log``."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    with open(log, "w") as out:
        return subprocess.Popen([*warm.jetlab(), "hpo", "run", *flags], stdout=out, stderr=subprocess.STDOUT,
                                env={**env, **warm.environment()})


def _kill_one_mid_trial(study_dir: Path, workers, deadline_s: float = 180.0):
    """SIGKILL the process training a trial that has checkpointed an epoch and not finished; its
    run directory's lock file names it (a worker, or the command a warm worker runs, whose
    worker then dies the same way). Returns (run directory, the killed worker)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for run in sorted(study_dir.glob("trial-*")):
            lock = run / LOCK_NAME
            if not (run / "checkpoint.pt").is_file() or (run / "metrics.json").exists() or not lock.is_file():
                continue
            pid = int(lock.read_text().strip() or 0)
            try:
                os.kill(pid, signal.SIGSTOP)  # frozen, then checked: it is really mid-trial
            except (ProcessLookupError, PermissionError):
                continue
            if (run / "metrics.json").exists():
                os.kill(pid, signal.SIGCONT)
                continue
            os.kill(pid, signal.SIGKILL)
            return run, _first_to_end(workers)
        if all(w.poll() is not None for w in workers):
            break
        time.sleep(0.02)
    raise AssertionError("no worker was caught in the middle of a trial")


def _first_to_end(workers, timeout_s: float = 30.0):
    """The first of ``workers`` to end (the other still has trials to run)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        for w in workers:
            if w.poll() is not None:
                return w
        time.sleep(0.01)
    raise AssertionError("no worker ended after one was killed")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_killed_workers_trial_is_retried_by_the_other_with_the_same_parameters(backend, tmp_path, tiny_jets_dir,
                                                                                 request, read_study, warm_jetlab):
    storage = (f"sqlite:///{tmp_path}/study/study.db" if backend == "sqlite"
               else request.getfixturevalue("postgres_url"))
    study_dir = tmp_path / "study"
    flags = ["--study", "w", "--storage", storage, "--dir", str(study_dir), "--model", "dnn", "--data",
             str(tiny_jets_dir), "--epochs", str(EPOCHS), "--patience", "0", "--threads", "1", "--heartbeat", "2",
             "--trials", "3", "--sampler", "random", "--pruner", "none"]
    # both start at once on an empty database: the study (and its tables) is created once
    workers = [_worker(flags + ["--sampler-seed", str(k)], tmp_path / f"worker{k}.log", warm_jetlab)
               for k in range(2)]
    try:
        victim_run, victim = _kill_one_mid_trial(study_dir, workers)
        (survivor,) = [w for w in workers if w is not victim]
        survivor.wait(timeout=240)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    logs = {w.pid: (tmp_path / f"worker{k}.log").read_text() for k, w in enumerate(workers)}
    assert survivor.returncode == 0, logs[survivor.pid][-3000:]
    assert victim.returncode == -signal.SIGKILL

    trials, _ = read_study(storage, "w")
    (killed,) = [t for t in trials if t.state.name == "FAIL"]
    assert killed.user_attrs["run_dir"] == str(victim_run)
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state.name == "COMPLETE" and retry.params == killed.params
    assert retry.user_attrs["run_dir"] == str(victim_run)  # continued in the dead trial's directory ...
    assert f"resuming {victim_run / 'checkpoint.pt'} after epoch" in logs[survivor.pid]  # ... from its checkpoint
    metrics = json.loads((victim_run / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["history"]] == list(range(1, EPOCHS + 1))
    assert retry.value == metrics["validation"]["accuracy"]
    assert sum(t.state.name == "COMPLETE" for t in trials) == 3

    if backend == "postgresql":  # the finished study continues: numbers go on, finished trials are kept
        before = {t.number: (t.state.name, t.values) for t in trials}
        assert main(["hpo", "run", "--study", "w", "--storage", storage, "--trials", "4", "--heartbeat", "0",
                     "--epochs", str(EPOCHS)]) == 0
        after, _ = read_study(storage, "w")
        assert {t.number: (t.state.name, t.values) for t in after if t.number in before} == before
        (new,) = [t for t in after if t.number not in before]
        assert new.number == max(before) + 1 and new.state.name == "COMPLETE"
        assert new.user_attrs["run_dir"] == str(study_dir / f"trial-{new.number}")


@pytest.mark.slow
@pytest.mark.mpi
def test_mpiexec_groups_train_different_trials_each_data_parallel(tmp_path, tiny_jets_dir, read_study, warm_jetlab):
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec (pip install mpich)")
    storage = f"sqlite:///{tmp_path}/study.db"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update(warm_jetlab.environment())  # the ranks start from the warm interpreter (tests/warm_start.py)
    done = subprocess.run([mpiexec, "-n", "4", *warm_jetlab.jetlab(), "hpo", "run", "--ranks-per-trial",
                           "2", "--study", "g", "--storage", storage, "--dir", str(tmp_path), "--model", "dnn",
                           "--data", str(tiny_jets_dir), "--epochs", "2", "--trials", "4", "--heartbeat", "0",
                           "--sampler", "random"], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "4 complete; this run trained 4" in done.stdout
    trials, _ = read_study(storage, "g")
    assert len(trials) == 4 and {t.state.name for t in trials} == {"COMPLETE"}
    for trial in trials:
        metrics = json.loads((Path(trial.user_attrs["run_dir"]) / "metrics.json").read_text())
        assert metrics["processes"] == 2 and metrics["strategy"] == "allreduce"  # each trial: a 2-rank group
        assert trial.user_attrs["processes"] == 2
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # two groups, each a worker of the study


@pytest.mark.slow
@pytest.mark.mpi
def test_a_failing_trial_under_mpiexec_ends_the_job_with_its_error(tmp_path, tiny_jets_dir, warm_jetlab):
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec (pip install mpich)")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update(warm_jetlab.environment())
    done = subprocess.run([mpiexec, "-n", "2", *warm_jetlab.jetlab(), "hpo", "run", "--ranks-per-trial", "2",
                           "--study", "f", "--dir", str(tmp_path), "--model", "dnn", "--data", str(tiny_jets_dir),
                           "--batch-size", "100000", "--trials", "1", "--heartbeat", "0"],
                          capture_output=True, text=True, timeout=120, env=env)  # no rank is left waiting
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "jetlab: error:" in output and "less than half a batch" in output, output[-3000:]


_RACING_WORKER = """
import sys, time
import optuna
import jetlab.hpo.study as hpo_study

url, lock = sys.argv[1], sys.argv[2] == "lock"
counted = hpo_study.trial_counts

def slow_counts(study):  # widen the window between counting the trials and starting one
    counts = counted(study)
    time.sleep(0.4)
    return counts

hpo_study.trial_counts = slow_counts
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name="race", storage=hpo_study.open_storage(url))
ran = hpo_study.run_worker(study, lambda trial: time.sleep(0.2) or 1.0, 2, poll_s=0.2, lock_url=url if lock else None)
print("ran", ran)
"""


def test_workers_starting_at_once_do_not_run_more_trials_than_asked(tmp_path):
    """Counting the finished + running trials and starting one happen under the study's lock."""
    url = f"sqlite:///{tmp_path}/study.db"
    optuna.create_study(study_name="race", storage=url)
    workers = [subprocess.Popen([sys.executable, "-c", _RACING_WORKER, url, "lock"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [w.communicate(timeout=120) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err[-2000:] for _, err in outputs]
    trials = optuna.load_study(study_name="race", storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 2    # three workers, two trials asked for
    assert sum(int(out.split()[-1]) for out, _ in outputs) == 2
