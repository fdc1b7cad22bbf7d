"""Tagger training glue on real (tiny) Pythia jets: resume, evaluate, compare."""

import json

import numpy as np
import pytest
import torch

from jetlab.errors import InputError
from jetlab.io import open_jets
from jetlab.training.run_dir import mark_finished
from jetlab.training.tagger import TaggerTrainConfig, load_tagger, save_model_file, train_tagger
from jetlab.training.tagger_eval import compare_runs, evaluate_tagger
from jetlab.utils.config import load_config


def config_for(data, **changes):
    return TaggerTrainConfig(**{"model": "dnn", "data": str(data), "epochs": 3, "batch_size": 20,
                                "lr": 3e-3, "threads": 1, **changes})


def test_resumed_run_ends_with_the_weights_and_metrics_of_an_uninterrupted_one(tiny_jets_dir, tmp_path):
    whole = train_tagger(config_for(tiny_jets_dir), tmp_path / "whole")
    assert train_tagger(config_for(tiny_jets_dir), tmp_path / "killed", stop_after_epoch=1) is None
    assert not (tmp_path / "killed" / "metrics.json").exists()
    resumed = train_tagger(config_for(tiny_jets_dir), tmp_path / "killed", resume=True)

    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "model.pt", weights_only=True)
    assert a["epoch"] == b["epoch"]
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=0)
    assert resumed["accuracy"] == whole["accuracy"]
    assert resumed["per_class"] == whole["per_class"]
    assert [h["val_loss"] for h in resumed["history"]] == [h["val_loss"] for h in whole["history"]]
    assert resumed["epochs_run"] == 3
    assert load_config(TaggerTrainConfig, tmp_path / "killed" / "config.yaml") == config_for(tiny_jets_dir)


def test_evaluate_uses_training_statistics_and_reproduces_test_predictions(tiny_jets_dir, tmp_path):
    run = tmp_path / "run"
    config = config_for(tiny_jets_dir, model="jedinet-sumo", epochs=1)
    metrics = train_tagger(config, run)
    assert metrics["dataset_sizes"] == {"train": 140, "val": 30, "test": 30}

    evaluated = evaluate_tagger(run, tiny_jets_dir, name="same")
    assert (run / "eval-same" / "metrics.json").is_file() and (run / "eval-same" / "roc.png").is_file()
    assert evaluated["n_jets"] == 200
    # the evaluation of all 200 jets, restricted to the test jets, is what training reported
    # (up to float32 rounding: the jets are batched differently)
    _, _, test = open_jets(tiny_jets_dir).split(tuple(config.fractions), seed=config.split_seed)
    with np.load(run / "eval-same" / "predictions.npz") as all_jets, np.load(run / "predictions.npz") as test_only:
        np.testing.assert_allclose(all_jets["probs"][test.index], test_only["probs"], rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(all_jets["labels"][test.index], test_only["labels"])

    model, info = load_tagger(run)
    assert info["model_name"] == "jedinet-sumo" and info["n_particles"] == 30
    assert set(info["stats"]) == {"particles_mean", "particles_std"}
    assert sum(p.numel() for p in model.parameters()) == metrics["n_parameters"]


def test_compare_prints_one_row_per_model_and_a_roc_plot_per_class(tiny_jets_dir, tmp_path):
    for model in ("dnn", "gru"):
        train_tagger(config_for(tiny_jets_dir, model=model, epochs=1), tmp_path / model)
    table = compare_runs([tmp_path / "dnn", tmp_path / "gru"], out=tmp_path / "cmp")
    dnn = json.loads((tmp_path / "dnn" / "metrics.json").read_text())
    auc_row = next(line for line in table.splitlines() if line.startswith("| dnn"))
    assert auc_row.endswith(" | ".join(f"{dnn['per_class'][c]['auc']:.3f}" for c in "gqwzt") + " |")
    assert sum(line.startswith("| gru") for line in table.splitlines()) == 3  # AUC, TPR@10%, TPR@1%
    assert sorted(p.name for p in (tmp_path / "cmp").glob("roc_*.png")) == [f"roc_{c}.png" for c in "gqtwz"]


@pytest.mark.parametrize("model", ["jedinet", "garnet", "cnn"])
def test_every_input_kind_trains_one_epoch(tiny_jets_dir, tmp_path, model):
    metrics = train_tagger(config_for(tiny_jets_dir, model=model, epochs=1, batch_size=35), tmp_path / model)
    assert metrics["epochs_run"] == 1
    assert np.isfinite(metrics["history"][0]["train_loss"])
    # the reported accuracy and confusion matrix are those of the saved test predictions
    with np.load(tmp_path / model / "predictions.npz") as saved:
        labels, predicted = saved["labels"], saved["probs"].argmax(1)
    assert metrics["accuracy"] == pytest.approx(float(np.mean(predicted == labels)))
    confusion = np.zeros((5, 5), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    assert metrics["confusion_matrix"] == confusion.tolist()


def test_reading_batches_from_disk_trains_exactly_like_the_in_memory_path(tiny_jets_dir, tmp_path):
    in_memory = train_tagger(config_for(tiny_jets_dir, model="gru", epochs=2), tmp_path / "memory")
    from_disk = train_tagger(config_for(tiny_jets_dir, model="gru", epochs=2, max_memory_gb=0.0), tmp_path / "disk")
    a = torch.load(tmp_path / "memory" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "disk" / "model.pt", weights_only=True)["state_dict"]
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=0, atol=0)
    assert from_disk["per_class"] == in_memory["per_class"]


def test_model_saved_with_the_triton_kernel_loads_on_cpu(tmp_path):
    """``kernel`` says how JEDI-net runs, not what it is: a GPU-trained model evaluates on CPU."""
    from jetlab.models import JEDINetSumO

    model = JEDINetSumO(6, 4, hidden=8, edge_dim=3, object_dim=4, kernel="triton")
    save_model_file(tmp_path / "model.pt", model, config=TaggerTrainConfig(), class_names=list("gqwzt"),
                    particle_features=list("abcd"), stats={}, epoch=1, val_metrics={"val_loss": 1.0, "val_accuracy": 0.2})
    mark_finished(tmp_path, ["model.pt"])  # a run directory holding just this model, complete
    loaded, info = load_tagger(tmp_path)
    assert info["hparams"]["kernel"] == "triton" and loaded.kernel == "auto"
    model.kernel = "torch"
    x = torch.randn(2, 6, 4)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def _rewritten(source_dir, out_dir, particles=None, zero_feature=None):
    """A copy of the jets of ``source_dir`` with fewer particles or one particle feature zeroed."""
    import h5py

    from jetlab.io import write_hls4ml_file
    from jetlab.io.layout import PARTICLE_FEATURES

    out_dir.mkdir()
    for path in sorted(source_dir.glob("*.h5")):
        with h5py.File(path) as fh:
            constituents, jets = fh["jetConstituentList"][()], fh["jets"][()]
        if particles:
            constituents = constituents[:, :particles]
        if zero_feature:
            constituents[..., PARTICLE_FEATURES.index(zero_feature)] = 0.0
        write_hls4ml_file(out_dir / path.name, constituents, jets)
    return out_dir


@pytest.mark.slow
def test_evaluate_warns_about_a_feature_zeroed_in_the_files_and_refuses_other_sizes(tiny_jets_dir, tmp_path, caplog):
    run = tmp_path / "run"
    train_tagger(config_for(tiny_jets_dir, model="jedinet-sumo", epochs=1), run)
    caplog.clear()
    evaluate_tagger(run, tiny_jets_dir, name="same")
    assert "constant" not in caplog.text
    zeroed = _rewritten(tiny_jets_dir, tmp_path / "zeroed", zero_feature="costhetarel")
    evaluate_tagger(run, zeroed)
    assert "costhetarel are constant here but varied in the training jets" in caplog.text
    # training on such files warns too
    caplog.clear()
    train_tagger(config_for(zeroed, model="jedinet-sumo", epochs=1), tmp_path / "on-zeroed")
    assert "costhetarel are constant over the training jets" in caplog.text
    # a 20-particle set: evaluate names the particle count the model needs (it has no --particles)
    fewer = _rewritten(tiny_jets_dir, tmp_path / "fewer", particles=20)
    with pytest.raises(InputError, match="has 20 particles per jet, but the model .* was trained on 30: evaluate it "
                                         "on 30-particle files"):
        evaluate_tagger(run, fewer)
