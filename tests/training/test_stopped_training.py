"""Training stopped by SIGTERM (a batch system's) or Ctrl-C: one line that names ``--resume``,
exit status 128 + signal, and the run continued with ``--resume`` finishes every epoch once."""

import json
import os
import signal
import subprocess
import time

import pytest

from jetlab.cli.main import main

EPOCHS = 30


def _ctrl_c_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # pytest's children may inherit SIGINT ignored


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_stopped_training_says_resume_and_resume_finishes(how, tmp_path, tiny_jets_dir, warm_jetlab):
    run = tmp_path / "run"
    argv = ["tagger", "train", "--model", "dnn", "--data", str(tiny_jets_dir), "--epochs", str(EPOCHS),
            "--patience", "0", "--threads", "1", "--out", str(run)]
    # the signal goes to the caller's group; from the warm interpreter it reaches the command too
    proc = subprocess.Popen([*warm_jetlab.jetlab(), *argv], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **warm_jetlab.environment(), "JETLAB_NO_PROGRESS": "1"},
                            start_new_session=True,
                            preexec_fn=_ctrl_c_as_in_a_terminal)
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.pt").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, "no epoch finished"
        time.sleep(0.02)
    os.killpg(proc.pid, how)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + how
    advice = "the run directory keeps its last finished epoch: add --resume to the same command to continue"
    said = "jetlab: error: stopped by SIGTERM" if how == signal.SIGTERM else "jetlab: interrupted"
    assert err.strip().splitlines()[-1] == f"{said}; {advice}" and "Traceback" not in err
    assert not (run / "metrics.json").exists()
    assert main([*argv, "--resume"]) == 0
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert [r["epoch"] for r in history] == list(range(1, EPOCHS + 1))
