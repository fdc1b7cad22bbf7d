"""Every user error of ``jetlab tagger train|evaluate|compare|export`` and ``jetlab fastsim
train|sample|evaluate``: one line, exit 2, no traceback, nothing changed on disk (the table
machinery is tests/cli/bad_input.py)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from bad_input import BadInput, check_bad_input


@pytest.fixture(scope="module")
def resources(tiny_jets_dir, trained_run, gluon_jetnet_file, trained_generator_run):
    """Real jets, a trained tagger run, a trained generator run and a JetNet file (session-wide)."""
    return SimpleNamespace(jets=tiny_jets_dir, tagger=Path(trained_run("dnn")), generator=trained_generator_run,
                           jetnet=gluon_jetnet_file)


def _text_file(tmp, _):
    (tmp / "file.txt").write_text("not a directory\n")


def _copy_tagger(tmp, res):
    shutil.copytree(res.tagger, tmp / "run")


def _copy_generator(tmp, res):
    shutil.copytree(res.generator, tmp / "run")


def _empty_dir(tmp, _):
    (tmp / "empty").mkdir()


def _one_class(tmp, res):
    (tmp / "jets").mkdir()
    shutil.copy(sorted(res.jets.glob("jets_t_*.h5"))[0], tmp / "jets")


def _corrupt_model(tmp, res):
    _copy_tagger(tmp, res)
    (tmp / "run" / "model.pt").write_bytes(b"\x80\x02 half a pickle")


def _corrupt_metrics(tmp, _):
    (tmp / "run").mkdir()
    (tmp / "run" / "metrics.json").write_text("{not json")


def _yaml(text):
    def setup(tmp, _):
        (tmp / "c.yaml").write_text(text)
    return setup


TRAIN = ("tagger", "train", "--model", "dnn", "--data", "{jets}", "--threads", "1", "--out", "{tmp}/run")
GAN = ("fastsim", "train", "--model", "gan", "--data", "{jetnet}", "--jet-class", "g", "--out", "{tmp}/run")

CASES = [
    # tagger train: settings
    BadInput("train-zero-epochs", (*TRAIN, "--epochs", "0"), "epochs must be a positive integer"),
    BadInput("train-zero-batch", (*TRAIN, "--batch-size", "0"), "batch-size must be a positive integer"),
    BadInput("train-negative-batch", (*TRAIN, "--batch-size", "-5"), "batch-size must be a positive integer"),
    BadInput("train-word-epochs", (*TRAIN, "--epochs", "x"), "--epochs expects int, got 'x'"),
    BadInput("train-zero-lr", (*TRAIN, "--lr", "0"), "lr must be positive"),
    BadInput("train-gem-sync-every", (*TRAIN, "--strategy", "gem", "--sync-every", "4"),
             "--sync-every applies to --strategy downpour/easgd only, not gem"),
    BadInput("train-gem-lr", (*TRAIN, "--strategy", "gem", "--lr", "0.01"), "--strategy gem does not use --lr"),
    BadInput("train-local-elastic-alpha", (*TRAIN, "--elastic-alpha", "0.5"),
             "--elastic-alpha applies to --strategy easgd only, not auto"),
    BadInput("train-downpour-gem-lr", (*TRAIN, "--strategy", "downpour", "--gem-lr", "0.01"),
             "--gem-lr applies to --strategy gem only, not downpour"),
    BadInput("train-lr-factor", (*TRAIN, "--lr-factor", "2"), "lr-factor must be in (0, 1)"),
    BadInput("train-zero-threads", (*TRAIN, "--threads", "0"), "threads must be at least 1"),
    BadInput("train-zero-particles", (*TRAIN, "--particles", "0"), "particles must be at least 1"),
    BadInput("train-bad-optimizer", (*TRAIN, "--optimizer", "lbfgs"), "invalid choice: 'lbfgs'"),
    BadInput("train-unknown-model", (*TRAIN, "--model", "resnet"), "unknown tagger 'resnet'"),
    BadInput("train-stop-after-0", (*TRAIN, "--stop-after", "0"), "--stop-after: must be at least 1"),
    # tagger train: model hyperparameters
    BadInput("train-hp-word", (*TRAIN, "--hp", "hidden=abc"), "hyperparameter hidden must be a list"),
    BadInput("train-hp-unknown", (*TRAIN, "--hp", "depth=3"), "unknown hyperparameter(s) depth"),
    BadInput("train-hp-no-value", (*TRAIN, "--hp", "hidden"), "--hp 'hidden': expected KEY=VALUE"),
    # tagger train: files and directories
    BadInput("train-out-is-a-file", (*TRAIN[:-1], "{tmp}/file.txt"), "exists and is not a directory", _text_file),
    BadInput("train-out-unwritable", (*TRAIN[:-1], "/proc/jetlab-test/run"), "/proc"),
    BadInput("train-missing-data", (*TRAIN[:5], "{tmp}/nowhere", *TRAIN[6:]), "nowhere: no such file or directory"),
    BadInput("train-data-is-text", (*TRAIN[:5], "{tmp}/file.txt", *TRAIN[6:]), "file.txt", _text_file),
    BadInput("train-one-class", (*TRAIN[:5], "{tmp}/jets", *TRAIN[6:]), "a tagger needs two or more", _one_class),
    BadInput("train-overwrite", TRAIN, "already holds a training run; pass --resume", _copy_tagger),
    BadInput("train-config-missing", (*TRAIN, "--config", "{tmp}/none.yaml"), "no such config file"),
    BadInput("train-config-yaml", (*TRAIN, "--config", "{tmp}/c.yaml"), "not valid YAML", _yaml("a: [1,\n")),
    BadInput("train-config-key", (*TRAIN, "--config", "{tmp}/c.yaml"), "unknown setting(s) epochz", _yaml("epochz: 3\n")),
    # tagger train --resume
    BadInput("resume-nothing", ("tagger", "train", "--out", "{tmp}/empty", "--resume"),
             "holds no training run to resume", _empty_dir),
    BadInput("resume-missing-dir", ("tagger", "train", "--out", "{tmp}/none", "--resume"), "no such run directory"),
    BadInput("resume-other-split", ("tagger", "train", "--out", "{tmp}/run", "--resume", "--split-seed", "7"),
             "was trained with split_seed=0", _copy_tagger),
    BadInput("resume-other-data", ("tagger", "train", "--out", "{tmp}/run", "--resume", "--data", "{tmp}"),
             "was trained with data=", _copy_tagger),
    BadInput("resume-with-config", ("tagger", "train", "--out", "{tmp}/run", "--resume", "--config", "{tmp}/c.yaml"),
             "--config and --resume", lambda tmp, res: (_copy_tagger(tmp, res), _yaml("epochs: 3\n")(tmp, res))),
    # tagger evaluate / compare / export
    BadInput("evaluate-no-run", ("tagger", "evaluate", "{tmp}/empty", "--data", "{jets}"), "no trained model here",
             _empty_dir),
    BadInput("evaluate-missing-data", ("tagger", "evaluate", "{tagger}", "--data", "{tmp}/nowhere"),
             "no such file or directory"),
    BadInput("evaluate-zero-batch", ("tagger", "evaluate", "{tagger}", "--data", "{jets}", "--batch-size", "0"),
             "--batch-size: must be at least 1"),
    BadInput("evaluate-corrupt-model", ("tagger", "evaluate", "{tmp}/run", "--data", "{jets}"),
             "not a readable model file", _corrupt_model),
    BadInput("compare-no-metrics", ("tagger", "compare", "{tmp}/empty"), "no metrics.json", _empty_dir),
    BadInput("compare-corrupt-metrics", ("tagger", "compare", "{tmp}/run"), "not valid JSON", _corrupt_metrics),
    BadInput("export-no-run", ("tagger", "export", "{tmp}/empty", "--format", "onnx", "--out", "{tmp}/x"),
             "no trained model here", _empty_dir),
    BadInput("export-bad-format", ("tagger", "export", "{tagger}", "--format", "tflite"), "invalid choice: 'tflite'"),
    # fastsim train
    BadInput("gan-zero-epochs", (*GAN, "--epochs", "0"), "epochs must be a positive integer"),
    BadInput("gan-zero-batch", (*GAN, "--batch-size", "0"), "batch-size must be a positive integer"),
    BadInput("gan-bad-model", (*GAN, "--model", "diffusion"), "unknown model 'diffusion'; known: vae, gan, flow"),
    BadInput("gan-bad-class", (*GAN, "--jet-class", "b"), "invalid choice: 'b'"),
    BadInput("gan-missing-data", (*GAN[:5], "{tmp}/nowhere", *GAN[6:]), "no such file or directory"),
    BadInput("gan-hp-no-network", (*GAN, "--hp", "hidden=8"), "expected NET.KEY=VALUE"),
    BadInput("gan-hp-unknown", (*GAN, "--hp", "generator.depth=3"), "generator: unknown hyperparameter(s) depth"),
    BadInput("gan-hp-word", (*GAN, "--hp", "generator.hidden=abc"), "hyperparameter hidden must be a int"),
    BadInput("gan-negative-metrics", (*GAN, "--metrics-samples", "-1"), "metrics_samples must be >= 0"),
    BadInput("gan-zero-threads", (*GAN, "--threads", "0"), "threads must be at least 1"),
    BadInput("gan-overwrite", GAN, "already holds a training run", _copy_generator),
    BadInput("gan-resume-nothing", ("fastsim", "train", "--out", "{tmp}/empty", "--resume"),
             "holds no training run to resume", _empty_dir),
    BadInput("gan-resume-other-class", ("fastsim", "train", "--out", "{tmp}/run", "--resume", "--jet-class", "t"),
             "was trained with jet_class='g'", _copy_generator),
    # fastsim sample / evaluate
    BadInput("sample-no-run", ("fastsim", "sample", "{tmp}/empty", "--n", "5", "--out", "{tmp}/x.h5"),
             "not a trained fastsim run", _empty_dir),
    BadInput("sample-zero", ("fastsim", "sample", "{generator}", "--n", "0", "--out", "{tmp}/x.h5"),
             "--n: must be at least 1"),
    BadInput("sample-bad-format", ("fastsim", "sample", "{generator}", "--n", "3", "--out", "{tmp}/x.h5",
                                   "--format", "csv"), "invalid choice: 'csv'"),
    BadInput("evaluate-too-few", ("fastsim", "evaluate", "{generator}", "--n", "2"), "--n must be at least 4"),
    BadInput("evaluate-negative-classifier", ("fastsim", "evaluate", "{generator}", "--classifier-time-limit-s", "-1"),
             "--classifier-time-limit-s must be >= 0"),
    BadInput("evaluate-zero-classifier-epochs", ("fastsim", "evaluate", "{generator}", "--classifier-epochs", "0"),
             "--classifier-epochs must be >= 1"),
    BadInput("evaluate-zero-classifier-repeats", ("fastsim", "evaluate", "{generator}", "--classifier-repeats", "0"),
             "--classifier-repeats must be >= 1"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case, tmp_path, capsys, resources):
    argv = tuple(arg.replace("{jets}", str(resources.jets)).replace("{tagger}", str(resources.tagger))
                 .replace("{generator}", str(resources.generator)).replace("{jetnet}", str(resources.jetnet))
                 for arg in case.argv)
    check_bad_input(BadInput(case.id, argv, case.message, case.setup), tmp_path, capsys, resources)


def test_the_tables_cover_at_least_forty_cases_over_every_command():
    from test_bad_inputs_data import CASES as DATA_CASES

    assert len(CASES) + len(DATA_CASES) >= 40
    commands = {case.argv[:2] for case in CASES + DATA_CASES}
    assert commands >= {("tagger", "train"), ("tagger", "evaluate"), ("tagger", "compare"), ("tagger", "export"),
                        ("fastsim", "train"), ("fastsim", "sample"), ("fastsim", "evaluate"), ("data", "generate"),
                        ("data", "info"), ("data", "plot"), ("data", "mnist")}
