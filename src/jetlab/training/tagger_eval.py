"""Evaluating and comparing trained taggers: ``jetlab tagger evaluate`` and ``jetlab tagger compare``.

:func:`evaluate_tagger` scores RUN/model.pt on every jet of another set, standardised with
the *training* statistics stored in model.pt, and writes RUN/eval-<name>/. :func:`compare_runs`
is the paper-style table of several runs (JEDI-net, arXiv:1908.05318, Table 2) with one ROC
plot per class holding every model.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from jetlab.errors import InputError
from jetlab.io import open_jets
from jetlab.io.jets import RAW_PARTICLE_KEYS, JetSplit, frozen_particle_features
from jetlab.training.batches import ShardedBatches, batch_source
from jetlab.training.tagger import load_tagger
from jetlab.training.tasks import ClassifyTask
from jetlab.utils.atomic import atomic_path, atomic_write_json, atomic_write_text
from jetlab.utils.config import read_json
from jetlab.viz.tagging import plot_roc, plot_roc_comparison

__all__ = ["compare_runs", "evaluate_tagger", "predict_probabilities", "read_predictions"]

log = logging.getLogger(__name__)


@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, source, *, device: str = "cpu", batch_size: int = 500
                          ) -> tuple[np.ndarray, np.ndarray]:
    """``(labels (N,), softmax probabilities (N, C))`` of ``model`` on every item of ``source``."""
    task = ClassifyTask(model, None, device)
    return task.predict(ShardedBatches(source, batch_size, shuffle=False, training=False))


def _has_particle_feature(jets, name: str) -> bool:
    """Whether the files hold particle feature ``name`` (prefixes like ``j1_`` and derived ``log_x`` allowed)."""
    try:
        jets.files[0].particle_column(name)
    except InputError:
        return False
    return True


def evaluate_tagger(run: str | os.PathLike, data: str | os.PathLike, *, name: str | None = None,
                    device: str = "cpu", batch_size: int = 500, max_memory_gb: float = 4.0) -> dict:
    """Metrics of RUN's best model on every jet of ``data``, standardised with the
    *training* statistics stored in model.pt; writes RUN/eval-<name>/{metrics.json, roc.png,
    predictions.npz} (``name`` defaults to the data path's last component)."""
    from jetlab.metrics.tagging import tagging_metrics  # lazy: start-up (scipy)

    run = Path(run)
    model, info = load_tagger(run, device=device)
    jets = open_jets(data)
    if jets.n_particles != info["n_particles"]:
        raise InputError(jets.path, f"has {jets.n_particles} particles per jet, but the model in {run} was trained on "
                                    f"{info['n_particles']}: evaluate it on {info['n_particles']}-particle files")
    input_keys = tuple(info["input_keys"])
    needed = [*(info["particle_features"] if "particles" in input_keys else ()),
              *(name for key in input_keys for name in RAW_PARTICLE_KEYS.get(key, ()))]
    if needed:
        missing = [f for f in dict.fromkeys(needed) if not _has_particle_feature(jets, f)]
        if missing:
            raise InputError(jets.path, f"lacks particle feature(s) {', '.join(missing)} the model was trained on")
    stats = {k: np.asarray(v, dtype=np.float32) for k, v in info["stats"].items()}
    split = JetSplit(jets, np.arange(jets.n_jets), (*input_keys, "label"), tuple(info["particle_features"]),
                     stats=stats, standardize=bool(stats))
    frozen = frozen_particle_features(split, stats)
    if frozen:
        log.warning("%s: particle feature(s) %s are constant here but varied in the training jets of %s; the "
                    "scores on these jets are not comparable (zeroed or missing in the files?)", jets.path,
                    ", ".join(frozen), run)
    labels, probs = predict_probabilities(model, batch_source(split, max_memory_gb, 0), device=device,
                                          batch_size=batch_size)
    metrics = tagging_metrics(labels, probs, info["class_names"])
    name = name or (Path(data).name or Path(data).resolve().name or "data")
    eval_dir = run / f"eval-{name}"
    metrics.update({"model": info["model_name"], "run": str(run), "data": str(jets.path),
                    "n_particles": info["n_particles"], "trained_epoch": info["epoch"]})
    with atomic_path(eval_dir / "predictions.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, labels=labels, probs=probs, class_names=np.array(info["class_names"]))
    if plot_roc(labels, probs, info["class_names"], eval_dir / "roc.png",
                title=f"{info['model_name']} on {name} ({len(labels)} jets)") is None:
        log.info("no roc.png: every jet of %s is of one class, so no class has a background to reject", name)
    atomic_write_json(eval_dir / "metrics.json", metrics)
    metrics["out"] = str(eval_dir)
    return metrics


#: bootstrap resamples for the paired mean-AUC differences in `tagger compare`
PAIRED_RESAMPLES = 200


def _fmt(value, percent: bool = False) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}" if percent else f"{value:.3f}"


def _auc_error(metrics: dict, class_name: str) -> float | None:
    """Hanley–McNeil error of one class's AUC, from a metrics.json (older files lack ``auc_error``)."""
    from jetlab.metrics.tagging import auc_standard_error  # lazy: start-up (scipy)

    entry = metrics["per_class"][class_name]
    if entry["auc"] is None:
        return None
    n_signal = entry["n_signal"]
    return auc_standard_error(entry["auc"], n_signal, metrics["n_jets"] - n_signal)


def _mean_auc_with_error(metrics: dict, class_names) -> tuple[float | None, float | None]:
    """Mean AUC over classes and its error, the per-class errors combined as if independent."""
    aucs = [metrics["per_class"][c]["auc"] for c in class_names]
    if any(a is None for a in aucs):
        return None, None
    errors = [_auc_error(metrics, c) for c in class_names]
    return float(np.mean(aucs)), float(np.sqrt(np.sum(np.square(errors)))) / len(errors)


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(labels (N,), probs (N, C))`` of a run's predictions.npz, read as plain arrays only
    (``allow_pickle=False``: an object array, which would unpickle, is refused); one-line
    :class:`InputError` naming the file for anything else wrong with it."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as data:
            labels, probs = data["labels"], data["probs"]
    except ValueError as exc:  # numpy's refusal of an object array, or a bad header
        problem = "holds an object array (pickled Python objects), which jetlab does not load" \
            if "allow_pickle" in str(exc) else f"not a readable .npz ({exc})"
        raise InputError(path, problem) from None
    except KeyError as exc:
        raise InputError(path, f"has no array {exc} (expected labels and probs)") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(path, f"not a readable .npz ({type(exc).__name__}: {exc})") from None
    if labels.ndim != 1 or probs.ndim != 2 or len(labels) != len(probs):
        raise InputError(path, f"labels {labels.shape} and probs {probs.shape} do not match (expected (N,), (N, C))")
    return labels, probs


def _paired_differences(labels: Sequence[str], folders: Sequence[Path], metrics: Sequence[dict]) -> list[str]:
    """Lines giving each run's mean AUC minus the first run's, with the paired-bootstrap error,
    when every run was scored on the same test jets (same data, split sizes and labels); else
    a line saying why there is no paired comparison."""
    from jetlab.metrics.tagging import paired_mean_auc_difference  # lazy: start-up (scipy)

    if len(folders) < 2:
        return []
    same_data = {json.dumps([m.get("data"), m.get("dataset_sizes"), m.get("n_jets")]) for m in metrics}
    predictions = []
    for folder in folders:
        if not (folder / "predictions.npz").is_file():
            return [f"no paired comparison: {folder} has no predictions.npz"]
        predictions.append(read_predictions(folder / "predictions.npz"))
    reference_labels, reference_probs = predictions[0]
    if len(same_data) > 1 or any(not np.array_equal(lab, reference_labels) for lab, _ in predictions[1:]):
        return ["no paired comparison: the runs were not scored on the same test jets"]
    lines = [f"mean AUC minus {labels[0]}'s on the same jets (paired bootstrap, {PAIRED_RESAMPLES} resamples): "]
    parts = []
    for label, (_, probs) in zip(labels[1:], predictions[1:]):
        difference, error = paired_mean_auc_difference(reference_labels, probs, reference_probs,
                                                       n_resamples=PAIRED_RESAMPLES)
        parts.append(f"{label} {difference:+.4f} ± {error:.4f}")
    lines[0] += ", ".join(parts)
    return lines


def compare_runs(runs: Sequence[str | os.PathLike], *, out: str | os.PathLike | None = None,
                 eval_name: str | None = None) -> str:
    """The paper-style table of several runs (markdown) and, with ``out``, one ROC plot per
    class with every model (``out/roc_<class>.png``), ``out/compare.md`` and ``compare.json``.

    ``eval_name`` compares RUN/eval-<eval_name>/ results instead of the test split.
    """
    from jetlab.metrics.tagging import one_vs_rest_rocs  # lazy: start-up (scipy)

    rows = []
    for run in runs:
        run = Path(run)
        where = run / f"eval-{eval_name}" if eval_name else run
        metrics_path = where / "metrics.json"
        if not metrics_path.is_file():
            raise InputError(where, "no metrics.json (train the run to the end, or `jetlab tagger evaluate` it first)")
        rows.append((run, where, read_json(metrics_path)))
    class_names = rows[0][2]["class_names"]
    labels = [f"{m.get('model', r.name)} ({r.name})" if r.name != m.get("model") else r.name for r, _, m in rows]

    lines = []
    header_classes = " | ".join(class_names)
    lines.append("| model | params | epochs | train time (s) | accuracy | mean AUC | "
                 + " | ".join(f"AUC {c}" for c in class_names) + " |")
    lines.append("|---" * (6 + len(class_names)) + "|")
    for label, (_, _, m) in zip(labels, rows):
        aucs = " | ".join(_fmt(m["per_class"][c]["auc"]) for c in class_names)
        seconds = f"{m['training_time_s']:.0f}" if "training_time_s" in m else "–"
        mean, error = _mean_auc_with_error(m, class_names)
        lines.append(f"| {label} | {m.get('n_parameters', '–')} | {m.get('epochs_run', '–')} | {seconds} | "
                     f"{_fmt(m['accuracy'])} | {_fmt(mean)} ± {_fmt(error)} | {aucs} |")
    for key, title in (("tpr_at_fpr_10", "TPR (%) at FPR = 10%"), ("tpr_at_fpr_1", "TPR (%) at FPR = 1%")):
        lines.append("")
        lines.append(f"| {title} | {header_classes} |")
        lines.append("|---" * (1 + len(class_names)) + "|")
        for label, (_, _, m) in zip(labels, rows):
            lines.append(f"| {label} | " + " | ".join(_fmt(m["per_class"][c][key], True) for c in class_names) + " |")
    sizes = {json.dumps(m.get("dataset_sizes"), sort_keys=True) for _, _, m in rows}
    lines.append("")
    if len(sizes) == 1 and rows[0][2].get("dataset_sizes"):
        s = rows[0][2]["dataset_sizes"]
        lines.append(f"test split: {s['test']} jets (train {s['train']}, val {s['val']}); data {rows[0][2].get('data')}")
    else:
        lines.append("note: the runs were evaluated on different jet sets: " +
                     "; ".join(f"{label}: {m.get('n_jets')} jets" for label, (_, _, m) in zip(labels, rows)))
    m0 = rows[0][2]
    errors = [_auc_error(m0, c) for c in class_names]
    lines.append("± on mean AUC: the per-class AUC errors (Hanley–McNeil) combined as if independent; per-class "
                 f"errors of {labels[0]}: " + ", ".join(f"{c} {_fmt(e)}" for c, e in zip(class_names, errors)))
    lines.extend(_paired_differences(labels, [where for _, where, _ in rows], [m for _, _, m in rows]))
    table = "\n".join(lines)

    if out is not None:
        out = Path(out)
        curves_by_class: dict[str, dict] = {c: {} for c in class_names}
        for label, (_, where, _) in zip(labels, rows):
            predictions = where / "predictions.npz"
            if not predictions.is_file():
                raise InputError(where, "no predictions.npz to draw ROC curves from")
            curves = one_vs_rest_rocs(*read_predictions(predictions))
            for c, curve in zip(class_names, curves):
                if curve is not None:
                    curves_by_class[c][label] = curve
        for c, curves in curves_by_class.items():
            plot_roc_comparison(curves, out / f"roc_{c}.png", title=f"{c} tagger, one vs rest")

        atomic_write_text(out / "compare.md", table + "\n")
        atomic_write_json(out / "compare.json", {label: m for label, (_, _, m) in zip(labels, rows)})
    return table
