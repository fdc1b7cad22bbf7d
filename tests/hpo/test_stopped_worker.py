"""``jetlab hpo run`` stopped by SIGTERM or Ctrl-C in the middle of a trial: one line saying how to
go on, and the trial queued again (same parameters, same run directory), which the rerun
continues from its last checkpoint instead of losing it."""

import json
import os
import signal
import subprocess
import time

import pytest

from jetlab.cli.main import main
from jetlab.utils.locking import LOCK_NAME

pytest.importorskip("optuna", reason="pip install 'jetlab[hpo]'")

EPOCHS = 25


def _ctrl_c_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # pytest's children may inherit SIGINT ignored


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_workers_trial_is_queued_again_and_the_rerun_continues_it(how, tmp_path, tiny_jets_dir,
                                                                          read_study, warm_jetlab):
    storage, run = f"sqlite:///{tmp_path}/study.db", tmp_path / "trial-0"
    flags = ["--study", "s", "--storage", storage, "--dir", str(tmp_path), "--model", "dnn", "--data",
             str(tiny_jets_dir), "--epochs", str(EPOCHS), "--patience", "0", "--threads", "1", "--heartbeat", "0",
             "--trials", "1", "--sampler", "random", "--pruner", "none"]
    worker = subprocess.Popen([*warm_jetlab.jetlab(), "hpo", "run", *flags], stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **warm_jetlab.environment(), "JETLAB_NO_PROGRESS": "1"},
                              start_new_session=True, preexec_fn=_ctrl_c_as_in_a_terminal)
    deadline = time.monotonic() + 240
    while True:  # in the middle of the trial: an epoch checkpointed, the run not finished
        assert worker.poll() is None and time.monotonic() < deadline, "the trial was not caught in the middle"
        if (run / "checkpoint.pt").is_file() and (run / LOCK_NAME).is_file():
            # the process training it (the worker, or the command a warm worker runs), frozen
            trainer = int((run / LOCK_NAME).read_text().strip() or 0)
            os.kill(trainer, signal.SIGSTOP)
            if not (run / "metrics.json").exists():
                break
            pytest.fail("the trial ended before it could be stopped")
        time.sleep(0.02)
    os.killpg(worker.pid, how)  # the signal waits in the frozen process until it goes on
    os.kill(trainer, signal.SIGCONT)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 128 + how, err[-3000:]
    said = "stopped by SIGTERM" if how == signal.SIGTERM else "interrupted"
    assert err.strip().splitlines()[-1] == (f"jetlab: {'error: ' if how == signal.SIGTERM else ''}{said}; the trial in "
                                            "progress is queued again and continues from its last finished epoch: "
                                            "rerun the same command to continue")
    assert "Traceback" not in err

    trials, _ = read_study(storage, "s")
    stopped, queued = trials
    assert stopped.state.name == "FAIL" and queued.state.name == "WAITING"
    assert queued.params == stopped.params and queued.system_attrs["failed_trial"] == 0
    assert queued.user_attrs["run_dir"] == str(run)

    assert main(["hpo", "run", "--study", "s", "--storage", storage, "--trials", "1", "--heartbeat", "0"]) == 0
    trials, _ = read_study(storage, "s")
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    metrics = json.loads((run / "metrics.json").read_text())  # continued in trial 0's directory, all epochs once
    assert [r["epoch"] for r in metrics["history"]] == list(range(1, EPOCHS + 1))
    assert trials[1].value == metrics["validation"]["accuracy"]
