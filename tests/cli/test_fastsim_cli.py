"""``jetlab fastsim`` commands: user errors are one line and exit 2; train -> sample ->
evaluate works end to end on a tiny synthetic JetNet file and the outputs read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from jetlab.cli.main import main
from jetlab.io import open_jets, write_jetnet_file
from jetlab.io.layout import CLASS_NAMES


@pytest.fixture(scope="module")
def tiny_gluon_file(tmp_path_factory):
    """120 synthetic gluon-like jets (JetNet layout), 30 particles, all full."""
    rng = np.random.default_rng(1)
    n, p = 120, 30
    pt = np.sort(rng.exponential(1.0, (n, p)), axis=1)[:, ::-1]
    pt = pt / pt.sum(1, keepdims=True)
    spread = 0.05 + 0.3 * (1 - pt / pt.max(1, keepdims=True))
    eta, phi = rng.normal(0, 1, (2, n, p)) * spread
    features = np.stack([eta, phi, pt, np.ones((n, p))], -1).astype(np.float32)
    path = tmp_path_factory.mktemp("cli") / "g.h5"
    write_jetnet_file(path, features, np.zeros((n, 4), np.float32), jet_class="g")
    return path


def _one_line_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and err.startswith("jetlab: error:"), err
    assert "Traceback" not in err
    return err


def test_unknown_model_is_one_line_exit_2(capsys, tmp_path):
    err = _one_line_error(capsys, ["fastsim", "train", "--model", "diffusion", "--out", str(tmp_path / "r")])
    assert "unknown model 'diffusion'; known: vae, gan, flow, or FILE.py:Class" in err
    assert not (tmp_path / "r").exists()


def test_bad_jet_class_is_one_line_exit_2(capsys, tmp_path):
    err = _one_line_error(capsys, ["fastsim", "train", "--model", "gan", "--jet-class", "b",
                                   "--out", str(tmp_path / "r")])
    assert "'b'" in err and "'g', 'q', 'w', 'z', 't'" in err


@pytest.mark.parametrize("command", [["sample", "--n", "5", "--out", "x.h5"], ["evaluate"]])
def test_missing_run_is_one_line_exit_2(capsys, tmp_path, command):
    missing = tmp_path / "no_run"
    err = _one_line_error(capsys, ["fastsim", command[0], str(missing), *command[1:]])
    assert str(missing) in err


def test_run_without_checkpoint_and_missing_data_are_one_line(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    err = _one_line_error(capsys, ["fastsim", "sample", str(empty), "--n", "5", "--out", str(tmp_path / "x.h5")])
    assert "not a trained fastsim run" in err
    err = _one_line_error(capsys, ["fastsim", "train", "--data", str(tmp_path / "nowhere"), "--epochs", "1",
                                   "--out", str(tmp_path / "r")])
    assert "nowhere" in err
    err = _one_line_error(capsys, ["fastsim", "train", "--resume", "--out", str(tmp_path / "r2")])
    assert "r2" in err
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("model: gan\nlearning_rate: 0.1\n")
    err = _one_line_error(capsys, ["fastsim", "train", "--config", str(bad_config), "--out", str(tmp_path / "r3")])
    assert "learning_rate" in err


@pytest.mark.slow
# FPD's matrix square root of 6x6 covariances from a handful of jets can be singular
@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_train_sample_evaluate_end_to_end(capsys, tmp_path, tiny_gluon_file):
    run = tmp_path / "run"
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "batch_size": 16, "latent_dim": 4, "plot_samples": 16, "metrics_samples": 0,
        "generator_options": {"hidden": 16, "n_layers": 1},
        "discriminator_options": {"hidden": 16, "n_layers": 1},
    }))
    argv = ["fastsim", "train", "--model", "gan", "--data", str(tiny_gluon_file), "--jet-class", "g",
            "--epochs", "1", "--out", str(run), "--config", str(config), "--seed", "3", "--plot-every", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "trained gan" in out
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"] == "gan" and saved["seed"] == 3 and saved["generator_options"]["hidden"] == 16
    history = json.loads((run / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1]
    assert {"train_loss_d", "train_loss_g", "train_r1", "jets_per_s"} <= set(history["epochs"][0])
    assert (run / "epoch0001_jet_images.png").is_file() and (run / "epoch0001_histograms.png").is_file()

    # training again into the same RUN without --resume is refused; --resume with a new model too
    err = _one_line_error(capsys, argv)
    assert "--resume" in err
    err = _one_line_error(capsys, ["fastsim", "train", "--model", "vae", "--out", str(run), "--resume"])
    assert "model='gan'" in err and "drop --model" in err
    err = _one_line_error(capsys, [*argv, "--resume"])
    assert "--config and --resume" in err
    # --resume to 2 epochs continues
    assert main(["fastsim", "train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    capsys.readouterr()
    assert [e["epoch"] for e in json.loads((run / "history.json").read_text())["epochs"]] == [1, 2]

    hls = tmp_path / "generated"
    assert main(["fastsim", "sample", str(run), "--n", "30", "--out", str(hls), "--format", "hls4ml"]) == 0
    jets = open_jets(hls)
    assert jets.n_jets == 30 and jets.n_particles == 30
    assert (jets.labels() == CLASS_NAMES.index("g")).all()
    assert main(["fastsim", "sample", str(run), "--n", "30", "--out", str(tmp_path / "g.h5")]) == 0
    assert open_jets(tmp_path / "g.h5").layout == "jetnet"
    err = _one_line_error(capsys, ["fastsim", "sample", str(run), "--n", "3", "--out", "x.h5", "--format", "csv"])
    assert "csv" in err
    (tmp_path / "a-file").write_text("")  # an unwritable place, even for root
    err = _one_line_error(capsys, ["fastsim", "sample", str(run), "--n", "3", "--out", str(tmp_path / "a-file" / "s.h5")])
    assert err == f"jetlab: error: {tmp_path / 'a-file' / 's.h5'}: cannot write: a parent of it is not a directory"

    capsys.readouterr()
    assert main(["fastsim", "evaluate", str(run), "--n", "16"]) == 0
    out = capsys.readouterr().out
    assert "W1-M" in out and "truth" in out
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert set(evaluation["metrics"]["generated"]) >= {"w1m", "w1p", "w1efp", "cov", "mmd", "fpd"}
    assert (run / "evaluation_jet_images.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gan", "vae", "flow"])
def test_torchrun_trains_a_generator_data_parallel_and_writes_the_run_once(tmp_path, tiny_gluon_file, model,
                                                                           warm_jetlab):
    import os
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update(warm_jetlab.environment())  # the ranks start from the warm interpreter (tests/warm_start.py)
    done = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "jetlab", "fastsim", "train", "--model", model,
         "--data", str(tiny_gluon_file), "--jet-class", "g", "--epochs", "2", "--batch-size", "16",
         "--plot-samples", "16", "--metrics-samples", "16", "--threads", "1",
         *(["--latent-dim", "4"] if model != "flow" else []),
         "--hp", f"{ {'vae': 'vae', 'gan': 'generator', 'flow': 'flow'}[model] }.hidden=16", "--out", str(run)],
        capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count(f"trained {model}") == 1  # rank 0 alone reports and writes
    history = json.loads((run / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    assert "val_w1m" in history["epochs"][-1]
    assert (run / "model.pt").is_file() and (run / "final_jet_images.png").is_file()
    assert sorted(p.name for p in run.glob(".*tmp*")) == []  # no half-written files from a second writer
