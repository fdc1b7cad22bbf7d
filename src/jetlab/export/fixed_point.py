"""``jetlab tagger export --format hls4ml``: a run's tagger as an hls4ml project, its fixed-point
emulation checked against the float model on the test split, and the precision scan.

Writes, in ``out``:

=====================  ===============================================================
hls4ml_prj/            the HLS project (firmware/, build_prj.tcl, the compiled emulation)
hls4ml.log             hls4ml's converter output
report.json / .md      float vs fixed-point accuracy and AUC, largest probability
                       difference, non-zero multiplications (the DSP proxy) per layer
predictions.npz        labels, probs_float and probs_fixed (N, C) of the test jets
precision_scan.json    with a scan: accuracy, AUC per class and largest difference per
precision_scan.png     total width ``W`` of ``ap_fixed<W,I>`` (``I`` kept), AUC vs W
=====================  ===============================================================

The scan is the hls4ml paper's bit-width study (arXiv:1804.06913): each width is a
separate compile, built in a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from jetlab.export._optional import import_optional
from jetlab.export.hls4ml import (
    DEFAULT_PRECISION,
    build_hls_model,
    check_precision,
    hls_probabilities,
    hls_sequential,
    multiplication_counts,
    scan_precisions,
)
from jetlab.export.inputs import RunTestSet, batched_probabilities, load_run_test_set, torch_probabilities
from jetlab.export.report import metric_summary, metrics_table, write_predictions, write_report
from jetlab.utils.atomic import atomic_write_json, atomic_write_text
from jetlab.utils.progress import progress
from jetlab.viz.export import plot_precision_scan

__all__ = ["DEFAULT_SCAN_WIDTHS", "export_hls4ml", "scan_precision"]

log = logging.getLogger(__name__)

#: total widths of the precision scan (the hls4ml paper's range)
DEFAULT_SCAN_WIDTHS = tuple(range(8, 19))


def _fixed_point_row(test: RunTestSet, precision: str, p_fixed: np.ndarray, p_float: np.ndarray) -> dict:
    parsed = check_precision(precision)
    return {"precision": precision, "width": int(parsed.width), "integer": int(parsed.integer),
            **metric_summary(test.labels, p_fixed, test.class_names),
            "max_abs_diff": float(np.abs(p_fixed - p_float).max()),
            "argmax_agreement": float((p_fixed.argmax(1) == p_float.argmax(1)).mean())}


def scan_precision(test: RunTestSet, precisions: Sequence[str], *, p_float: np.ndarray | None = None,
                   done: dict[str, np.ndarray] | None = None, workdir: str | os.PathLike | None = None) -> list[dict]:
    """Compile and run RUN's tagger at each of ``precisions``: one row per precision with
    ``width``, ``integer``, ``accuracy``, ``mean_auc``, ``auc`` per class, ``max_abs_diff``.

    ``done`` maps precisions already run to their probabilities (not compiled again).
    """
    seq, shape, io_type = hls_sequential(test.model)
    if p_float is None:
        p_float = torch_probabilities(test.model, test)
    x = test.inputs[test.input_keys[0]]
    rows = []
    with tempfile.TemporaryDirectory(prefix=".precision-scan-", dir=workdir) as tmp:
        for i, precision in enumerate(progress(precisions, desc="precision scan", unit="width")):
            if done and precision in done:
                p_fixed = done[precision]
            else:
                build = build_hls_model(seq, shape, precision, io_type, Path(tmp) / f"w{i}", project="scan")
                p_fixed = hls_probabilities(build, x)
            rows.append(_fixed_point_row(test, precision, p_fixed, p_float))
            log.info("%s: accuracy %.3f, mean AUC %.3f", precision, rows[-1]["accuracy"], rows[-1]["mean_auc"] or np.nan)
    return rows


def export_hls4ml(run: str | os.PathLike, out: str | os.PathLike, *, precision: str = DEFAULT_PRECISION,
                  scan_widths: Sequence[int] | None = None, max_jets: int | None = None) -> dict:
    """Write and compile RUN's tagger as an hls4ml project at ``precision`` in ``out``, compare
    it with the float model on the test split (see module docstring); with ``scan_widths``,
    repeat for those total widths. Returns the report (``report["precision_scan"]``: the rows)."""
    hls4ml = import_optional("hls4ml", "hls4ml export")
    check_precision(precision)
    scan = scan_precisions(precision, scan_widths) if scan_widths else None
    test = load_run_test_set(run, max_jets=max_jets)
    seq, shape, io_type = hls_sequential(test.model)  # fails early for unsupported taggers
    out = Path(out)
    name = test.model_name
    key = test.input_keys[0]

    p_float = torch_probabilities(test.model, test)
    with torch.no_grad():
        p_layers = batched_probabilities(lambda x: seq(x).double().numpy(), test.inputs, (key,))
    started = time.perf_counter()
    build = build_hls_model(seq, shape, precision, io_type, out / "hls4ml_prj", project=f"jetlab_{name.replace('-', '_')}")
    build_s = time.perf_counter() - started
    atomic_write_text(out / "hls4ml.log", build.log)
    p_fixed = hls_probabilities(build, test.inputs[key], desc="hls4ml emulation" if len(test) > 2000 else None)

    counts = multiplication_counts(seq, shape)
    fixed = _fixed_point_row(test, precision, p_fixed, p_float)
    floating = metric_summary(test.labels, p_float, test.class_names)
    report = {
        "format": "hls4ml", "run": str(test.run), "model": name, "project": str(build.directory),
        "precision": precision, "io_type": io_type, "backend": "Vitis", "layers": [str(m) for m in seq],
        "data": test.data, "n_jets": len(test), "float": floating, "fixed": fixed,
        "max_abs_diff": fixed["max_abs_diff"], "argmax_agreement": fixed["argmax_agreement"],
        "layer_rewrite_max_abs_diff": float(np.abs(p_layers - p_float).max()),
        "nonzero_multiplications": sum(c["nonzero_weights"] for c in counts),
        "multiplications_per_jet": sum(c["multiplications_per_jet"] for c in counts),
        "weights": sum(c["weights"] for c in counts), "multiplication_counts": counts,
        "build_time_s": build_s, "hls4ml_warnings": build.warnings,
        "versions": {"torch": torch.__version__, "hls4ml": hls4ml.__version__},
    }
    md = [f"# hls4ml export of {test.run} ({name})", "",
          f"- project: `{build.directory}` ({precision}, {io_type}, Vitis backend); C++ emulation compiled with g++",
          f"- checked on {len(test)} test jets of {test.data}: max |p_fixed - p_float| = {fixed['max_abs_diff']:.4f}, "
          f"same argmax for {fixed['argmax_agreement']:.1%}",
          f"- non-zero multiplications (DSP proxy at reuse factor 1): {report['nonzero_multiplications']} "
          f"of {report['weights']} weights; {report['multiplications_per_jet']} non-zero multiplications per jet",
          *(f"- hls4ml warning: {w}" for w in build.warnings), "",
          *metrics_table({"float (torch)": floating, f"fixed ({precision})": fixed}, test.class_names)]
    if scan:
        rows = scan_precision(test, scan, p_float=p_float, done={precision: p_fixed}, workdir=out)
        _write_scan(out, test, rows, floating)
        report["precision_scan"] = rows
        md += ["", f"## Precision scan ({len(rows)} widths, precision_scan.png)", "",
               *metrics_table({r["precision"]: r for r in rows}, test.class_names)]
    write_predictions(out / "predictions.npz", test.labels, test.class_names, float=p_float, fixed=p_fixed)
    write_report(out, report, md)
    return report


def _write_scan(out: Path, test: RunTestSet, rows: list[dict], floating: dict) -> None:
    atomic_write_json(out / "precision_scan.json", {"model": test.model_name, "run": str(test.run),
                                                    "n_jets": len(test), "float": floating, "scan": rows})
    plot_precision_scan(rows, floating, test.class_names, out / "precision_scan.png",
                        title=f"{test.model_name}: hls4ml fixed point vs float ({len(test)} test jets)")
