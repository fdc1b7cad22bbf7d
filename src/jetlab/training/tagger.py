"""The tagger recipe behind ``jetlab tagger train`` (JEDI-net, arXiv:1908.05318, Sec. 4-5):
data, :class:`~jetlab.training.tasks.ClassifyTask` and :class:`~jetlab.training.engine.Engine`
wired together, in one process or under ``torchrun`` / ``mpiexec``.

The jets are split 70/15/15 (seeded), standardised with training-split statistics; the
model trains with Adam and cross-entropy on the 5-class softmax, the learning rate steps
down on validation-loss plateaus, training stops early after ``patience`` epochs without a
better validation loss, and the best weights are scored on the test split. A run directory
RUN holds:

================== ===================================================================
config.yaml        the full :class:`TaggerTrainConfig` (``--config`` reloads it)
checkpoint.pt      the resumable training state, rewritten atomically every epoch
model.pt           the best weights + everything needed to rebuild and feed the model
metrics.json       test accuracy, per-class AUC, TPR at FPR 10 %/1 %, 1/eps_B at
                   eps_S 30 %, confusion matrix, parameters, time, epochs, dataset sizes
predictions.npz    test labels (N,) and class probabilities (N, 5), for ``compare``
roc.png            one-vs-rest ROC curves; training_curve.png: loss/accuracy/lr per epoch
finished.json      written last: the run is complete (:func:`~jetlab.training.run_dir.mark_finished`)
================== ===================================================================

Defaults differ from the paper's (Adam lr 1e-4, batch 100, patience 10, hundreds of
epochs on 600k jets): ``jetlab tagger train`` with no options is meant to finish in a few
minutes on a laptop CPU, so it runs at most 20 epochs with lr 1e-3 (10x the paper's;
with a few thousand jets the small lr is far from converged after a few epochs), halved
whenever the validation loss has not improved for 2 epochs, batch 100 and early-stopping
patience 10 (the paper's). For paper-like training pass ``--lr 1e-4 --epochs 200``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from jetlab.data.default import default_jets_ready, resolve_jets
from jetlab.errors import InputError
from jetlab.io.jets import STATS_SAMPLE, constant_features
from jetlab.io.layout import HLF_FEATURES
from jetlab.models.registry import model_code_record, resolve_model
from jetlab.models.weights import fold_masks
from jetlab.training.batches import ShardedBatches, batch_source
from jetlab.training.checkpoint import load_torch_file
from jetlab.training.engine import Engine
from jetlab.training.optimizers import make_optimizer
from jetlab.training.run_dir import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    data_fingerprint,
    mark_finished,
    require_finished,
    seed_everything,
    training_session,
)
from jetlab.training.settings import strategy_settings
from jetlab.training.strategies import is_collective, make_strategy
from jetlab.training.tagger_config import TaggerTrainConfig
from jetlab.training.tasks import ClassifyTask
from jetlab.utils.atomic import atomic_path, atomic_write_json
from jetlab.utils.config import save_config
from jetlab.utils.tensor_files import save_tensor_file
from jetlab.viz.tagging import plot_roc, plot_training_curve

__all__ = ["MODEL_FILE_FORMAT", "TaggerTrainConfig", "load_tagger", "read_model_file", "save_model_file",
           "train_tagger"]

log = logging.getLogger(__name__)

MODEL_FILE_FORMAT = "jetlab-tagger/1"


def _n_features(input_keys: Sequence[str], particle_features: Sequence[str]) -> int:
    if "particles" in input_keys:
        return len(particle_features)
    if "hlf" in input_keys:
        return len(HLF_FEATURES)
    return 1  # images: one channel


def _warn_constant_features(path, split) -> None:
    """Log a warning naming the particle features that never vary in the training jets."""
    if "particles" not in split.inputs or len(split) == 0:
        return
    particles, mask = split.source.read(split.index[:STATS_SAMPLE], "particles", split.particle_features)
    dead = [name for name in constant_features(particles, mask, split.particle_features) if name != "mask"]
    if dead:
        log.warning("%s: particle feature(s) %s are constant over the training jets; the model cannot learn "
                    "from them (zeroed or missing in the files?)", path, ", ".join(dead))


def save_model_file(path, model: torch.nn.Module, *, config: TaggerTrainConfig, class_names, particle_features,
                    stats: dict, epoch: int, val_metrics: dict) -> None:
    """Write RUN/model.pt: the unwrapped best weights and what is needed to rebuild and feed them.
    Pruning masks are folded into the weights (``W = W_orig * W_mask``): the file loads into
    the plain model and its pruned weights are exact zeros."""
    save_tensor_file({
        "format": MODEL_FILE_FORMAT,
        "model_name": model.name,
        "hparams": dict(model.hparams),
        "n_particles": int(model.hparams.get("n_particles", config.particles)),
        "input_keys": list(model.input_keys),
        "class_names": list(class_names),
        "particle_features": list(particle_features),
        "stats": {k: torch.as_tensor(np.asarray(v)) for k, v in (stats or {}).items()},
        "state_dict": {k: v.detach().cpu() for k, v in fold_masks(model.state_dict()).items()},
        "epoch": int(epoch),
        "val_loss": float(val_metrics["val_loss"]),
        "val_accuracy": float(val_metrics["val_accuracy"]),
        "config": dataclasses.asdict(config),
    }, path)


def read_model_file(path: str | os.PathLike, *, finished_only: bool = True) -> dict:
    """The contents of a finished run's RUN/model.pt (``path``: RUN or the file), loaded
    executing nothing; one-line errors for a missing, foreign or crafted file and, unless
    ``finished_only=False`` (a recipe reading the file it is finishing), for a run that
    stopped before its end (:func:`~jetlab.training.run_dir.require_finished`)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise InputError(path, "no trained model here (expected RUN/model.pt written by `jetlab tagger train`)")
    info = load_torch_file(path, MODEL_FILE_FORMAT, "model file", "tagger model file")
    if finished_only:
        require_finished(path.parent, path.name)
    return info


def load_tagger(path: str | os.PathLike, device: str = "cpu", *, finished_only: bool = True
                ) -> tuple[torch.nn.Module, dict]:
    """Rebuild a trained tagger from RUN/model.pt (or RUN): ``(model in eval mode, info)``
    (``finished_only``: see :func:`read_model_file`)."""
    info = read_model_file(path, finished_only=finished_only)
    hparams = dict(info["hparams"])
    if hparams.get("kernel") == "triton" and torch.device(device).type != "cuda":
        hparams["kernel"] = "auto"  # how JEDI-net runs, not what it is: a GPU-trained model loads anywhere
    # a user's model is loaded only from a file named on the command line, with the recorded hash
    entry = resolve_model(info["model_name"], (info.get("config") or {}).get("model_code"), task="classify",
                          where=str(path))
    model = entry.build(**hparams)
    model.load_state_dict(info["state_dict"])
    return model.to(device).eval(), info


def train_tagger(config: TaggerTrainConfig, out: str | os.PathLike, *, resume: bool = False,
                 stop_after_epoch: int | None = None, on_epoch=None, prepare_model=None) -> dict | None:
    """Train ``config.model`` into run directory ``out`` (module docstring).

    Every rank calls this; rank 0 alone writes files and returns the metrics dict (None on
    the other ranks, and when the run stopped before its end: ``stop_after_epoch``, time
    limit). ``on_epoch(record)`` is called on rank 0 after every epoch; returning True stops
    the run (hyperparameter-search pruning). ``prepare_model(model)`` is called on every rank
    with the freshly built (seeded) model, before the optimizer is made and a resumed run's
    checkpoint is loaded: it may set starting weights and add ``torch.nn.utils.prune``
    masks, which the optimizer, the checkpoint and model.pt then carry (``jetlab.pruning``).
    """
    config.validate()
    out = Path(out)
    entry = resolve_model(config.model, config.model_code, task="classify", where=str(out))
    config.model_code = model_code_record(entry)
    with training_session(out, resume=resume, device=config.device, threads=config.threads,
                          collective=is_collective(config.strategy)) as context:
        if config.data is None and context.is_main:
            if not default_jets_ready(config.particles):
                print("jetlab: no --data given: generating the default Pythia jet set "
                      f"({config.particles} particles) on first use; this takes a few minutes, once",
                      file=sys.stderr, flush=True)
        # rank 0 first, so a missing default set is generated once, not by every rank
        jets = resolve_jets(config.data, config.particles) if context.is_main else None
        context.barrier()
        if jets is None:
            jets = resolve_jets(config.data, config.particles)

        input_keys = entry.input_keys
        train_split, val_split, test_split = jets.split(
            tuple(config.fractions), seed=config.split_seed, inputs=(*input_keys, "label"),
            particle_features=entry.particle_features)
        if len(train_split) < 2 or len(val_split) == 0 or len(test_split) == 0:
            raise InputError(jets.path, f"only {jets.n_jets} jets: too few to split into train/validation/test")
        _warn_constant_features(jets.path, train_split)
        present = np.unique(train_split.labels())
        if len(present) < 2:
            raise InputError(jets.path, f"holds jets of {len(present)} class(es) only "
                                        f"({', '.join(jets.class_names[i] for i in present)}); a tagger needs two or more")

        seed_everything(config.seed)
        model = entry.build(n_particles=jets.n_particles, n_features=_n_features(input_keys, train_split.particle_features),
                            n_classes=len(jets.class_names), **config.hparams).to(context.device)
        if prepare_model is not None:
            prepare_model(model)
        optimizer = make_optimizer(config, model.parameters(), weight_decay=config.weight_decay)
        task = ClassifyTask(model, optimizer, context.device, name=config.model, l1=config.l1)
        strategy = make_strategy(config.strategy, context, **strategy_settings(config))

        started = time.perf_counter()
        sources = [batch_source(s, config.max_memory_gb, config.num_workers) for s in (train_split, val_split)]
        load_s = time.perf_counter() - started
        train_batches = ShardedBatches(sources[0], config.batch_size, strategy.batch_context(context, training=True),
                                       shuffle=True, seed=config.seed)
        val_batches = ShardedBatches(sources[1], max(config.batch_size, 500),
                                     strategy.batch_context(context, training=False), shuffle=False, training=False)
        if len(train_batches) == 0:
            raise InputError(jets.path, f"{len(train_split)} training jets is less than half a batch "
                                        f"({config.batch_size} x {context.world_size} processes)")
        meta = {"task": "classify", "model_name": config.model, "hparams": dict(model.hparams),
                "data": data_fingerprint(jets.path, jets.n_jets, split_seed=config.split_seed,
                                         fractions=config.fractions)}
        engine = Engine(task, config, strategy=strategy, context=context, checkpoint_path=out / CHECKPOINT_NAME,
                        meta=meta, unit="jet")
        if context.is_main:
            save_config(config, out / CONFIG_NAME)
            log.info("%s: %d parameters | %d/%d/%d train/val/test jets from %s | %d process(es), %s, strategy %s",
                     config.model, sum(p.numel() for p in model.parameters()), len(train_split), len(val_split),
                     len(test_split), jets.path, context.world_size, context.device, strategy.name)

        def save_best(task, epoch, record):
            save_model_file(out / "model.pt", task.model, config=config, class_names=jets.class_names,
                            particle_features=train_split.particle_features, stats=train_split.stats,
                            epoch=epoch, val_metrics=record)

        result = engine.fit(train_batches, val_batches, resume=resume, stop_after_epoch=stop_after_epoch,
                            on_best=save_best, on_epoch=on_epoch)
        if not context.is_main or not result.finished:
            return None
        return _score_on_test(task, result, config, jets, test_split, out, context, val_split=val_split,
                              extra={"data_load_time_s": load_s, "strategy": strategy.name, **strategy.summary(),
                                     "dataset_sizes": {"train": len(train_split), "val": len(val_split),
                                                       "test": len(test_split)}})


def _score_on_test(task, result, config, jets, test_split, out: Path, context, extra: dict, val_split=None) -> dict:
    """Rank 0: the best weights on the test split -> metrics.json, predictions.npz, plots; their
    accuracy and mean AUC on the validation split too (``"validation"``: what a hyperparameter
    search may tune on without touching the test split)."""
    from jetlab.metrics.tagging import tagging_metrics  # lazy: start-up (scipy)

    if result.best_state is not None:
        task.model.load_state_dict(result.best_state["model"])

    def predict(split):
        return task.predict(ShardedBatches(batch_source(split, config.max_memory_gb, config.num_workers), 500,
                                           shuffle=False, training=False))

    labels, probs = predict(test_split)
    metrics = tagging_metrics(labels, probs, jets.class_names)
    if val_split is not None:
        validation = tagging_metrics(*predict(val_split), jets.class_names)
        metrics["validation"] = {k: validation[k] for k in ("n_jets", "accuracy", "mean_auc")}
    metrics.update({
        "model": config.model,
        "hparams": dict(task.model.hparams),
        "n_particles": jets.n_particles,
        "n_parameters": sum(p.numel() for p in task.model.parameters()),
        "data": str(jets.path),
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_value,
        "stopped_early": result.stopped_early,
        "training_time_s": result.elapsed_s,
        "processes": context.world_size,
        "device": context.device,
        "history": result.history,
        **extra,
    })
    with atomic_path(out / "predictions.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, labels=labels, probs=probs, class_names=np.array(jets.class_names))
    plot_roc(labels, probs, jets.class_names, out / "roc.png",
             title=f"{config.model}, {jets.n_particles} particles, test split ({len(labels)} jets)")
    plot_training_curve(result.history, out / "training_curve.png", title=config.model, best_epoch=result.best_epoch)
    atomic_write_json(out / "metrics.json", metrics)
    mark_finished(out, ("model.pt", "metrics.json", "predictions.npz"), epochs_run=result.epochs_run,
                  stop_reason=result.stop_reason)
    log.info("test accuracy %.3f, mean AUC %.3f -> %s", metrics["accuracy"], metrics["mean_auc"] or float("nan"), out)
    return metrics
