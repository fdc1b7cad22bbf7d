"""Models from a user's file (``--model FILE.py:Class``): a tagger trains, evaluates, exports,
resumes and runs an HPO study from the CLI; a generator trains and samples; a run refuses to
load its model unless the file is named again (``--model-code``) with the recorded SHA-256;
bad specs are one-line errors naming the file."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from jetlab.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
TAGGER = EXAMPLES / "my_tagger.py"
FLOW = EXAMPLES / "my_flow.py"


def one_line_error(capsys, code) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("jetlab: error: "), (code, err)
    return err[0]


def train(spec, data, out, *flags):
    return main(["tagger", "train", "--model", str(spec), "--data", str(data), "--epochs", "1", "--threads", "1",
                 "--out", str(out), *map(str, flags)])


@pytest.fixture(scope="module")
def user_run(tiny_jets_dir, tmp_path_factory):
    """A finished one-epoch run of docs/examples/my_tagger.py (hidden 8), trained from a copy of
    the file (so a test may change it)."""
    where = tmp_path_factory.mktemp("user-tagger")
    code = where / "my_tagger.py"
    shutil.copy(TAGGER, code)
    assert train(f"{code}:MyTagger", tiny_jets_dir, where / "run", "--hp", "hidden=8") == 0
    return where / "run", code


def test_a_user_tagger_trains_records_its_file_and_evaluates_only_when_named_again(user_run, tiny_jets_dir, capsys):
    run, code = user_run
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"] == f"{code}:MyTagger"
    assert config["model_code"]["sha256"] == hashlib.sha256(code.read_bytes()).hexdigest()
    assert config["model_code"]["class"] == "MyTagger" and config["model_code"]["task"] == "classify"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["hparams"] == {"n_particles": 30, "n_features": 16, "n_classes": 5, "hidden": 8, "dropout": 0.0}
    # phi: 16*8+8 + 8*8+8, rho: 8*8+8 + 8*5+5
    assert metrics["n_parameters"] == 136 + 72 + 72 + 45

    capsys.readouterr()
    message = one_line_error(capsys, main(["tagger", "evaluate", str(run), "--data", str(tiny_jets_dir)]))
    assert f"this run's model is defined in {code}:MyTagger; pass --model-code {code}" in message

    assert main(["tagger", "evaluate", str(run), "--data", str(tiny_jets_dir), "--name", "all",
                 "--model-code", str(code)]) == 0
    evaluated = json.loads((run / "eval-all" / "metrics.json").read_text())
    assert evaluated["n_jets"] == 200 and evaluated["model"] == f"{code}:MyTagger"
    # compare reads metrics and predictions only: no code runs, nothing to name
    assert main(["tagger", "compare", str(run)]) == 0
    assert f"| {code}:MyTagger (run) |" in capsys.readouterr().out


@pytest.mark.slow
def test_the_exported_user_tagger_scores_the_test_split_as_training_did(user_run, tmp_path):
    pytest.importorskip("onnxruntime", reason="pip install 'jetlab[export]'")
    run, code = user_run
    assert main(["tagger", "export", str(run), "--format", "onnx", "--out", str(tmp_path / "onnx"),
                 "--model-code", str(code)]) == 0
    report = json.loads((tmp_path / "onnx" / "report.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert (tmp_path / "onnx" / "MyTagger.onnx").is_file()
    assert report["max_abs_diff"] < 1e-5
    # the weights loaded from model.pt give the test accuracy training measured with its own
    assert report["metrics"]["torch"]["accuracy"] == pytest.approx(metrics["accuracy"])


def test_a_changed_file_and_a_missing_one_are_refused_on_resume_and_evaluate(user_run, tiny_jets_dir, tmp_path,
                                                                            capsys):
    run, code = user_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    capsys.readouterr()
    message = one_line_error(capsys, main(["tagger", "train", "--out", str(copy), "--resume", "--epochs", "2"]))
    assert "this run's model is defined in" in message and "--model-code" in message

    changed = tmp_path / "my_tagger.py"
    changed.write_text(code.read_text().replace("hidden: int = 32", "hidden: int = 33"))
    for argv in (["tagger", "evaluate", str(copy), "--data", str(tiny_jets_dir)],
                 ["tagger", "train", "--out", str(copy), "--resume", "--epochs", "2"]):
        message = one_line_error(capsys, main([*argv, "--model-code", str(changed)]))
        assert "SHA-256" in message and str(changed) in message

    # the same file named again continues the run
    assert main(["tagger", "train", "--out", str(copy), "--resume", "--epochs", "2", "--model-code", str(code)]) == 0
    assert json.loads((copy / "metrics.json").read_text())["epochs_run"] == 2


@pytest.mark.slow
def test_a_user_tagger_runs_a_two_trial_study_that_continues_only_with_its_file(tiny_jets_dir, tmp_path, capsys):
    pytest.importorskip("optuna", reason="pip install 'jetlab[hpo]'")
    from jetlab.hpo.study import close_storage, open_storage, quiet_optuna

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"hparams": {"hidden": {"choices": [4, 8]}}}))
    study = ["hpo", "run", "--study", "mine", "--dir", str(tmp_path / "study"), "--heartbeat", "0"]
    assert main([*study, "--model", f"{TAGGER}:MyTagger", "--space", str(space), "--trials", "2", "--data",
                 str(tiny_jets_dir), "--epochs", "1", "--threads", "1", "--sampler", "random"]) == 0
    storage = open_storage(f"sqlite:///{tmp_path}/study/study.db", heartbeat_s=0)
    try:
        with quiet_optuna() as optuna:
            trials = optuna.load_study(study_name="mine", storage=storage).get_trials()
    finally:
        close_storage(storage)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for trial in trials:
        metrics = json.loads((Path(trial.user_attrs["run_dir"]) / "metrics.json").read_text())
        assert metrics["hparams"]["hidden"] == trial.params["hidden"]
        assert trial.value == metrics["validation"]["accuracy"]

    capsys.readouterr()
    message = one_line_error(capsys, main([*study, "--trials", "3"]))
    assert "study mine: this run's model is defined in" in message and "--model-code" in message


def test_a_tagger_from_an_importable_module(tiny_jets_dir, tmp_path, monkeypatch):
    package = tmp_path / "site" / "physicsnets"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    shutil.copy(TAGGER, package / "deepsets.py")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert train("physicsnets.deepsets:MyTagger", tiny_jets_dir, tmp_path / "run") == 0
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["model_code"]["sha256"] == hashlib.sha256(TAGGER.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_user_generator_trains_and_samples_only_with_its_file_named(gluon_jetnet_file, tmp_path, capsys):
    from jetlab.io import open_jets

    out = tmp_path / "flow"
    assert main(["fastsim", "train", "--model", f"{FLOW}:MyVelocity", "--data", str(gluon_jetnet_file),
                 "--jet-class", "g", "--epochs", "1", "--batch-size", "8", "--plot-every", "0", "--plot-samples", "8",
                 "--metrics-samples", "0", "--hp", "flow.hidden=8", "--threads", "1", "--out", str(out)]) == 0
    history = json.loads((out / "history.json").read_text())
    assert history["config"]["model_code"]["class"] == "MyVelocity" and history["epochs"][0]["val_loss"] > 0
    capsys.readouterr()
    message = one_line_error(capsys, main(["fastsim", "sample", str(out), "--n", "6", "--out", str(tmp_path / "s.h5")]))
    assert f"this run's model is defined in {FLOW}:MyVelocity" in message
    assert main(["fastsim", "sample", str(out), "--n", "6", "--out", str(tmp_path / "s.h5"),
                 "--model-code", str(FLOW)]) == 0
    jets = open_jets(tmp_path / "s.h5")
    assert (jets.n_jets, jets.n_particles) == (6, 30)


BAD = {
    "missing-class": ("import torch\n", "defines no Net"),
    "not-a-module": ("class Net:\n    def __init__(self, **kw):\n        pass\n", "Net is not a torch.nn.Module subclass"),
    "wrong-constructor": ("from torch import nn\nclass Net(nn.Module):\n    def __init__(self, width):\n"
                          "        super().__init__()\n", "must take keyword argument(s) n_particles, n_features, "
                                                           "n_classes"),
    "no-default": ("from torch import nn\nclass Net(nn.Module):\n    def __init__(self, *, n_particles, n_features, "
                   "n_classes, width):\n        super().__init__()\n", "width need a default"),
    "raises": ("raise RuntimeError('boom')\n", "running it failed: RuntimeError: boom"),
}


@pytest.mark.parametrize("case", [*BAD, "missing-file"])
def test_a_bad_model_spec_is_one_line_naming_the_file(case, tiny_jets_dir, tmp_path, capsys):
    code = tmp_path / "net.py"
    if case != "missing-file":
        code.write_text(BAD[case][0])
    message = one_line_error(capsys, train(f"{code}:Net", tiny_jets_dir, tmp_path / "run"))
    assert str(code) in message
    assert (BAD[case][1] if case in BAD else "no such file") in message
    assert not (tmp_path / "run" / "model.pt").exists()


def test_one_registry_holds_taggers_and_generators_with_their_task_and_features():
    from jetlab.models import TAGGERS, build_tagger
    from jetlab.models.registry import MODELS, resolve_model
    from jetlab.training.generator import GENERATORS

    assert {n for n, e in MODELS.items() if e.task == "classify"} == set(TAGGERS)
    assert {n: e.family for n, e in MODELS.items() if e.task == "generate"} == {g: g for g in GENERATORS}
    assert "export-hls4ml" in MODELS["dnn"].features and "export-hls4ml" not in MODELS["jedinet"].features
    built = resolve_model("dnn", task="classify").build(n_particles=30, n_features=16, n_classes=5)
    assert type(built) is type(build_tagger("dnn", n_particles=30, n_features=16))
    with pytest.raises(Exception, match="vae is a generator: train it with `jetlab fastsim train`"):
        resolve_model("vae", task="classify")
