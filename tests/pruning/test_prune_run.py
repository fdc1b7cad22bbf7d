"""``jetlab tagger prune`` on real (tiny) Pythia jets: the files, the counted sparsity, the
pruned model file against the pruned model in memory, exact resume, rewinding, JEDI-net,
and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from jetlab.cli.main import main
from jetlab.models import build_tagger
from jetlab.pruning import PruneConfig, initial_state, make_permanent, prune_by_magnitude, prune_tagger
from jetlab.pruning.run import prepare_iteration
from jetlab.training.checkpoint import load_checkpoint
from jetlab.training.tagger import TaggerTrainConfig, load_tagger, train_tagger

# one xdist worker runs this module: its fixtures train in memory (weights handed to a hook)
pytestmark = pytest.mark.xdist_group("prune_run")

#: the settings of the end-to-end run, as CLI flags and as PruneConfig fields
SETTINGS = {"iterations": 2, "target_sparsity": 0.6, "epochs_per_iteration": 2, "scope": "layer", "rewind": True,
            "l1": 1e-4, "threads": 1}


def flags(settings):
    out = []
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        out += [flag] if value is True else [flag, str(value)]
    return out


@pytest.fixture(scope="module")
def dnn_run(tiny_jets_dir, tmp_path_factory):
    """A trained DNN run, and the weights train_tagger handed its ``prepare_model`` hook."""
    seen = {}

    def capture(model):
        seen["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    run = tmp_path_factory.mktemp("prune") / "dnn"
    config = TaggerTrainConfig(model="dnn", data=str(tiny_jets_dir), epochs=2, batch_size=20, lr=3e-3, threads=1,
                               seed=4)
    train_tagger(config, run, prepare_model=capture)
    return run, seen


@pytest.fixture(scope="module")
def pruned(dnn_run):
    run, _ = dnn_run
    out = run.parent / "dnn-pruned"
    assert main(["tagger", "prune", str(run), "--out", str(out), *flags(SETTINGS)]) == 0
    return out


def one_line_error(capsys, code):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("jetlab: error: "), err
    return err[0]


def test_prune_cli_writes_the_curve_and_a_model_whose_zeros_are_the_reported_sparsity(pruned, dnn_run):
    for name in ("config.yaml", "prune_curve.json", "prune_curve.png", "model.pt", "metrics.json", "predictions.npz",
                 "iter-1/model.pt", "iter-2/metrics.json", "iter-2/checkpoint.pt"):
        assert (pruned / name).is_file(), name
    curve = json.loads((pruned / "prune_curve.json").read_text())
    unpruned = json.loads((dnn_run[0] / "metrics.json").read_text())
    assert curve["baseline"]["sparsity"] == 0 and curve["baseline"]["mean_auc"] == unpruned["mean_auc"]
    assert [p["iteration"] for p in curve["points"]] == [1, 2]
    assert [p["target_sparsity"] for p in curve["points"]] == pytest.approx([1 - 0.4 ** 0.5, 0.6])

    # count the zeros of the saved file independently: every Linear weight of the DNN
    state = torch.load(pruned / "model.pt", weights_only=True)["state_dict"]
    assert not any(k.endswith(("_orig", "_mask")) for k in state)
    weights = {k: v for k, v in state.items() if k.endswith("weight")}
    zeros, total = sum(int((w == 0).sum()) for w in weights.values()), sum(w.numel() for w in weights.values())
    metrics = json.loads((pruned / "metrics.json").read_text())
    assert metrics["sparsity"]["sparsity"] == curve["points"][-1]["sparsity"] == zeros / total
    assert abs(zeros / total - 0.6) <= len(weights) / total  # the target, up to rounding per layer
    for name, w in weights.items():  # layer scope: every matrix at the target
        assert curve["points"][-1]["layers"][name] == pytest.approx(0.6, abs=1 / w.numel())
    # iteration 2 prunes iteration 1's weights by magnitude, so what was pruned stays pruned
    first, info = load_tagger(pruned / "iter-1")
    prune_by_magnitude(first, 0.6, "layer")
    for name, w in weights.items():
        assert torch.equal(first.get_buffer(name + "_mask") == 0, w == 0), name
        assert torch.all(w[info["state_dict"][name] == 0] == 0), name
    assert metrics["accuracy"] == curve["points"][-1]["accuracy"]
    assert metrics["pruning"]["unpruned"]["mean_auc"] == unpruned["mean_auc"]
    assert yaml.safe_load((pruned / "config.yaml").read_text())["target_sparsity"] == 0.6
    retraining = yaml.safe_load((pruned / "iter-1" / "config.yaml").read_text())
    assert (retraining["l1"], retraining["epochs"], retraining["seed"]) == (1e-4, 2, 4)
    assert metrics["history"][0]["train_l1_penalty"] > 0
    assert main(["tagger", "compare", str(dnn_run[0]), str(pruned)]) == 0  # a normal run directory


def test_load_tagger_gives_the_pruned_model_in_memory(pruned):
    """The last iteration's best weights with their masks (the engine's checkpoint), in
    memory, and load_tagger(PRUNED) predict the same, bit for bit."""
    plain, info = load_tagger(pruned)
    masked = build_tagger("dnn", **info["hparams"])
    prune_by_magnitude(masked, 0.0, "layer")
    masked.load_state_dict(load_checkpoint(pruned / "iter-2" / "checkpoint.pt")["best_modules"]["model"])
    x = torch.randn(64, 16)
    torch.testing.assert_close(plain(x), masked.eval()(x), rtol=0, atol=0)
    iteration, _ = load_tagger(pruned / "iter-2")  # every iteration directory loads too
    torch.testing.assert_close(iteration(x), plain(x), rtol=0, atol=0)
    assert torch.equal(make_permanent(masked).mlp.layers[0].weight, plain.mlp.layers[0].weight)


def test_killed_prune_run_resumes_mid_iteration_bit_for_bit(pruned, dnn_run, tmp_path, capsys, caplog):
    out = tmp_path / "killed"
    assert main(["tagger", "prune", str(dnn_run[0]), "--out", str(out), "--stop-after", "2:1", *flags(SETTINGS)]) == 0
    assert (out / "iter-2" / "checkpoint.pt").is_file() and not (out / "iter-2" / "metrics.json").exists()
    assert "continue with: jetlab tagger prune" in capsys.readouterr().out
    assert main(["tagger", "prune", str(dnn_run[0]), "--out", str(out), "--resume"]) == 0
    assert f"resuming {out / 'iter-2' / 'checkpoint.pt'} after epoch 1" in caplog.text
    assert "dnn: 60.0% of the weights are zero after 2 iterations" in capsys.readouterr().out
    whole = torch.load(pruned / "model.pt", weights_only=True)["state_dict"]
    resumed = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    for key, value in whole.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0, msg=key)
    a, b = (json.loads((d / "prune_curve.json").read_text())["points"] for d in (pruned, out))
    assert [p["mean_auc"] for p in a] == [p["mean_auc"] for p in b]


def test_rewind_restarts_the_survivors_from_the_runs_initial_weights(dnn_run):
    run, seen = dnn_run
    # train_tagger seeds, then builds: the same two steps rebuild the initial weights exactly
    _, info = load_tagger(run)
    start = initial_state(info)
    assert start.keys() == seen["state"].keys()
    for key, value in seen["state"].items():
        assert torch.equal(start[key], value), key

    model = build_tagger("dnn", **info["hparams"])
    prepare_iteration(model, start_state=info["state_dict"], sparsity=0.5, scope="global", rewind_state=start)
    for name, parameter in model.named_parameters():
        initial = start[name.removesuffix("_orig")]
        if name.endswith("_orig"):
            mask = model.get_buffer(name.replace("_orig", "_mask"))
            trained = info["state_dict"][name.removesuffix("_orig")]
            assert torch.equal(parameter[mask == 1], initial[mask == 1])
            assert trained[mask == 0].abs().max() <= trained[mask == 1].abs().min()  # masks from trained weights
        else:
            assert torch.equal(parameter, initial), name


@pytest.mark.slow
@pytest.mark.parametrize("model, hparams", [
    ("jedinet", {"hidden": 10, "edge_dim": 4, "object_dim": 3}),  # the fast path reads the masks itself
    ("gru", {"hidden": 12}), ("garnet", {"n_layers": 1}), ("cnn", {"channels": [4, 4, 4]}),
])
def test_every_tagger_kind_prunes_end_to_end(tiny_jets_dir, tmp_path, model, hparams):
    run = tmp_path / model
    train_tagger(TaggerTrainConfig(model=model, data=str(tiny_jets_dir), epochs=1, batch_size=35, threads=1,
                                   hparams=hparams), run)
    metrics = prune_tagger(PruneConfig(source=str(run), iterations=1, target_sparsity=0.5, epochs_per_iteration=1,
                                       threads=1), tmp_path / "pruned")
    counted = metrics["sparsity"]
    assert counted["zeros"] == int(0.5 * counted["total"] + 0.5)
    loaded, _ = load_tagger(tmp_path / "pruned")
    assert counted["layers"] == {name: float((loaded.get_parameter(name) == 0).double().mean())
                                 for name in counted["layers"]}
    if model == "jedinet":
        assert {name.split(".")[0] for name in counted["layers"]} == {"f_R", "f_O", "phi_C"}


@pytest.mark.parametrize("argv, problem", [
    (["--iterations", "0"], "iterations must be an integer >= 1"),
    (["--target-sparsity", "1"], "target-sparsity must be in (0, 1)"),
    (["--target-sparsity", "0"], "target-sparsity must be in (0, 1)"),
    (["--l1", "-1"], "l1 must be >= 0"),
    (["--stop-after", "x"], "--stop-after expects K or K:E"),
])
def test_impossible_settings_are_one_line_errors(dnn_run, tmp_path, capsys, argv, problem):
    code = main(["tagger", "prune", str(dnn_run[0]), "--out", str(tmp_path / "p"), *argv])
    assert problem in one_line_error(capsys, code)
    assert not (tmp_path / "p").exists()


def test_bad_directories_are_one_line_errors(pruned, dnn_run, tmp_path, capsys):
    run = dnn_run[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ([str(empty), "--out", str(tmp_path / "p")], "no trained model here"),
        ([str(tmp_path / "missing"), "--out", str(tmp_path / "p")], "no such run directory"),
        ([str(run), "--out", str(pruned)], "already holds a finished prune run"),
        ([str(run), "--out", str(run)], "is the run to prune"),
        ([str(run), "--out", str(tmp_path / "p"), "--resume"], "holds no prune run to resume"),
        ([str(run), "--out", str(pruned), "--resume", "--target-sparsity", "0.9"], "drop --target-sparsity"),
        ([str(empty), "--out", str(pruned), "--resume"], f"prunes {run}, not {empty}"),
    ]
    for argv, problem in cases:
        assert problem in one_line_error(capsys, main(["tagger", "prune", *argv])), argv
    (run / "metrics.json").rename(run / "metrics.json.away")
    try:
        message = one_line_error(capsys, main(["tagger", "prune", str(run), "--out", str(tmp_path / "p")]))
        assert "holds an unfinished run (metrics.json missing)" in message
        assert f"jetlab tagger train --out {run} --resume" in message
    finally:
        (run / "metrics.json.away").rename(run / "metrics.json")
