"""ONNX export of a trained tagger, checked against PyTorch with onnxruntime on its test split.

The graph is recorded by ``torch.onnx.export(dynamo=True)`` (``torch.export`` + onnxscript)
from the tagger's :func:`~jetlab.export.traceable.traceable_form`. It has one input per
``input_keys`` entry, named like the batch keys (``hlf (batch, 16)`` float32;
``image (batch, 1, 100, 100)`` float32; ``particles (batch, N, F)`` float32 and ``mask
(batch, N)`` bool), fed as in training (particles and HLFs standardised with the statistics
in the report, images normalised to unit sum), and one output ``probabilities (batch, C)``,
the softmax of the logits. The batch axis is dynamic.

The check: ``max |p_onnxruntime - p_torch|`` over every test jet and class, where
``p_torch`` is the tagger's own forward (the fast path, for JEDI-net), plus accuracy and
AUC of both. Writes ``out/<model>.onnx``, ``report.json``, ``report.md`` and
``predictions.npz`` (``labels``, ``probs_torch``, ``probs_onnx``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from jetlab.errors import JetlabError
from jetlab.export._optional import import_optional
from jetlab.export.inputs import RunTestSet, batched_probabilities, load_run_test_set, torch_probabilities
from jetlab.export.report import metric_summary, metrics_table, write_predictions, write_report
from jetlab.export.traceable import traceable_form
from jetlab.utils.atomic import atomic_path

__all__ = ["export_onnx", "write_onnx", "onnx_probabilities"]

log = logging.getLogger(__name__)

OUTPUT_NAME = "probabilities"


def write_onnx(module: torch.nn.Module, example: dict[str, torch.Tensor], path: str | os.PathLike) -> str:
    """Record ``module(*example.values())`` as an ONNX graph with a dynamic batch axis at ``path``.

    Returns the exporter's console output (progress lines), which is kept out of the terminal.
    """
    import_optional("onnxscript", "ONNX export")
    names = list(example)
    batch = torch.export.Dim("batch")
    chatter = io.StringIO()
    # the exporter's notes ("torchvision is not installed", graph passes) stay out of the terminal
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnx_ir", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")  # the exporter's own deprecation and tracing notes
            torch.onnx.export(module, tuple(example.values()), tmp, input_names=names, output_names=[OUTPUT_NAME],
                              dynamic_shapes=(tuple({0: batch} for _ in names),), dynamo=True,
                              external_data=False, verbose=False)
    except Exception as exc:  # the exporter raises many types; keep the first line
        raise JetlabError(f"ONNX export failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}") from None
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    return chatter.getvalue()


def onnx_probabilities(path: str | os.PathLike, test: RunTestSet, batch_size: int = 500) -> np.ndarray:
    """onnxruntime's ``probabilities`` output for every test jet: (N, C) float64."""
    ort = import_optional("onnxruntime", "Checking the ONNX export")
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(*arrays):
        return session.run([OUTPUT_NAME], {n: a.numpy() for n, a in zip(names, arrays)})[0]

    return batched_probabilities(run, test.inputs, test.input_keys, batch_size=batch_size)


def _input_description(test: RunTestSet) -> list[dict]:
    return [{"name": k, "shape": ["batch", *test.inputs[k].shape[1:]], "dtype": str(test.inputs[k].dtype).removeprefix("torch.")}
            for k in test.input_keys]


def export_onnx(run: str | os.PathLike, out: str | os.PathLike, *, max_jets: int | None = None,
                batch_size: int = 500) -> dict:
    """Write ``out/<model>.onnx`` for RUN's tagger, check it with onnxruntime on the test split,
    write ``out/report.json`` and ``out/report.md``; returns the report."""
    onnx = import_optional("onnx", "ONNX export")
    ort = import_optional("onnxruntime", "Checking the ONNX export")
    test = load_run_test_set(run, max_jets=max_jets)
    out = Path(out)
    name = test.model_name
    path = out / f"{name}.onnx"
    form, note = traceable_form(test.model)
    example = {k: v[[0, -1]] for k, v in test.inputs.items()}  # two jets: a batch of 1 would be specialised
    write_onnx(form, example, path)
    opset = {o.domain or "ai.onnx": o.version for o in onnx.load(str(path)).opset_import}

    p_torch = torch_probabilities(test.model, test, batch_size)
    p_onnx = onnx_probabilities(path, test, batch_size)
    max_diff = float(np.abs(p_onnx - p_torch).max())
    summaries = {"torch": metric_summary(test.labels, p_torch, test.class_names),
                 "onnxruntime": metric_summary(test.labels, p_onnx, test.class_names)}
    report = {
        "format": "onnx", "run": str(test.run), "model": name, "file": str(path), "exported_as": note,
        "opset": opset, "inputs": _input_description(test),
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(test.class_names)], "classes": test.class_names},
        "standardisation": {k: np.asarray(v).tolist() for k, v in (test.info.get("stats") or {}).items()},
        "data": test.data, "n_jets": len(test), "max_abs_diff": max_diff,
        "argmax_agreement": float((p_onnx.argmax(1) == p_torch.argmax(1)).mean()),
        "metrics": summaries,
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__},
    }
    inputs = ", ".join(f"{i['name']} ({', '.join(map(str, i['shape']))}) {i['dtype']}" for i in report["inputs"])
    md = [f"# ONNX export of {test.run} ({name})", "",
          f"- file: `{path}` (opset {opset.get('ai.onnx')}); exported as {note}",
          f"- inputs: {inputs}, standardised as in training (statistics in report.json)",
          f"- output: {OUTPUT_NAME} (batch, {len(test.class_names)}), classes {', '.join(test.class_names)}",
          f"- checked with onnxruntime {ort.__version__} on {len(test)} test jets of {test.data}: "
          f"max |p_onnx - p_torch| = {max_diff:.2e}, same argmax for {report['argmax_agreement']:.1%}", "",
          *metrics_table(summaries, test.class_names)]
    write_predictions(out / "predictions.npz", test.labels, test.class_names, torch=p_torch, onnx=p_onnx)
    write_report(out, report, md)
    log.debug("ONNX report written to %s", out / "report.json")
    return report
