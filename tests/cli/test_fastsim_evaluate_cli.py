"""``jetlab fastsim evaluate``: JetNet's metrics, the classifier test and the sizes used in
evaluation.json."""

import json

import numpy as np
import pytest

from jetlab.cli.main import main
from jetlab.io import write_jetnet_file
from jetlab.training.generator_run import TrainedGenerator


@pytest.mark.slow  # ~40 s on 2 busy cores: training, plots and COV/MMD
def test_evaluate_writes_every_metric_and_the_sizes_used(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 60
    points = np.stack([rng.normal(0, 0.1, (n, 10)), rng.normal(0, 0.1, (n, 10)),
                       np.full((n, 10), 0.1), np.ones((n, 10))], -1).astype(np.float32)
    data = tmp_path / "g.h5"
    write_jetnet_file(data, points, np.zeros((n, 4), np.float32), jet_class="g")
    run = tmp_path / "run"
    assert main(["fastsim", "train", "--model", "gan", "--data", str(data), "--jet-class", "g",
                 "--particles", "10", "--epochs", "1", "--batch-size", "8", "--latent-dim", "4",
                 "--plot-every", "0", "--plot-samples", "8", "--metrics-samples", "0",
                 "--hp", "generator.hidden=8", "--hp", "discriminator.hidden=8", "--threads", "1",
                 "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["fastsim", "evaluate", str(run), "--n", "100000", "--classifier-epochs", "2",
                 "--classifier-time-limit-s", "600", "--classifier-repeats", "2"]) == 0
    out = capsys.readouterr().out
    evaluation = json.loads((run / "evaluation.json").read_text())
    n_test = evaluation["n_real"]
    assert n_test < 100000 and f"--n 100000: the held-out set has only {n_test}" in out
    metrics = evaluation["metrics"]
    expected = {"w1m", "w1p", "w1p_eta", "w1p_phi", "w1p_pt", "w1efp", "w1efp_0", "w1efp_4", "w1nn", "fd6",
                "fpd", "kpd", "cov", "mmd", "classifier_auc"}
    assert expected <= set(metrics["generated"]) and expected <= set(metrics["truth"])
    assert all(set(v) == {"mean", "std"} for v in metrics["generated"].values())
    settings = metrics["settings"]
    assert settings["w1_eval_samples"] == n_test // 2 and settings["fpd"]["capped"]
    assert settings["kpd"]["batch_size"] == n_test // 2 and settings["classifier"]["model"] == "garnet"
    assert settings["classifier"]["epochs"] == 2  # the epoch cap stopped it, not the time limit
    # two classifiers: the AUC is their mean, its error the standard error of the mean
    aucs = settings["classifier"]["aucs"]
    assert settings["classifier"]["repeats"] == 2 and len(aucs) == 2
    assert metrics["generated"]["classifier_auc"]["mean"] == pytest.approx(np.mean(aucs))
    assert metrics["generated"]["classifier_auc"]["std"] == pytest.approx(np.std(aucs, ddof=1) / np.sqrt(2))
    assert evaluation["notes"][0].startswith("--n 100000") and len(evaluation["notes"]) >= 4
    assert "FPD (JetNet" in out and "classifier AUC" in out and "note: KPD on batches of" in out
    # the physical checks, and the particles of pT_rel <= 0 the network listed and generation dropped
    checks = metrics["constraints"]
    assert checks["truth"]["multiplicity"]["frac_full"] == 1.0 and checks["truth"]["sum_pt_rel"]["max"] <= 1.0 + 1e-5
    points, mask = TrainedGenerator.load(run).generate(n_test, seed=1, postprocess=False)
    dropped = int((mask & (points[..., 2] <= 0)).sum())
    assert checks["generated"]["dropped_nonpositive_pt"] == {
        "particles": dropped, "fraction": pytest.approx(dropped / mask.sum()), "of_listed": int(mask.sum())}
    assert checks["generated"]["nonpositive_pt"]["particles"] == 0 and "physical checks: generated | truth" in out
