"""Training, evaluating and comparing jet taggers (JEDI-net, arXiv:1908.05318, Sec. 4-5).

:func:`train_tagger` is what ``jetlab tagger train`` runs, in one process or under
``torchrun`` / ``mpiexec``. It splits the jets 70/15/15 (seeded), standardises them with
training-split statistics, trains the model with Adam and cross-entropy on the 5-class
softmax, steps the learning rate down on validation plateaus, stops early after
``patience`` epochs without a better validation loss, and evaluates the best weights on
the test split. A run directory RUN holds:

================== ===================================================================
config.yaml        the full :class:`TaggerTrainConfig` (``--config`` reloads it)
checkpoint.pt      the resumable training state, rewritten atomically every epoch
model.pt           the best weights + everything needed to rebuild and feed the model
metrics.json       test accuracy, per-class AUC, TPR at FPR 10 %/1 %, 1/eps_B at
                   eps_S 30 %, confusion matrix, parameters, time, epochs, dataset sizes
predictions.npz    test labels (N,) and class probabilities (N, 5), for ``compare``
roc.png            one-vs-rest ROC curves; training_curve.png: loss/accuracy/lr per epoch
================== ===================================================================

Defaults differ from the paper's (Adam lr 1e-4, batch 100, patience 10, hundreds of
epochs on 600k jets): ``jetlab tagger train`` with no options is meant to finish in a few
minutes on a laptop CPU, so it runs at most 20 epochs with lr 1e-3 (10x the paper's;
with a few thousand jets the small lr is far from converged after a few epochs), halved
whenever the validation loss has not improved for 2 epochs (``ReduceLROnPlateau``),
batch 100 and early-stopping patience 10 (the paper's). For paper-like training pass
``--lr 1e-4 --epochs 200`` (or ``--schedule cosine``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from jetlab.errors import InputError, JetlabError
from jetlab.training.checkpoint import load_torch_file
from jetlab.utils.atomic import atomic_path, atomic_torch_save, atomic_write_json
from jetlab.utils.config import save_config

__all__ = [
    "TaggerTrainConfig",
    "MODEL_FILE_FORMAT",
    "train_tagger",
    "load_tagger",
    "evaluate_tagger",
    "compare_runs",
    "predict_probabilities",
]

log = logging.getLogger(__name__)

MODEL_FILE_FORMAT = "jetlab-tagger/1"
SCHEDULES = ("plateau", "cosine", "none")


@dataclasses.dataclass
class TaggerTrainConfig:
    """Everything that defines a tagger training run (saved as RUN/config.yaml)."""

    model: str = "jedinet"
    #: directory or file of jets; None = the cached default set (generated on first use)
    data: str | None = None
    particles: int = 30
    #: model hyperparameters overriding the model's defaults (e.g. {"hidden": 30})
    hparams: dict = dataclasses.field(default_factory=dict)
    #: the no-option main job (JEDI-net, 7k training jets): 20 epochs take about 30 s of training
    #: on an idle 2-core CPU (about 5,500 jets/s), a few minutes on a busy one
    epochs: int = 20
    #: jets per process per step (the global batch under K processes is K times this)
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    #: plateau: lr x lr_factor after lr_patience epochs without val improvement; cosine: to 0 over epochs
    schedule: str = "plateau"
    lr_factor: float = 0.5
    lr_patience: int = 2
    #: early stopping: stop after this many epochs without a better validation loss
    patience: int = 10
    grad_clip: float | None = None
    seed: int = 0
    #: seed of the train/val/test permutation (keep it fixed to compare models on one split)
    split_seed: int = 0
    fractions: list = dataclasses.field(default_factory=lambda: [0.7, 0.15, 0.15])
    #: "auto" (all-reduce under torchrun/mpiexec, else local), "local", "allreduce"
    strategy: str = "auto"
    device: str = "cpu"
    #: DataLoader workers, used only when a split is too big for memory
    num_workers: int = 0
    #: hold splits in memory as tensors up to this size (GB), else read batches from disk
    max_memory_gb: float = 4.0
    #: torch CPU threads per process (None: torch's default; under K processes cores/K)
    threads: int | None = None

    def validate(self) -> None:
        from jetlab.models import TAGGERS

        if self.model not in TAGGERS:
            raise JetlabError(f"unknown tagger {self.model!r}; known: {', '.join(TAGGERS)}")
        if self.schedule not in SCHEDULES:
            raise JetlabError(f"unknown schedule {self.schedule!r}; known: {', '.join(SCHEDULES)}")
        for name in ("particles", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise JetlabError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise JetlabError(f"lr must be positive, got {self.lr}")
        if self.patience < 1:
            raise JetlabError(f"patience must be at least 1, got {self.patience}")
        if not isinstance(self.hparams, dict):
            raise JetlabError(f"hparams must be a mapping, got {self.hparams!r}")


# ---------------------------------------------------------------------------- helpers
def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _n_features(input_keys: Sequence[str], particle_features: Sequence[str]) -> int:
    from jetlab.io.layout import HLF_FEATURES

    if "particles" in input_keys:
        return len(particle_features)
    if "hlf" in input_keys:
        return len(HLF_FEATURES)
    return 1  # images: one channel


def _batch_source(split, max_memory_gb: float, num_workers: int):
    """In-memory tensors when the split fits in ``max_memory_gb``, else per-batch reads."""
    from jetlab.training.trainer import DatasetSource, TensorSource

    if len(split) == 0:
        return TensorSource({})
    one = split[0]
    bytes_per_jet = sum(t.numel() * t.element_size() for t in one.values())
    if bytes_per_jet * len(split) <= max_memory_gb * 1e9:
        return TensorSource(split.tensors())
    log.info("split of %d jets needs %.1f GB > max_memory_gb=%.1f: reading batches from disk",
             len(split), bytes_per_jet * len(split) / 1e9, max_memory_gb)
    return DatasetSource(split, num_workers)


@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, source, input_keys: Sequence[str], *,
                          device: str = "cpu", batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """``(labels (N,), softmax probabilities (N, C))`` of ``model`` on every jet of ``source``."""
    from jetlab.training.trainer import ShardedBatches

    model.eval()
    labels, probs = [], []
    for batch, _, _ in ShardedBatches(source, batch_size, shuffle=False, training=False):
        logits = model(*[batch[k].to(device) for k in input_keys])
        labels.append(batch["label"].numpy())
        probs.append(torch.softmax(logits.double(), dim=1).cpu().numpy())
    if not labels:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0))
    return np.concatenate(labels), np.concatenate(probs)


def _stats_to_numpy(stats: dict) -> dict:
    return {k: np.asarray(v) for k, v in (stats or {}).items()}


def save_model_file(path, model: torch.nn.Module, *, config: TaggerTrainConfig, class_names, particle_features,
                    stats: dict, epoch: int, val_metrics: dict) -> None:
    """Write RUN/model.pt: the unwrapped best weights and what is needed to rebuild and feed them."""
    atomic_torch_save({
        "format": MODEL_FILE_FORMAT,
        "model_name": model.name,
        "hparams": dict(model.hparams),
        "n_particles": int(model.hparams.get("n_particles", config.particles)),
        "input_keys": list(model.input_keys),
        "class_names": list(class_names),
        "particle_features": list(particle_features),
        "stats": _stats_to_numpy(stats),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "epoch": int(epoch),
        "val_loss": float(val_metrics["loss"]),
        "val_accuracy": float(val_metrics["accuracy"]),
        "config": dataclasses.asdict(config),
    }, path)


def load_tagger(path: str | os.PathLike, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild a trained tagger from RUN/model.pt (or RUN): ``(model in eval mode, info)``."""
    from jetlab.models import build_tagger

    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise InputError(path, "no trained model here (expected RUN/model.pt written by `jetlab tagger train`)")
    info = load_torch_file(path, MODEL_FILE_FORMAT, "model file", "tagger model file")
    hparams = dict(info["hparams"])
    if hparams.get("kernel") == "triton" and torch.device(device).type != "cuda":
        hparams["kernel"] = "auto"  # how JEDI-net runs, not what it is: a GPU-trained model loads anywhere
    model = build_tagger(info["model_name"], **hparams)
    model.load_state_dict(info["state_dict"])
    return model.to(device).eval(), info


# ---------------------------------------------------------------------------- training
def train_tagger(config: TaggerTrainConfig, out: str | os.PathLike, *, resume: bool = False,
                 stop_after_epoch: int | None = None) -> dict | None:
    """Train ``config.model`` into run directory ``out`` (see module docstring).

    Under ``torchrun``/``mpiexec`` every rank calls this; rank 0 alone writes files and
    returns the metrics dict, the other ranks return None. ``stop_after_epoch`` ends the
    call after that epoch's checkpoint (as if killed; continue with ``resume=True``).
    """
    from jetlab.io import resolve_jets
    from jetlab.distributed.env import init_distributed
    from jetlab.metrics.tagging import tagging_metrics
    from jetlab.models import TAGGERS, build_tagger
    from jetlab.training.checkpoint import load_checkpoint
    from jetlab.training.strategies import make_strategy
    from jetlab.training.trainer import ShardedBatches, Trainer
    from jetlab.viz.tagging import plot_roc, plot_training_curve

    config.validate()
    out = Path(out)
    checkpoint_path = out / "checkpoint.pt"
    if checkpoint_path.exists() and not resume:
        raise InputError(out, "already holds a training run; pass --resume to continue it or choose another --out")
    if resume and not checkpoint_path.exists() and (out / "model.pt").exists():
        raise InputError(checkpoint_path, "missing, so the run cannot be resumed")

    context = init_distributed(config.device)
    threads_before = torch.get_num_threads()
    try:
        if config.threads:
            torch.set_num_threads(int(config.threads))
        elif context.world_size > 1 and not context.device.startswith("cuda"):
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // context.world_size))
        if config.data is None and context.is_main:
            print("jetlab: no --data given: using the default Pythia jet set "
                  f"({config.particles} particles; generated and cached on first use, which takes a few minutes)",
                  file=sys.stderr, flush=True)
        # rank 0 first, so a missing default set is generated once, not by every rank
        jets = resolve_jets(config.data, config.particles) if context.is_main else None
        context.barrier()
        if jets is None:
            jets = resolve_jets(config.data, config.particles)

        model_cls = TAGGERS[config.model]
        input_keys = tuple(model_cls.input_keys)
        train_split, val_split, test_split = jets.split(
            tuple(config.fractions), seed=config.split_seed, inputs=(*input_keys, "label"))
        if len(train_split) < 2 or len(val_split) == 0 or len(test_split) == 0:
            raise InputError(jets.path, f"only {jets.n_jets} jets: too few to split into train/validation/test")
        n_features = _n_features(input_keys, train_split.particle_features)

        _seed_everything(config.seed)
        model = build_tagger(config.model, n_particles=jets.n_particles, n_features=n_features,
                             n_classes=len(jets.class_names), **config.hparams).to(context.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        if config.schedule == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience)
        elif config.schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
        else:
            scheduler = None
        strategy = make_strategy(config.strategy, context)

        started = time.perf_counter()
        sources = [_batch_source(s, config.max_memory_gb, config.num_workers) for s in (train_split, val_split)]
        load_s = time.perf_counter() - started
        train_batches = ShardedBatches(sources[0], config.batch_size, context, shuffle=True, seed=config.seed)
        val_batches = ShardedBatches(sources[1], max(config.batch_size, 500), context, shuffle=False, training=False)
        if len(train_batches) == 0:
            raise InputError(jets.path, f"{len(train_split)} training jets is less than half a batch "
                                        f"({config.batch_size} x {context.world_size} processes)")

        meta = {"model_name": config.model, "hparams": dict(model.hparams)}
        if resume and checkpoint_path.exists():
            load_checkpoint(checkpoint_path, expect_meta=meta)  # fail before touching RUN
        if context.is_main:
            out.mkdir(parents=True, exist_ok=True)
            save_config(config, out / "config.yaml")
            n_params = sum(p.numel() for p in model.parameters())
            log.info("%s: %d parameters | %d/%d/%d train/val/test jets from %s | %d process(es), %s, strategy %s",
                     config.model, n_params, len(train_split), len(val_split), len(test_split), jets.path,
                     context.world_size, context.device, strategy.name)

        def save_best(best_model, epoch, val_metrics):
            save_model_file(out / "model.pt", best_model, config=config, class_names=jets.class_names,
                            particle_features=train_split.particle_features, stats=train_split.stats,
                            epoch=epoch, val_metrics=val_metrics)

        trainer = Trainer(
            model, optimizer, input_keys=input_keys, scheduler=scheduler, strategy=strategy, context=context,
            patience=config.patience, checkpoint_path=checkpoint_path, grad_clip=config.grad_clip,
            meta=meta,
            progress_desc=config.model,
        )
        result = trainer.fit(train_batches, val_batches, config.epochs, resume=resume and checkpoint_path.exists(),
                             stop_after_epoch=stop_after_epoch, on_best=save_best)
        finished = result.stopped_early or (result.history and result.history[-1]["epoch"] >= config.epochs)
        if not context.is_main or not finished:
            context.barrier()
            return None

        # rank 0: the best weights on the test split
        model_to_test = strategy.unwrap()
        if result.best_state is not None:
            model_to_test.load_state_dict(result.best_state)
        test_source = _batch_source(test_split, config.max_memory_gb, config.num_workers)
        labels, probs = predict_probabilities(model_to_test, test_source, input_keys, device=context.device)
        metrics = tagging_metrics(labels, probs, jets.class_names)
        metrics.update({
            "model": config.model,
            "hparams": dict(model.hparams),
            "n_particles": jets.n_particles,
            "n_parameters": sum(p.numel() for p in model.parameters()),
            "data": str(jets.path),
            "dataset_sizes": {"train": len(train_split), "val": len(val_split), "test": len(test_split)},
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "stopped_early": result.stopped_early,
            "training_time_s": result.elapsed_s,
            "data_load_time_s": load_s,
            "processes": context.world_size,
            "device": context.device,
            "history": result.history,
        })
        with atomic_path(out / "predictions.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, labels=labels, probs=probs, class_names=np.array(jets.class_names))
        plot_roc(labels, probs, jets.class_names, out / "roc.png",
                 title=f"{config.model}, {jets.n_particles} particles, test split ({len(labels)} jets)")
        plot_training_curve(result.history, out / "training_curve.png", title=config.model)
        atomic_write_json(out / "metrics.json", metrics)
        log.info("test accuracy %.3f, mean AUC %.3f -> %s", metrics["accuracy"], metrics["mean_auc"] or float("nan"), out)
        context.barrier()
        return metrics
    finally:
        torch.set_num_threads(threads_before)
        context.shutdown()


# ---------------------------------------------------------------------------- evaluate / compare
def evaluate_tagger(run: str | os.PathLike, data: str | os.PathLike, *, name: str | None = None,
                    device: str = "cpu", batch_size: int = 500, max_memory_gb: float = 4.0) -> dict:
    """Metrics of RUN's best model on every jet of ``data``, standardised with the
    *training* statistics stored in model.pt; writes RUN/eval-<name>/{metrics.json, roc.png,
    predictions.npz} (``name`` defaults to the data path's last component)."""
    from jetlab.io import open_jets
    from jetlab.io.jets import JetSplit
    from jetlab.metrics.tagging import tagging_metrics
    from jetlab.viz.tagging import plot_roc

    run = Path(run)
    model, info = load_tagger(run, device=device)
    jets = open_jets(data, n_particles=info["n_particles"])
    input_keys = tuple(info["input_keys"])
    if "particles" in input_keys:
        missing = [f for f in info["particle_features"] if f not in jets.particle_feature_names]
        if missing:
            raise InputError(jets.path, f"lacks particle feature(s) {', '.join(missing)} the model was trained on")
    stats = {k: np.asarray(v, dtype=np.float32) for k, v in info["stats"].items()}
    split = JetSplit(jets, np.arange(jets.n_jets), (*input_keys, "label"), tuple(info["particle_features"]),
                     stats=stats, standardize=bool(stats))
    labels, probs = predict_probabilities(model, _batch_source(split, max_memory_gb, 0), input_keys,
                                          device=device, batch_size=batch_size)
    metrics = tagging_metrics(labels, probs, info["class_names"])
    name = name or (Path(data).resolve().name or "data")
    eval_dir = run / f"eval-{name}"
    metrics.update({"model": info["model_name"], "run": str(run), "data": str(jets.path),
                    "n_particles": info["n_particles"], "trained_epoch": info["epoch"]})
    with atomic_path(eval_dir / "predictions.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, labels=labels, probs=probs, class_names=np.array(info["class_names"]))
    plot_roc(labels, probs, info["class_names"], eval_dir / "roc.png",
             title=f"{info['model_name']} on {name} ({len(labels)} jets)")
    atomic_write_json(eval_dir / "metrics.json", metrics)
    metrics["out"] = str(eval_dir)
    return metrics


def _fmt(value, percent: bool = False) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}" if percent else f"{value:.3f}"


def compare_runs(runs: Sequence[str | os.PathLike], *, out: str | os.PathLike | None = None,
                 eval_name: str | None = None) -> str:
    """The paper-style table of several runs (markdown) and, with ``out``, one ROC plot per
    class with every model (``out/roc_<class>.png``), ``out/compare.md`` and ``compare.json``.

    ``eval_name`` compares RUN/eval-<eval_name>/ results instead of the test split.
    """
    from jetlab.metrics.tagging import one_vs_rest_rocs
    from jetlab.viz.tagging import plot_roc_comparison

    rows = []
    for run in runs:
        run = Path(run)
        where = run / f"eval-{eval_name}" if eval_name else run
        metrics_path = where / "metrics.json"
        if not metrics_path.is_file():
            raise InputError(where, "no metrics.json (train the run to the end, or `jetlab tagger evaluate` it first)")
        try:
            metrics = json.loads(metrics_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(metrics_path, f"not valid JSON ({exc.msg})") from None
        rows.append((run, where, metrics))
    class_names = rows[0][2]["class_names"]
    labels = [f"{m.get('model', r.name)} ({r.name})" if r.name != m.get("model") else r.name for r, _, m in rows]

    lines = []
    header_classes = " | ".join(class_names)
    lines.append("| model | params | epochs | train time (s) | accuracy | "
                 + " | ".join(f"AUC {c}" for c in class_names) + " |")
    lines.append("|---" * (5 + len(class_names)) + "|")
    for label, (_, _, m) in zip(labels, rows):
        aucs = " | ".join(_fmt(m["per_class"][c]["auc"]) for c in class_names)
        seconds = f"{m['training_time_s']:.0f}" if "training_time_s" in m else "–"
        lines.append(f"| {label} | {m.get('n_parameters', '–')} | {m.get('epochs_run', '–')} | {seconds} | "
                     f"{_fmt(m['accuracy'])} | {aucs} |")
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
    table = "\n".join(lines)

    if out is not None:
        out = Path(out)
        curves_by_class: dict[str, dict] = {c: {} for c in class_names}
        for label, (_, where, _) in zip(labels, rows):
            predictions = where / "predictions.npz"
            if not predictions.is_file():
                raise InputError(where, "no predictions.npz to draw ROC curves from")
            with np.load(predictions) as data:
                curves = one_vs_rest_rocs(data["labels"], data["probs"])
            for c, curve in zip(class_names, curves):
                if curve is not None:
                    curves_by_class[c][label] = curve
        for c, curves in curves_by_class.items():
            plot_roc_comparison(curves, out / f"roc_{c}.png", title=f"{c} tagger, one vs rest")
        from jetlab.utils.atomic import atomic_write_text

        atomic_write_text(out / "compare.md", table + "\n")
        atomic_write_json(out / "compare.json", {label: m for label, (_, _, m) in zip(labels, rows)})
    return table
