"""hls4ml export: the layer rewrite, the multiplication count, precision strings, unsupported
models, and (slow, one g++ compile per width) the fixed-point emulation on a trained DNN."""

import json
import shutil

import numpy as np
import pytest
import torch

from jetlab.cli.main import main
from jetlab.errors import JetlabError
from jetlab.export.hls4ml import check_precision, hls_sequential, multiplication_counts, scan_precisions
from jetlab.models import build_tagger
from jetlab.training.run_dir import mark_finished

pytest.importorskip("hls4ml")


@pytest.mark.parametrize("name, inputs", [("dnn", (7, 16)), ("cnn", (3, 1, 100, 100))])
def test_layer_rewrite_is_the_softmax_of_the_tagger(name, inputs):
    torch.manual_seed(0)
    model = build_tagger(name, n_particles=30, n_features=16 if name == "dnn" else 1).eval()
    seq, shape, io_type = hls_sequential(model)
    assert shape == inputs[1:] and io_type == ("io_parallel" if name == "dnn" else "io_stream")
    assert isinstance(seq[-1], torch.nn.Softmax)
    x = torch.rand(*inputs)
    with torch.no_grad():
        torch.testing.assert_close(seq(x), torch.softmax(model(x), dim=1))


def test_zero_weights_are_not_counted():
    torch.manual_seed(0)
    model = build_tagger("dnn", n_particles=30, n_features=16).eval()
    with torch.no_grad():
        model.mlp.layers[0].weight[:5, :4] = 0.0  # 20 "pruned" weights
    seq, shape, _ = hls_sequential(model)
    counts = multiplication_counts(seq, shape)
    assert [c["weights"] for c in counts] == [16 * 64, 64 * 32, 32 * 32, 32 * 5]
    assert sum(c["nonzero_weights"] for c in counts) == 16 * 64 + 64 * 32 + 32 * 32 + 32 * 5 - 20
    assert all(c["multiplications_per_jet"] == c["nonzero_weights"] for c in counts)


def test_conv_multiplications_count_every_output_pixel():
    model = build_tagger("cnn", n_particles=30, n_features=1, channels=[2], dense=3).eval()
    seq, shape, _ = hls_sequential(model)
    conv = multiplication_counts(seq, shape)[0]
    assert conv["type"] == "Conv2d" and conv["weights"] == 2 * 1 * 3 * 3
    assert conv["multiplications_per_jet"] == conv["nonzero_weights"] * 100 * 100  # same padding


@pytest.mark.parametrize("name", ["jedinet", "jedinet-sumo", "garnet", "gru"])
def test_taggers_without_an_hls4ml_form_say_why(name):
    model = build_tagger(name, n_particles=30, n_features=16)
    with pytest.raises(JetlabError, match=f"{name} cannot be exported to hls4ml: .*use --format onnx"):
        hls_sequential(model)


def test_an_activation_hls4ml_lacks_is_refused():
    with pytest.raises(JetlabError, match="activation 'selu' has no hls4ml PyTorch equivalent"):
        hls_sequential(build_tagger("dnn", n_particles=30, n_features=16, activation="selu"))


def test_precision_strings():
    parsed = check_precision("ap_fixed<16,6>")
    assert (parsed.width, parsed.integer, parsed.signed) == (16, 6, True)
    for bad in ("foo", "ap_fixed<16>", "float", "ac_fixed<16,6>", "ap_fixed<0,0>"):
        with pytest.raises(JetlabError, match="precision"):
            check_precision(bad)
    assert scan_precisions("ap_fixed<16,6>", [8, 10]) == ["ap_fixed<8,6>", "ap_fixed<10,6>"]
    assert scan_precisions("ap_fixed<16, 4,AP_RND,AP_SAT>", [12]) == ["ap_fixed<12,4,AP_RND,AP_SAT>"]
    with pytest.raises(JetlabError, match="ap_fixed<W,I>"):
        scan_precisions("ap_int<8>", [8])


@pytest.mark.slow
def test_fixed_point_emulation_of_a_trained_dnn(trained_run, tmp_path, capsys):
    """The one g++ test: a DNN with 100 weights zeroed, exported at ap_fixed<16,6> with a
    scan over widths 8 and 16 (16 is the export itself, not compiled twice)."""
    run = tmp_path / "run"
    shutil.copytree(trained_run("dnn", "--epochs", 20), run)
    saved = torch.load(run / "model.pt", weights_only=True)
    saved["state_dict"]["mlp.layers.0.weight"][:10, :10] = 0.0
    torch.save(saved, run / "model.pt")
    mark_finished(run, ["model.pt", "metrics.json", "predictions.npz"])  # the edited model is the run's

    out = tmp_path / "hls"
    argv = ["tagger", "export", str(run), "--format", "hls4ml", "--precision", "ap_fixed<16,6>",
            "--scan-precision", "8,16", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "4156 non-zero multiplications" in printed and "precision scan, mean AUC: W=8" in printed

    report = json.loads((out / "report.json").read_text())
    assert report["nonzero_multiplications"] == 16 * 64 + 64 * 32 + 32 * 32 + 32 * 5 - 100
    assert report["layer_rewrite_max_abs_diff"] < 1e-6
    assert 0 < report["max_abs_diff"] < 0.05  # quantised, but close at 16 bits
    assert report["float"]["mean_auc"] > 0.6  # the check means something only for a trained model
    assert abs(report["fixed"]["mean_auc"] - report["float"]["mean_auc"]) < 0.05
    firmware = out / "hls4ml_prj" / "firmware"
    assert (firmware / "jetlab_dnn.cpp").is_file() and list(firmware.glob("jetlab_dnn-*.so"))
    assert (out / "hls4ml_prj" / "build_prj.tcl").is_file()

    with np.load(out / "predictions.npz") as p:  # the report's numbers, recomputed from the outputs
        fixed, floating, labels = p["probs_fixed"], p["probs_float"], p["labels"]
    assert report["fixed"]["accuracy"] == pytest.approx(float((fixed.argmax(1) == labels).mean()))
    assert report["max_abs_diff"] == pytest.approx(float(np.abs(fixed - floating).max()))
    assert not np.allclose(fixed, floating, atol=1e-6)

    scan = json.loads((out / "precision_scan.json").read_text())["scan"]
    assert [(r["width"], r["integer"]) for r in scan] == [(8, 6), (16, 6)]
    assert scan[1]["max_abs_diff"] == report["max_abs_diff"]
    assert scan[0]["max_abs_diff"] > scan[1]["max_abs_diff"]  # 2 fractional bits are far coarser than 10
    assert (out / "precision_scan.png").stat().st_size > 10_000
    assert "## Precision scan" in (out / "report.md").read_text()
