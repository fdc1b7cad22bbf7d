"""The numbers an export reports (``report.json``) and their human-readable form (``report.md``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from jetlab.utils.atomic import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["metric_summary", "metrics_table", "write_predictions", "write_report"]


def metric_summary(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict:
    """``{"accuracy", "mean_auc", "auc": {class: one-vs-rest AUC or None}}`` of probs (N, C)."""
    from jetlab.metrics.tagging import tagging_metrics  # lazy: start-up (scipy)

    m = tagging_metrics(labels, probs, class_names)
    return {"accuracy": m["accuracy"], "mean_auc": m["mean_auc"],
            "auc": {c: m["per_class"][c]["auc"] for c in class_names}}


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def metrics_table(rows: Mapping[str, dict], class_names: Sequence[str]) -> list[str]:
    """Markdown table, one row per :func:`metric_summary`: accuracy, mean AUC, AUC per class."""
    lines = ["| | accuracy | mean AUC | " + " | ".join(f"AUC {c}" for c in class_names) + " |",
             "|---" * (3 + len(class_names)) + "|"]
    for label, s in rows.items():
        lines.append(f"| {label} | {_fmt(s['accuracy'])} | {_fmt(s['mean_auc'])} | "
                     + " | ".join(_fmt(s["auc"][c]) for c in class_names) + " |")
    return lines


def write_report(out: str | os.PathLike, report: dict, markdown: Sequence[str]) -> None:
    """``out/report.json`` and ``out/report.md``, atomically."""
    out = Path(out)
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", "\n".join(markdown) + "\n")


def write_predictions(path: str | os.PathLike, labels: np.ndarray, class_names: Sequence[str],
                      **probs: np.ndarray) -> None:
    """``labels`` (N,), ``class_names`` and each ``probs_<name>`` (N, C) into an .npz, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, labels=labels, class_names=np.array(class_names),
                                **{f"probs_{k}": v for k, v in probs.items()})
