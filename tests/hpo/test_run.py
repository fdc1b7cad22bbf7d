"""``jetlab hpo run`` and ``report`` in one process on SQLite: trials are real runs scored on the
validation split, a study continues, the pruner stops a run through the engine, the Pareto
front of two objectives, the retrain command reproduces a trial."""

import json
import shlex
import sys

import numpy as np
import pytest
import yaml

from jetlab.cli.main import main

optuna = pytest.importorskip("optuna", reason="pip install 'jetlab[hpo]'")


def _states(trials):
    return {t.number: t.state.name for t in trials}


@pytest.mark.slow
def test_trials_are_real_runs_a_study_continues_and_the_report_retrains_the_best(tmp_path, trial_flags, capsys,
                                                                                   read_study):
    study_dir = tmp_path / "study"
    storage = f"sqlite:///{study_dir}/study.db"
    run = ["hpo", "run", "--study", "s", "--dir", str(study_dir), "--sampler", "random", "--sampler-seed", "1"]
    assert main(run + trial_flags + ["--trials", "2"]) == 0
    trials, _ = read_study(storage, "s")
    first = {t.number: t.values for t in trials}
    assert _states(trials) == {0: "COMPLETE", 1: "COMPLETE"}
    for trial in trials:
        metrics = json.loads((study_dir / f"trial-{trial.number}" / "metrics.json").read_text())
        assert trial.value == metrics["validation"]["accuracy"]  # tuned on validation jets...
        assert trial.user_attrs["test_accuracy"] == metrics["accuracy"]  # ...test numbers only kept beside
        assert metrics["hparams"]["activation"] == trial.params["activation"]
        assert metrics["epochs_run"] == 2 and trial.user_attrs["run_dir"] == str(study_dir / f"trial-{trial.number}")

    # an existing study continues with its stored settings: no model or training flags needed
    # (only how this worker runs, e.g. its threads, may differ)
    assert main(["hpo", "run", "--study", "s", "--storage", storage, "--trials", "3", "--heartbeat", "0",
                 "--threads", "2"]) == 0
    trials, _ = read_study(storage, "s")
    assert _states(trials) == {0: "COMPLETE", 1: "COMPLETE", 2: "COMPLETE"}
    assert {t.number: t.values for t in trials if t.number < 2} == first
    assert json.loads((study_dir / "trial-2" / "metrics.json").read_text())["epochs_run"] == 2  # the stored --epochs
    assert yaml.safe_load((study_dir / "trial-2" / "config.yaml").read_text())["threads"] == 2

    # ... and refuses flags that would change what its trials are
    capsys.readouterr()
    assert main(["hpo", "run", "--study", "s", "--storage", storage, "--trials", "4", "--epochs", "5"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "created with epochs 2, not 5" in error

    out = tmp_path / "report"
    assert main(["hpo", "report", "--study", "s", "--storage", storage, "--out", str(out), "--top", "2"]) == 0
    report = json.loads((out / "best_trials.json").read_text())
    values = sorted((t.value for t in trials), reverse=True)
    assert [row["values"]["accuracy"] for row in report["best"]] == values[:2]
    assert {"history.png", "intermediate.png"} <= {p.name for p in out.iterdir()}
    markdown = (out / "best_trials.md").read_text()
    best = report["best"][0]
    assert best["command"] in markdown

    # the retrain command rebuilds the best trial: same seed, same settings, same validation accuracy
    words = shlex.split(best["command"])
    words[words.index("--out") + 1] = str(tmp_path / "retrained")
    assert main(words[1:]) == 0
    retrained = json.loads((tmp_path / "retrained" / "metrics.json").read_text())
    assert retrained["validation"]["accuracy"] == best["values"]["accuracy"]


def test_the_pruner_stops_the_run_through_the_engine(tmp_path, tiny_jets_dir):
    from jetlab.hpo.objective import TrialRunner
    from jetlab.hpo.space import SearchSpace
    from jetlab.hpo.study import StudySpec, close_storage, open_storage, open_study, run_worker
    from jetlab.training.tagger import TaggerTrainConfig

    space = SearchSpace.from_dict({"settings": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}})
    config = TaggerTrainConfig(model="dnn", data=str(tiny_jets_dir), epochs=4, patience=0, threads=1)
    spec = StudySpec("dnn", ("accuracy",), space, config, sampler="random", pruner="median", dir=str(tmp_path))
    storage = open_storage(f"sqlite:///{tmp_path}/study.db", heartbeat_s=0)
    study, _ = open_study(storage, "p", spec)
    study.pruner = optuna.pruners.ThresholdPruner(lower=2.0)  # an accuracy is never >= 2: prune at the first report
    assert run_worker(study, TrialRunner(spec, tmp_path), 1, poll_s=None) == 1
    (trial,) = study.get_trials()
    close_storage(storage)
    assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [1]
    metrics = json.loads((tmp_path / "trial-0" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1  # the engine stopped after epoch 1 of 4
    assert trial.intermediate_values[1] == metrics["history"][0]["val_accuracy"]


def _pareto_front(values, directions):
    """Brute force: the trials no other trial dominates."""
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    v = np.asarray(values) * signs
    return {i for i in range(len(v)) if not any((v[j] <= v[i]).all() and (v[j] < v[i]).any() for j in range(len(v)))}


@pytest.mark.slow
def test_accuracy_against_size_gives_the_pareto_front(tmp_path, trial_flags, read_study):
    storage = f"sqlite:///{tmp_path}/study.db"
    assert main(["hpo", "run", "--study", "m", "--dir", str(tmp_path), "--objective", "accuracy,params",
                 "--sampler", "nsga2", "--population", "4", "--sampler-seed", "0", "--trials", "4"] + trial_flags) == 0
    trials, directions = read_study(storage, "m")
    assert directions == ["MAXIMIZE", "MINIMIZE"]
    for trial in trials:
        assert trial.values[1] == trial.user_attrs["n_parameters"] and not trial.intermediate_values
    out = tmp_path / "report"
    assert main(["hpo", "report", "--study", "m", "--storage", storage, "--out", str(out)]) == 0
    report = json.loads((out / "best_trials.json").read_text())
    front = _pareto_front([t.values for t in trials], ["maximize", "minimize"])
    assert {row["trial"] for row in report["best"]} == {trials[i].number for i in front}
    assert (out / "pareto.png").is_file()


def test_latency_is_the_measured_forward_time_of_the_trained_model(tmp_path, trial_flags, read_study):
    assert main(["hpo", "run", "--study", "l", "--dir", str(tmp_path), "--objective", "latency", "--trials", "1",
                 "--sampler", "random"] + trial_flags) == 0
    (trial,), _ = read_study(f"sqlite:///{tmp_path}/study.db", "l")
    assert trial.value == trial.user_attrs["latency_ms"] > 0 and not trial.intermediate_values


@pytest.mark.parametrize("flags, message", [
    (["--objective", "w1m"], "w1m: not an objective of taggers"),
    (["--objective", "accuracy,params", "--sampler", "cmaes"], "cmaes optimises one objective"),
    (["--objective", "accuracy,params", "--pruner", "median"], "pruning needs a single objective"),
    (["--lr-g", "0.1"], "--lr-g is a generator setting; a tagger study does not use it"),
    (["--ranks-per-trial", "2"], "needs mpiexec"),
    (["--space", "missing.yaml"], "missing.yaml: no such search-space file"),
    (["--sampler", "nsga2", "--population", "1"], "--population must be at least 2"),
])
def test_bad_requests_are_one_line_errors(tmp_path, trial_flags, capsys, flags, message):
    assert main(["hpo", "run", "--study", "e", "--dir", str(tmp_path), "--trials", "1"] + trial_flags + flags) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert not (tmp_path / "study.db").exists()  # a refused new study leaves no database behind


def test_a_report_of_no_study_and_a_missing_optuna_are_one_line_errors(tmp_path, capsys, monkeypatch):
    assert main(["hpo", "report", "--study", "none", "--dir", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "no such study database" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if the hpo extra were not installed
    assert main(["hpo", "run", "--model", "dnn", "--dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "pip install 'jetlab[hpo]'" in error


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # FPD of a handful of jets
def test_a_generator_study_minimises_w1m_against_validation_jets(tmp_path, tiny_jets_dir, read_study):
    assert main(["hpo", "run", "--model", "gan", "--study", "g", "--dir", str(tmp_path), "--data", str(tiny_jets_dir),
                 "--epochs", "2", "--batch-size", "8", "--threads", "1", "--plot-every", "0", "--plot-samples", "10",
                 "--heartbeat", "0", "--trials", "1", "--objective", "w1m,params"]) == 0
    (trial,), _ = read_study(f"sqlite:///{tmp_path}/study.db", "g")
    history = json.loads((tmp_path / "trial-0" / "history.json").read_text())
    best = next(r for r in history["epochs"] if r["epoch"] == history["best_epoch"])
    assert trial.values[0] == best["val_w1m"] == min(r["val_w1m"] for r in history["epochs"])
    from jetlab.training.generator_run import TrainedGenerator

    generator = TrainedGenerator.load(tmp_path / "trial-0").task.modules["generator"]
    assert trial.values[1] == sum(p.numel() for p in generator.parameters())  # the deployed network only
