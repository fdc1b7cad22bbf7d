"""ParticleNet and ParT from the command line: train, the model file round trip, evaluate,
compare, export (ONNX checked, hls4ml refused with a reason)."""

import json

import numpy as np
import pytest
from test_tagger_cli import one_line_error

from jetlab.cli.main import main
from jetlab.export.inputs import load_run_test_set, torch_probabilities

# one xdist worker runs this module: its fixture trains every graph tagger once
pytestmark = pytest.mark.xdist_group("graph_taggers_cli")

TINY = {"particlenet-lite": ("--hp", "k=3", "--hp", "conv_widths=[[8, 8], [8, 8]]", "--hp", "fc_dim=8"),
        "part-small": ("--hp", "embed_dims=[8, 8]", "--hp", "pair_embed_dims=[4]", "--hp", "n_heads=2",
                       "--hp", "n_layers=1", "--hp", "n_cls_layers=1", "--hp", "ffn_ratio=1")}


@pytest.fixture(scope="module")
def runs(tiny_jets_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("graph-runs")
    for model, flags in TINY.items():
        assert main(["tagger", "train", "--model", model, "--data", str(tiny_jets_dir), "--epochs", "1",
                     "--threads", "1", "--out", str(root / model), *flags]) == 0
    return {model: root / model for model in TINY}


@pytest.mark.parametrize("model", list(TINY))
def test_model_file_round_trip_reproduces_the_test_predictions(runs, model):
    run = runs[model]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == model and metrics["hparams"]["n_features"] == 7
    test = load_run_test_set(run)  # rebuilt from model.pt alone: features, raw inputs, statistics
    assert test.input_keys == (("particles", "points", "mask") if model.startswith("particlenet")
                               else ("particles", "momenta", "mask"))
    assert test.info["particle_features"] == ["etarel", "phirel", "log_pt", "log_e", "log_ptrel", "log_erel", "deltaR"]
    real = test.inputs["mask"]
    assert np.isfinite(test.inputs["particles"].numpy()).all() and (test.inputs["particles"][~real] == 0).all()
    with np.load(run / "predictions.npz") as saved:
        np.testing.assert_array_equal(saved["labels"], test.labels)
        np.testing.assert_allclose(torch_probabilities(test.model, test), saved["probs"], atol=1e-6)


def test_evaluate_and_compare(runs, tiny_jets_dir, tmp_path, capsys):
    assert main(["tagger", "evaluate", str(runs["part-small"]), "--data", str(tiny_jets_dir), "--eval-name", "same"]) == 0
    assert "part-small on" in capsys.readouterr().out
    assert json.loads((runs["part-small"] / "eval-same" / "metrics.json").read_text())["n_jets"] == 200
    assert main(["tagger", "compare", *map(str, runs.values()), "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "particlenet-lite" in table and "part-small" in table


@pytest.mark.parametrize("model, reason", [("particlenet-lite", "k-nearest-neighbour graph"),
                                           ("part-small", "multi-head attention with a pair-feature bias")])
def test_hls4ml_refuses_with_the_reason(runs, tmp_path, capsys, model, reason):
    message = one_line_error(capsys, main(["tagger", "export", str(runs[model]), "--format", "hls4ml",
                                           "--out", str(tmp_path)]))
    assert f"{model} cannot be exported to hls4ml: " in message and reason in message and "--format onnx" in message


@pytest.mark.slow
@pytest.mark.parametrize("model", list(TINY))
def test_onnx_export_matches_torch(runs, tmp_path, model):
    pytest.importorskip("onnxruntime")
    assert main(["tagger", "export", str(runs[model]), "--format", "onnx", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert [i["name"] for i in report["inputs"]] == list(load_run_test_set(runs[model]).input_keys)
    assert report["max_abs_diff"] < 1e-5
