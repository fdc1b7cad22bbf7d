"""``jetlab tagger`` from the command line: outputs, config precedence, one-line errors."""

import json

import pytest
import yaml

from jetlab.cli.main import main


def run_cli(*argv):
    if argv[0] == "train":
        argv = (*argv, "--threads", 1)  # tiny models: one thread is faster on a busy machine
    return main(["tagger", *map(str, argv)])


def one_line_error(capsys, code):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("jetlab: error: "), err
    return err[0]


def test_train_dnn_one_epoch_writes_the_run_directory(tiny_jets_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", "--model", "dnn", "--data", tiny_jets_dir, "--epochs", 1, "--out", out) == 0
    assert "dnn: test accuracy" in capsys.readouterr().out
    for name in ("config.yaml", "checkpoint.pt", "model.pt", "metrics.json", "roc.png", "training_curve.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and metrics["model"] == "dnn"
    assert sum(metrics["dataset_sizes"].values()) == 200
    assert set(metrics["per_class"]) == {"g", "q", "w", "z", "t"}
    assert {"auc", "auc_error", "tpr_at_fpr_10", "tpr_at_fpr_1", "rejection_at_30"} <= set(metrics["per_class"]["t"])
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["dataset_sizes"]["test"]
    assert metrics["n_parameters"] > 0 and metrics["training_time_s"] > 0

    capsys.readouterr()
    assert run_cli("evaluate", out, "--data", tiny_jets_dir, "--eval-name", "again") == 0
    assert (out / "eval-again" / "metrics.json").is_file()
    again = json.loads((out / "eval-again" / "metrics.json").read_text())
    called = [sum(col) for col in zip(*again["confusion_matrix"])]
    shares = ", ".join(f"{c} {n / sum(called):.1%}" for c, n in zip("gqwzt", called))
    assert f"called {shares}" in capsys.readouterr().out
    assert run_cli("compare", out, out / ".." / "run") == 0
    table = capsys.readouterr().out
    assert "| dnn (run) |" in table
    mean = sum(metrics["per_class"][c]["auc"] for c in "gqwzt") / 5
    assert f"| {mean:.3f} ± " in table
    # the same run twice: the paired difference on the same jets is exactly zero
    assert "paired bootstrap" in table and "+0.0000 ± 0.0000" in table


def test_config_file_then_explicit_flags(tiny_jets_dir, tmp_path):
    config = tmp_path / "my.yaml"
    config.write_text(yaml.safe_dump({"model": "dnn", "epochs": 5, "lr": 0.005, "batch_size": 50,
                                      "data": str(tiny_jets_dir)}))
    out = tmp_path / "run"
    assert run_cli("train", "--config", config, "--epochs", 1, "--out", out) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (saved["epochs"], saved["lr"], saved["batch_size"], saved["model"]) == (1, 0.005, 50, "dnn")


def test_unknown_model_is_a_one_line_error(tmp_path, capsys):
    message = one_line_error(capsys, run_cli("train", "--model", "resnet", "--out", tmp_path / "r"))
    assert "unknown tagger 'resnet'" in message and "jedinet" in message


def test_particle_count_mismatch_is_a_one_line_error(tiny_jets_dir, tmp_path, capsys):
    code = run_cli("train", "--model", "dnn", "--data", tiny_jets_dir, "--particles", 50, "--out", tmp_path / "r")
    message = one_line_error(capsys, code)
    assert "has 30 particles per jet but 50 were asked for" in message


def test_missing_data_path_is_a_one_line_error(tmp_path, capsys):
    code = run_cli("train", "--model", "dnn", "--data", tmp_path / "nowhere", "--out", tmp_path / "r")
    assert "nowhere: no such file or directory" in one_line_error(capsys, code)


def test_resuming_another_models_checkpoint_is_a_one_line_error(tiny_jets_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", "--model", "dnn", "--data", tiny_jets_dir, "--epochs", 1, "--out", out) == 0
    capsys.readouterr()
    message = one_line_error(capsys, run_cli("train", "--model", "gru", "--out", out, "--resume"))
    assert "was trained with model='dnn'" in message and "drop --model" in message
    assert yaml.safe_load((out / "config.yaml").read_text())["model"] == "dnn"  # run left untouched
    # and a plain rerun into a finished run refuses to overwrite it
    message = one_line_error(capsys, run_cli("train", "--model", "dnn", "--data", tiny_jets_dir, "--out", out))
    assert "--resume" in message


@pytest.mark.parametrize("content, expected", [
    ("epochz: 3\n", "unknown setting(s) epochz"),
    ("model: dnn\nschedule: linear\n", "unknown schedule 'linear'"),
])
def test_bad_config_file_is_a_one_line_error(tmp_path, capsys, content, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(content)
    assert expected in one_line_error(capsys, run_cli("train", "--config", config, "--out", tmp_path / "r"))


@pytest.mark.slow
def test_train_without_data_says_it_generates_the_default_set_once(tmp_path, warm_jetlab):
    import os
    import subprocess

    env = {**os.environ, **warm_jetlab.environment(), "JETLAB_CACHE": str(tmp_path / "cache"), "JETLAB_DEFAULT_JETS_PER_CLASS": "8",
           "JETLAB_NO_PROGRESS": "1"}

    def train(out):
        return subprocess.run(
            [*warm_jetlab.jetlab(), "tagger", "train", "--model", "dnn", "--epochs", "1", "--batch-size",
             "10", "--threads", "1", "--out", str(tmp_path / out)],
            capture_output=True, text=True, timeout=300, env=env,
        )

    first = train("run")
    assert first.returncode == 0, first.stderr
    assert "no --data given: generating the default Pythia jet set" in first.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["dataset_sizes"] == {
        "train": 28, "val": 6, "test": 6}
    second = train("again")  # the set is cached now: no notice
    assert second.returncode == 0, second.stderr
    assert "no --data given" not in second.stderr


def test_compare_pairs_runs_only_when_they_were_scored_on_the_same_jets(tmp_path):
    import numpy as np

    from jetlab.training.tagger_eval import _paired_differences

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        np.savez(tmp_path / name / "predictions.npz", labels=labels, probs=rng.dirichlet(np.ones(3), labels.size))
    folders = [tmp_path / "a", tmp_path / "b"]
    same = {"data": "/jets", "dataset_sizes": {"test": 60}, "n_jets": 60}
    (line,) = _paired_differences(["a", "b"], folders, [same, same])
    assert line.startswith("mean AUC minus a's on the same jets") and "b " in line
    # same labels in the same order but another data set (e.g. another generator seed): not paired
    other = {**same, "data": "/other-jets"}
    assert _paired_differences(["a", "b"], folders, [same, other]) == [
        "no paired comparison: the runs were not scored on the same test jets"]
