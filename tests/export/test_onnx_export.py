"""ONNX export of every tagger: onnxruntime on the file reproduces PyTorch on the run's test jets."""

import json
import sys

import numpy as np
import pytest

from jetlab.errors import JetlabError
from jetlab.export.inputs import load_run_test_set, torch_probabilities
from jetlab.export.onnx import export_onnx
from jetlab.models import TAGGERS

ort = pytest.importorskip("onnxruntime")

# The exporter's time grows with the graph: the deep taggers are exported with fewer, narrower
# blocks of the same layer types (attention with pair bias, EdgeConv with its kNN graph).
SMALLER = {"part": ("--hp", "n_layers=1", "--hp", "n_cls_layers=1"),
           "part-small": ("--hp", "n_layers=1", "--hp", "n_cls_layers=1"),
           "particlenet": ("--hp", "conv_widths=[[16, 16, 16], [16, 16, 16], [16, 16, 16]]", "--hp", "fc_dim=16")}


@pytest.mark.parametrize("model", [m if m == "dnn" else pytest.param(m, marks=pytest.mark.slow) for m in TAGGERS])
def test_every_tagger_round_trips_through_onnxruntime(trained_run, tmp_path, model):
    run = trained_run(model, *SMALLER.get(model, ()))
    report = export_onnx(run, tmp_path)
    path = tmp_path / f"{model}.onnx"
    assert report["file"] == str(path) and path.is_file()
    assert report["max_abs_diff"] < 1e-5, report["max_abs_diff"]
    assert json.loads((tmp_path / "report.json").read_text())["max_abs_diff"] == report["max_abs_diff"]
    assert "max |p_onnx - p_torch|" in (tmp_path / "report.md").read_text()

    # independent check: a fresh session on the file, odd batch sizes (the batch axis is dynamic)
    test = load_run_test_set(run)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(test.input_keys)
    expected = torch_probabilities(test.model, test)
    for sl in (slice(0, 1), slice(1, 8), slice(8, None)):
        got = session.run(None, {k: test.inputs[k][sl].numpy() for k in test.input_keys})[0]
        np.testing.assert_allclose(got, expected[sl], atol=1e-5)
    with np.load(tmp_path / "predictions.npz") as saved:
        np.testing.assert_array_equal(saved["labels"], test.labels)
        np.testing.assert_allclose(saved["probs_torch"], expected, atol=1e-12)
    assert report["metrics"]["onnxruntime"]["accuracy"] == pytest.approx(
        float((expected.argmax(1) == test.labels).mean()))


def test_without_onnxruntime_the_error_names_the_extra(trained_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(JetlabError, match=r'needs onnxruntime, which is not installed: pip install -e "\.\[export\]"'):
        export_onnx(trained_run("dnn"), tmp_path)
