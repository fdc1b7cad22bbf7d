"""``jetlab tagger export`` from the command line: the ONNX check printed, one-line errors (exit 2)."""

import sys

import pytest
from test_tagger_cli import one_line_error

from jetlab.cli.main import main

# one xdist worker runs this module: its fixture trains three runs the tests export into
pytestmark = pytest.mark.xdist_group("tagger_export_cli")


def run_cli(*argv):
    return main(["tagger", *map(str, argv)])


@pytest.fixture(scope="module")
def runs(tiny_jets_dir, tmp_path_factory):
    """One-epoch runs: dnn, jedinet and a dnn with SELU activations."""
    root = tmp_path_factory.mktemp("export-runs")
    made = {}
    for label, model, extra in (("dnn", "dnn", ()), ("jedinet", "jedinet", ()),
                                ("selu", "dnn", ("--hp", "activation=selu"))):
        made[label] = root / label
        assert run_cli("train", "--model", model, "--data", tiny_jets_dir, "--epochs", 1, "--threads", 1,
                       "--out", made[label], *extra) == 0
    return made


def test_onnx_export_prints_the_largest_difference(runs, capsys):
    pytest.importorskip("onnxruntime")
    capsys.readouterr()
    assert run_cli("export", runs["dnn"], "--format", "onnx") == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.startswith(f"dnn -> {runs['dnn'] / 'export-onnx' / 'dnn.onnx'}: onnxruntime vs torch on 30 test jets: "
                          "max |dp| = ")
    assert float(out.split("max |dp| = ")[1].split(";")[0]) < 1e-5
    for name in ("dnn.onnx", "report.json", "report.md", "predictions.npz"):
        assert (runs["dnn"] / "export-onnx" / name).is_file()


@pytest.mark.parametrize("fmt", ["onnx", "hls4ml"])
def test_a_folder_without_a_model(tmp_path, capsys, fmt):
    message = one_line_error(capsys, run_cli("export", tmp_path, "--format", fmt, "--out", tmp_path / "x"))
    assert "no trained model here" in message


@pytest.mark.parametrize("label, flags, expected", [
    ("jedinet", (), "jedinet cannot be exported to hls4ml: JEDI-net's interaction step"),
    ("selu", (), "activation 'selu' has no hls4ml PyTorch equivalent"),
    ("dnn", ("--precision", "ap_fixed<16>"), "precision 'ap_fixed<16>' rejected by hls4ml"),
    ("dnn", ("--precision", "float"), "expected an ap_fixed<W,I>"),
    ("dnn", ("--scan-precision", "8-x"), "expected a range like 8-18"),
    ("dnn", ("--scan-precision", "18-8"), "the range runs backwards; write 8-18"),
    ("dnn", ("--scan-precision", "6,8", "--precision", "ap_int<8>"), "needs a precision of the form ap_fixed<W,I>"),
    ("dnn", ("--limit", 0), "argument --limit: must be at least 1, got 0"),
])
def test_hls4ml_input_errors(runs, tmp_path, capsys, label, flags, expected):
    pytest.importorskip("hls4ml")
    message = one_line_error(capsys, run_cli("export", runs[label], "--format", "hls4ml", "--out", tmp_path, *flags))
    assert expected in message


def test_precision_is_for_hls4ml_only(runs, tmp_path, capsys):
    message = one_line_error(capsys, run_cli("export", runs["dnn"], "--format", "onnx", "--precision", "ap_fixed<8,3>"))
    assert "apply to --format hls4ml only" in message


@pytest.mark.parametrize("fmt, package", [("hls4ml", "hls4ml"), ("onnx", "onnx")])
def test_a_missing_extra_is_named_in_one_line(runs, tmp_path, capsys, monkeypatch, fmt, package):
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed
    message = one_line_error(capsys, run_cli("export", runs["dnn"], "--format", fmt, "--out", tmp_path))
    assert message.endswith(f'needs {package}, which is not installed: pip install -e ".[export]"')
